package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestRevokeAll(t *testing.T) {
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := log.Publish(context.Background(), []*treatyv1.PublishEntry{{RequestId: "p", Event: &treatyv1.Event{
		Change: &treatyv1.Event_PartnerChanged{PartnerChanged: &treatyv1.PartnerChanged{
			PartnerId: "acme", State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE, ContractEndTime: timestamppb.New(time.Now().Add(time.Hour))}}}}}); err != nil {
		t.Fatal(err)
	}
	svc := revokersvc.New(revokersvc.Config{Log: log})
	t.Cleanup(svc.Close)
	addr := grpctest.Serve(t, svc.Register).Target()
	cli := func(args ...string) (int, string, string) {
		return treaty(t, append(args, "--revoker", addr, "--actor", "alice")...)
	}

	for _, bad := range [][]string{
		{"revoke", "all", "--head"},
		{"revoke", "all", "--reason", "x"},
		{"revoke", "all", "--reason", "x", "--head", "--below-sequence", "1"},
		{"revoke", "all", "--reason", "x", "--below-sequence", "0"},
		{"revoke", "all", "extra", "--reason", "x", "--head"},
	} {
		if code, out, errOut := cli(bad...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d\n%s%s", bad, code, exitUsage, out, errOut)
		}
	}
	if code, _, errOut := cli("revoke", "key", "-YE8DmLy", "--reason", "x"); code != exitUsage || !strings.Contains(errOut, "goes after '--'") {
		t.Errorf("a key id beginning with '-': exit %d, want %d with advice to use '--'\n%s", code, exitUsage, errOut)
	}
	if code, out, errOut := cli("revoke", "all", "--reason", "issuer key leaked", "--head"); code != exitOK || strings.TrimSpace(out) != "2" {
		t.Fatalf("--head: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := cli("revoke", "all", "--reason", "again", "--below-sequence", "1", "-o", "json")
	var got struct {
		Sequence       uint64 `json:"sequence"`
		BelowSequence  uint64 `json:"below_sequence"`
		AlreadyApplied bool   `json:"already_applied"`
	}
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || got.Sequence != 2 || got.BelowSequence != 2 || !got.AlreadyApplied {
		t.Fatalf("a lower watermark: exit %d, %v: %s%s", code, err, out, errOut)
	}
	if code, out, errOut := cli("revoke", "partner", "acme", "--reason", "x"); code != exitOK || strings.TrimSpace(out) != "3" {
		t.Fatalf("revoke partner beside revoke all: exit %d\n%s%s", code, out, errOut)
	}
}
