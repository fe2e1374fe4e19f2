package registrysvc_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

const noWrites = `@id("no-writes") forbid(principal, action == Action::"orders:write", resource);`

func TestPolicies(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	f.mustPartner(t, "acme")

	put, err := f.client.PutPolicy(ctx, &treatyv1.PutPolicyRequest{PartnerId: "acme", Text: noWrites, Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	want := &treatyv1.Policy{Id: "acme@1", PartnerId: "acme", Version: 1, Mode: treatyv1.PolicyMode_POLICY_MODE_LIVE,
		Text: noWrites, Current: true, Actor: "alice"}
	if diff := cmp.Diff(want, put.GetPolicy(), protocmp.Transform(), protocmp.IgnoreFields(&treatyv1.Policy{}, "create_time")); diff != "" {
		t.Fatalf("PutPolicy (-want +got):\n%s", diff)
	}
	evs, err := f.rev.Read(put.GetSequence()-1, 1)
	if err != nil || len(evs) != 1 || evs[0].GetPolicyChanged().GetPolicyId() != "acme@1" {
		t.Fatalf("published at %d: %v %v", put.GetSequence(), evs, err)
	}

	for _, id := range []string{"acme", "acme@1"} {
		got, err := f.client.GetPolicy(ctx, &treatyv1.GetPolicyRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(put.GetPolicy(), got.GetPolicy(), protocmp.Transform()); diff != "" {
			t.Errorf("GetPolicy(%s) (-want +got):\n%s", id, diff)
		}
	}
	if _, err := f.client.PutPolicy(ctx, &treatyv1.PutPolicyRequest{PartnerId: "acme", Text: noWrites,
		Mode: treatyv1.PolicyMode_POLICY_MODE_SHADOW}); err != nil {
		t.Fatal(err)
	}
	list, err := f.client.ListPolicies(ctx, &treatyv1.ListPoliciesRequest{PartnerId: "acme", PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetPolicies()) != 1 || list.GetPolicies()[0].GetId() != "acme@2" || list.GetNextPageToken() == "" {
		t.Fatalf("first page: %v", list)
	}
	list, err = f.client.ListPolicies(ctx, &treatyv1.ListPoliciesRequest{PartnerId: "acme", PageSize: 1, PageToken: list.GetNextPageToken()})
	if err != nil || len(list.GetPolicies()) != 1 || list.GetPolicies()[0].GetId() != "acme@1" || list.GetNextPageToken() != "" {
		t.Fatalf("second page: %v %v", list, err)
	}
}

// statusCase is an RPC's error and the status it must be.
type statusCase struct {
	name  string
	err   error
	code  codes.Code
	field string
	msg   string
}

func TestPolicyBadRequests(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	f.mustPartner(t, "acme")
	f.mustPartner(t, "gone")
	if _, err := f.client.OffboardPartner(ctx, &treatyv1.OffboardPartnerRequest{Id: "gone", Reason: "contract over", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	put := func(partner, text string, mode treatyv1.PolicyMode) error {
		_, err := f.client.PutPolicy(ctx, &treatyv1.PutPolicyRequest{PartnerId: partner, Text: text, Mode: mode})
		return err
	}
	tests := []statusCase{
		{"bad partner id", put("ACME", noWrites, 0), codes.InvalidArgument, "partner_id", ""},
		{"no text", put("acme", "", 0), codes.InvalidArgument, "text", ""},
		{"bad mode", put("acme", noWrites, 9), codes.InvalidArgument, "mode", ""},
		{"syntax error names the line", put("acme", "permit(principal, action, resource);\n\nforbid(principal, action resource);", 0),
			codes.InvalidArgument, "text", "line 3, column"},
		{"validation error names the line", put("acme", "permit(principal, action, resource);\npermit(principal == User::\"x\", action, resource);", 0),
			codes.InvalidArgument, "text", "line 2, column 1"},
		{"unknown partner", put("globex", noWrites, 0), codes.NotFound, "", ""},
		{"terminated partner", put("gone", noWrites, 0), codes.FailedPrecondition, "", ""},
	}
	for _, id := range []string{"", "Acme@1", "acme@0", "acme@x"} {
		_, err := f.client.GetPolicy(ctx, &treatyv1.GetPolicyRequest{Id: id})
		tests = append(tests, statusCase{"get " + id, err, codes.InvalidArgument, "id", ""})
	}
	_, err := f.client.GetPolicy(ctx, &treatyv1.GetPolicyRequest{Id: "acme@5"})
	tests = append(tests, statusCase{"get missing", err, codes.NotFound, "", ""})
	_, err = f.client.ListPolicies(ctx, &treatyv1.ListPoliciesRequest{PartnerId: "A"})
	tests = append(tests, statusCase{"list bad filter", err, codes.InvalidArgument, "partner_id", ""})
	_, err = f.client.ListPolicies(ctx, &treatyv1.ListPoliciesRequest{PageToken: "nope"})
	tests = append(tests, statusCase{"list bad token", err, codes.InvalidArgument, "page_token", ""})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkStatus(t, tt.err, tt.code, tt.field)
			if msg := status.Convert(tt.err).Message(); !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not contain %q", msg, tt.msg)
			}
		})
	}
}
