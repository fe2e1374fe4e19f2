package auditsvc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/auditsvc"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// env is a real registry (publishing into a real revoker) behind the audit service on loopback.
type env struct {
	reg    *registry.Registry
	svc    *auditsvc.Service
	client treatyv1.AuditServiceClient
}

func newEnv(t *testing.T) *env {
	t.Helper()
	rev, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBolt(t, registry.Schema)
	relay := outbox.NewRelay(st, rev, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { relay.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	reg, err := registry.New(registry.Config{Store: st, Relay: relay, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	svc := auditsvc.New(auditsvc.Config{Registry: reg, FollowInterval: 20 * time.Millisecond, Logger: quiet})
	t.Cleanup(svc.Close)
	conn := grpctest.Serve(t, svc.Register)
	return &env{reg: reg, svc: svc, client: treatyv1.NewAuditServiceClient(conn)}
}

// partners creates partners p<from>..p<to-1>, one audit record each.
func (e *env) partners(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		p := registry.Partner{ID: fmt.Sprintf("p%d", i), DisplayName: "Partner", OwnerTeam: "security",
			ContractEnd: time.Now().Add(24 * time.Hour)}
		if _, _, err := e.reg.CreatePartner(context.Background(), p, "alice"); err != nil {
			t.Fatal(err)
		}
	}
}

func sequences(recs []*treatyv1.AuditRecord) []uint64 {
	var out []uint64
	for _, r := range recs {
		out = append(out, r.GetSequence())
	}
	return out
}

func TestListAuditRecordsPages(t *testing.T) {
	e := newEnv(t)
	e.partners(t, 1, 6)
	ctx := context.Background()
	var got []uint64
	req := &treatyv1.ListAuditRecordsRequest{PageSize: 2}
	for pages := 0; ; pages++ {
		resp, err := e.client.ListAuditRecords(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, sequences(resp.GetRecords())...)
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Errorf("paged sequences %v", got)
	}
	resp, err := e.client.ListAuditRecords(ctx, &treatyv1.ListAuditRecordsRequest{AfterSequence: 3})
	if err != nil || fmt.Sprint(sequences(resp.GetRecords())) != "[4 5]" || resp.GetNextPageToken() != "" {
		t.Errorf("after 3: %v, %q, %v", sequences(resp.GetRecords()), resp.GetNextPageToken(), err)
	}
	resp, err = e.client.ListAuditRecords(ctx, &treatyv1.ListAuditRecordsRequest{Target: "partner/p2"})
	if err != nil || len(resp.GetRecords()) != 1 {
		t.Fatalf("target partner/p2: %v, %v", resp, err)
	}
	r := resp.GetRecords()[0]
	if r.GetSequence() != 2 || r.GetActor() != "alice" || r.GetAction() != "partner.create" || r.GetAfter()["state"] == "" ||
		len(r.GetHash()) != 64 || len(r.GetPrevHash()) != 64 || r.GetTime() == nil {
		t.Errorf("record 2 = %v", r)
	}
	// The proto carries the stored record exactly: converted back, its hash recomputes.
	recs, _ := e.reg.ListAudit(ctx, 1, 1)
	if back := auditsvc.RecordFromProto(r); fmt.Sprint(back) != fmt.Sprint(recs[0]) || !back.Time.Equal(recs[0].Time) {
		t.Errorf("RecordFromProto = %+v, stored %+v", back, recs[0])
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		call  func() error
		field string
	}{
		{"negative page size", func() error {
			_, err := e.client.ListAuditRecords(ctx, &treatyv1.ListAuditRecordsRequest{PageSize: -1})
			return err
		}, "page_size"},
		{"foreign page token", func() error {
			_, err := e.client.ListAuditRecords(ctx, &treatyv1.ListAuditRecordsRequest{PageToken: "v1.xyz"})
			return err
		}, "page_token"},
		{"page token and after_sequence", func() error {
			_, err := e.client.ListAuditRecords(ctx, &treatyv1.ListAuditRecordsRequest{PageToken: "a2", AfterSequence: 1})
			return err
		}, "page_token"},
		{"target without a kind", func() error {
			_, err := e.client.ListAuditRecords(ctx, &treatyv1.ListAuditRecordsRequest{Target: "acme"})
			return err
		}, "target"},
		{"target with a space", func() error {
			_, err := e.client.ListAuditRecords(ctx, &treatyv1.ListAuditRecordsRequest{Target: "partner/ac me"})
			return err
		}, "target"},
		{"anchor hash without a sequence", func() error {
			_, err := e.client.VerifyAudit(ctx, &treatyv1.VerifyAuditRequest{AnchorHash: strings.Repeat("a", 64)})
			return err
		}, "anchor_sequence"},
		{"anchor sequence without a hash", func() error {
			_, err := e.client.VerifyAudit(ctx, &treatyv1.VerifyAuditRequest{AnchorSequence: 3})
			return err
		}, "anchor_hash"},
		{"anchor hash not hex", func() error {
			_, err := e.client.VerifyAudit(ctx, &treatyv1.VerifyAuditRequest{AnchorSequence: 3, AnchorHash: strings.Repeat("g", 64)})
			return err
		}, "anchor_hash"},
		{"anchor hash in upper case", func() error {
			_, err := e.client.VerifyAudit(ctx, &treatyv1.VerifyAuditRequest{AnchorSequence: 3, AnchorHash: strings.Repeat("A", 64)})
			return err
		}, "anchor_hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.field) {
				t.Errorf("error %v, want INVALID_ARGUMENT naming %s", err, tc.field)
			}
		})
	}
}

func TestVerifyAudit(t *testing.T) {
	e := newEnv(t)
	e.partners(t, 1, 4)
	ctx := context.Background()
	recs, _ := e.reg.ListAudit(ctx, 0, 0)
	resp, err := e.client.VerifyAudit(ctx, &treatyv1.VerifyAuditRequest{})
	if err != nil || resp.GetBroken() != nil || resp.GetRecords() != 3 || resp.GetHeadSequence() != 3 || resp.GetHeadHash() != recs[2].Hash {
		t.Fatalf("VerifyAudit = %v, %v", resp, err)
	}
	// A wrong anchor is a broken chain, reported as a result.
	resp, err = e.client.VerifyAudit(ctx, &treatyv1.VerifyAuditRequest{AnchorSequence: 2, AnchorHash: recs[0].Hash})
	if err != nil || resp.GetBroken().GetProblem() != treatyv1.AuditProblem_AUDIT_PROBLEM_ANCHOR_MISMATCH || resp.GetBroken().GetSequence() != 2 {
		t.Fatalf("VerifyAudit with a wrong anchor = %v, %v", resp, err)
	}
	if v := auditsvc.VerificationFromProto(resp); v.Broken == nil || v.Broken.Problem != registry.AuditAnchorMismatch || v.Records != 1 {
		t.Errorf("VerificationFromProto = %+v", v)
	}
	resp, err = e.client.VerifyAudit(ctx, &treatyv1.VerifyAuditRequest{AnchorSequence: 9, AnchorHash: recs[0].Hash})
	if err != nil || resp.GetBroken().GetProblem() != treatyv1.AuditProblem_AUDIT_PROBLEM_TRUNCATED {
		t.Fatalf("VerifyAudit with an anchor past the head = %v, %v", resp, err)
	}
}

func recv(t *testing.T, stream treatyv1.AuditService_ExportAuditClient, n int) []uint64 {
	t.Helper()
	var got []uint64
	for range n {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		got = append(got, m.GetRecord().GetSequence())
	}
	return got
}

func TestExportAudit(t *testing.T) {
	e := newEnv(t)
	e.partners(t, 1, 5)
	ctx := context.Background()
	stream, err := e.client.ExportAudit(ctx, &treatyv1.ExportAuditRequest{AfterSequence: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := recv(t, stream, 3); fmt.Sprint(got) != "[2 3 4]" {
		t.Errorf("export after 1 = %v", got)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("export without follow did not end: %v", err)
	}
}

func TestExportAuditFollows(t *testing.T) {
	e := newEnv(t)
	e.partners(t, 1, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := e.client.ExportAudit(ctx, &treatyv1.ExportAuditRequest{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := recv(t, stream, 2); fmt.Sprint(got) != "[1 2]" {
		t.Errorf("backlog = %v", got)
	}
	e.partners(t, 3, 5)
	if got := recv(t, stream, 2); fmt.Sprint(got) != "[3 4]" {
		t.Errorf("followed = %v", got)
	}
	// Shutdown ends a following export with UNAVAILABLE rather than waiting for it.
	e.svc.Close()
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("after Close: %v, want UNAVAILABLE", err)
	}
}

func TestExportAuditCallerLeaves(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := e.client.ExportAudit(ctx, &treatyv1.ExportAuditRequest{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("after cancel: %v", err)
	}
	// goleak (TestMain) checks that the server side of the stream ended too.
}
