package registry_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

const (
	live   = treatyv1.PolicyMode_POLICY_MODE_LIVE
	shadow = treatyv1.PolicyMode_POLICY_MODE_SHADOW

	noWrites = `@id("no-writes") forbid(principal, action == Action::"orders:write", resource);`
	noReads  = `@id("no-reads") forbid(principal, action == Action::"orders:read", resource);`
)

func TestPutPolicy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")

	p, seq, err := e.reg.PutPolicy(ctx, "acme", noWrites, treatyv1.PolicyMode_POLICY_MODE_UNSPECIFIED, "", "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := registry.Policy{ID: "acme@1", PartnerID: "acme", Version: 1, Mode: live, Text: noWrites, Current: true, Created: now, Actor: "alice"}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Fatalf("PutPolicy (-want +got):\n%s", diff)
	}
	wantEvent := &treatyv1.PolicyChanged{PartnerId: "acme", Mode: live, Version: 1, Text: noWrites, PolicyId: "acme@1"}
	if diff := cmp.Diff(wantEvent, e.event(t, seq).GetPolicyChanged(), protocmp.Transform()); diff != "" {
		t.Fatalf("published (-want +got):\n%s", diff)
	}

	// A shadow beside it, then a live put of the shadow's text promotes it and clears the shadow.
	if _, _, err := e.reg.PutPolicy(ctx, "acme", noReads, shadow, "", "alice"); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.reg.GetPolicy(ctx, "acme@2"); !got.Current || got.Mode != shadow {
		t.Fatalf("shadow: %+v", got)
	}
	p, seq, err = e.reg.PutPolicy(ctx, "acme", noReads, live, "", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "acme@3" || !p.Current {
		t.Fatalf("promoted: %+v", p)
	}
	if got := e.event(t, seq).GetPolicyChanged(); got.GetMode() != shadow || got.GetText() != "" {
		t.Fatalf("the last event of a promotion must clear the shadow: %v", got)
	}
	if got := e.event(t, seq-1).GetPolicyChanged(); got.GetMode() != live || got.GetPolicyId() != "acme@3" {
		t.Fatalf("the promotion's live event: %v", got)
	}
	for id, current := range map[string]bool{"acme@1": false, "acme@2": false, "acme@3": true} {
		got, err := e.reg.GetPolicy(ctx, id)
		if err != nil || got.Current != current {
			t.Errorf("GetPolicy(%s) = %+v, %v; want current %v", id, got, err, current)
		}
	}
	if got, err := e.reg.GetPolicy(ctx, "acme"); err != nil || got.ID != "acme@3" {
		t.Errorf("GetPolicy(acme) = %+v, %v", got, err)
	}

	audit, err := e.reg.ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := audit[len(audit)-1]
	if last.Action != "policy.promote" || last.Target != "policy/acme@3" || last.Actor != "bob" ||
		!cmp.Equal(last.Before, map[string]string{"live": "acme@1", "shadow": "acme@2"}) || !cmp.Equal(last.After, map[string]string{"live": "acme@3"}) {
		t.Errorf("audit record: %+v", last)
	}
}

func TestPutPolicyErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	e.mustPartner(t, "gone")
	if _, _, err := e.reg.OffboardPartner(ctx, "gone", "contract over", "alice"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, partner, text string
		mode                treatyv1.PolicyMode
		kind                fail.Kind
		field, msg          string
	}{
		{"bad partner id", "Acme", noWrites, live, fail.Invalid, "partner_id", ""},
		{"unknown partner", "globex", noWrites, live, fail.NotFound, "", `partner "globex" does not exist`},
		{"terminated partner", "gone", noWrites, live, fail.Precondition, "", "terminated"},
		{"empty text", "acme", " \n", live, fail.Invalid, "text", "required"},
		{"bad mode", "acme", noWrites, treatyv1.PolicyMode(7), fail.Invalid, "mode", ""},
		{"syntax", "acme", "permit(principal, action, resource);\nforbid(principal, action resource);", live, fail.Invalid, "text", "line 2, column"},
		{"another partner", "acme", `permit(principal in Partner::"globex", action, resource);`, live, fail.Invalid, "text", "another partner"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := e.reg.PutPolicy(ctx, tt.partner, tt.text, tt.mode, "", "alice")
			checkErr(t, err, tt.kind, tt.field)
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
	for _, id := range []string{"acme@0", "acme@x", "acme@01", "Acme", "acme@1@2"} {
		_, err := e.reg.GetPolicy(ctx, id)
		checkErr(t, err, fail.Invalid, "id")
	}
	for _, id := range []string{"acme", "acme@1", "globex"} {
		_, err := e.reg.GetPolicy(ctx, id)
		checkErr(t, err, fail.NotFound, "")
	}
}

func TestListPolicies(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, id := range []string{"acme", "acme-x", "globex"} {
		e.mustPartner(t, id)
		for range 3 {
			if _, _, err := e.reg.PutPolicy(ctx, id, noWrites, live, "", "alice"); err != nil {
				t.Fatal(err)
			}
		}
	}
	collect := func(partnerID string, size int) []string {
		var ids []string
		token := ""
		for {
			ps, next, err := e.reg.ListPolicies(ctx, partnerID, size, token)
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) > size {
				t.Fatalf("page of %d, size %d", len(ps), size)
			}
			for _, p := range ps {
				ids = append(ids, p.ID)
			}
			if next == "" {
				return ids
			}
			token = next
		}
	}
	all := []string{"acme@3", "acme@2", "acme@1", "acme-x@3", "acme-x@2", "acme-x@1", "globex@3", "globex@2", "globex@1"}
	for _, size := range []int{1, 2, 4, 100} {
		if got := collect("", size); !cmp.Equal(got, all) {
			t.Errorf("size %d: %v", size, got)
		}
	}
	if got := collect("acme", 2); !cmp.Equal(got, all[:3]) {
		t.Errorf("acme: %v", got)
	}
	_, next, _ := e.reg.ListPolicies(ctx, "acme", 1, "")
	_, _, err := e.reg.ListPolicies(ctx, "globex", 1, next)
	checkErr(t, err, fail.Invalid, "page_token")
	_, _, err = e.reg.ListPolicies(ctx, "", 1, "garbage")
	checkErr(t, err, fail.Invalid, "page_token")
	_, _, err = e.reg.ListPolicies(ctx, "", -1, "")
	checkErr(t, err, fail.Invalid, "page_size")
	var fe *fail.Error
	if _, _, err := e.reg.ListPolicies(ctx, "A", 1, ""); !errors.As(err, &fe) || fe.Field != "partner_id" {
		t.Errorf("bad filter: %v", err)
	}
}

// A rejected policy id is quoted clipped: a megabyte-long id does not come back in full in the
// error (and so in every log line that records it).
func TestGetPolicyClipsABadID(t *testing.T) {
	e := newEnv(t)
	long := "Bad" + strings.Repeat("x", 10000)
	_, err := e.reg.GetPolicy(context.Background(), long)
	if fail.KindOf(err) != fail.Invalid || len(err.Error()) > 300 || !strings.Contains(err.Error(), "Badxxx") {
		t.Errorf("GetPolicy(10 KB id) = %d bytes of %v; want a short Invalid error quoting its start", len(err.Error()), err)
	}
}
