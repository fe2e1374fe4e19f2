package feed_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/policy"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

const (
	live   = treatyv1.PolicyMode_POLICY_MODE_LIVE
	shadow = treatyv1.PolicyMode_POLICY_MODE_SHADOW

	forbidAll = `@id("all") forbid(principal, action, resource);`
	permitAll = `@id("any") permit(principal, action, resource);`
)

func policyChanged(partnerID string, mode treatyv1.PolicyMode, version uint64, text string) *treatyv1.Event {
	pc := &treatyv1.PolicyChanged{PartnerId: partnerID, Mode: mode, Version: version, Text: text}
	if text != "" {
		pc.PolicyId = feed.PolicyID(partnerID, version)
	}
	return &treatyv1.Event{Change: &treatyv1.Event_PolicyChanged{PolicyChanged: pc}}
}

// decide evaluates a set on a fixed request and returns its one reason.
func decide(s *policy.Set) string {
	in := &policy.Input{Partner: "acme", Integration: "acme-api", Workload: "acme-bot", Action: "read", Resource: "api"}
	return s.Evaluate(in).Reasons[0]
}

func TestPolicies(t *testing.T) {
	s := apply(t, onboarded(t), policyChanged("acme", live, 1, forbidAll))
	p, ok := s.Policies("acme")
	if !ok || p.LiveID != "acme@1" || p.LiveVersion != 1 || p.Shadow != nil || p.ShadowID != "" {
		t.Fatalf("Policies after live put = %+v, %v", p, ok)
	}
	if got := decide(p.Live); got != "policy_forbid:acme@1:all" {
		t.Errorf("live reason = %s", got)
	}

	s2 := apply(t, s, policyChanged("acme", shadow, 2, permitAll))
	p2, _ := s2.Policies("acme")
	if p2.LiveID != "acme@1" || p2.ShadowID != "acme@2" || decide(p2.Shadow) != "policy_permit:acme@2:any" {
		t.Fatalf("Policies after shadow put = %+v", p2)
	}
	if p, _ := s.Policies("acme"); p.Shadow != nil {
		t.Error("the edit changed the old state")
	}

	// Promote: the live set takes the shadow's text and the shadow is cleared.
	s3 := apply(t, s2, policyChanged("acme", live, 3, permitAll), policyChanged("acme", shadow, 0, ""))
	p3, _ := s3.Policies("acme")
	if p3.LiveID != "acme@3" || p3.Shadow != nil || p3.ShadowID != "" || p3.ShadowVersion != 0 {
		t.Fatalf("Policies after promotion = %+v", p3)
	}

	s4 := apply(t, s3, policyChanged("acme", live, 0, ""))
	if p, ok := s4.Policies("acme"); ok {
		t.Fatalf("Policies after removing every set = %+v", p)
	}
	if _, ok := s4.Policies("globex"); ok {
		t.Fatal("a partner without policies has some")
	}
}

func TestPoliciesFailClosed(t *testing.T) {
	// Text the feed would refuse today still applies, as a set that denies everything.
	s := apply(t, onboarded(t), policyChanged("acme", live, 1, "permit(principal, action, resource"))
	p, ok := s.Policies("acme")
	if !ok || decide(p.Live) != "policy_invalid:acme@1" {
		t.Fatalf("broken text: %+v %v", p, ok)
	}
	// A mode this Treaty does not know changes nothing.
	s = apply(t, s, policyChanged("acme", treatyv1.PolicyMode(9), 2, permitAll))
	if p2, _ := s.Policies("acme"); p2 != p {
		t.Error("an unknown mode changed the policies")
	}
}

func TestPoliciesSaveLoad(t *testing.T) {
	st := storetest.OpenBolt(t, store.Schema{Name: "feedtest", Version: 1, Buckets: feed.Buckets})
	base := onboarded(t)
	if err := st.Update(func(tx store.Tx) error { return feed.SaveAll(tx, base) }); err != nil {
		t.Fatal(err)
	}
	load := func() *feed.State {
		var s *feed.State
		if err := st.View(func(tx store.Tx) (err error) { s, err = feed.Load(tx); return err }); err != nil {
			t.Fatal(err)
		}
		return s
	}
	step := func(s *feed.State, evs ...*treatyv1.Event) *feed.State {
		e := s.Edit()
		for _, ev := range evs {
			ev.Sequence = e.Sequence() + 1
			if err := e.Apply(ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Update(e.Changes().Save); err != nil {
			t.Fatal(err)
		}
		return e.State()
	}
	opts := cmp.Options{protocmp.Transform(),
		protocmp.SortRepeated(func(a, b *treatyv1.PolicyChanged) bool { return a.Mode < b.Mode })}

	s := step(base, policyChanged("acme", live, 1, forbidAll), policyChanged("acme", shadow, 2, permitAll))
	loaded := load()
	if diff := cmp.Diff(s.Proto().GetPolicies(), loaded.Proto().GetPolicies(), opts); diff != "" {
		t.Fatalf("Load (-want +got):\n%s", diff)
	}
	if len(loaded.Proto().GetPolicies()) != 2 {
		t.Fatalf("loaded policies: %v", loaded.Proto().GetPolicies())
	}
	if p, _ := loaded.Policies("acme"); decide(p.Live) != "policy_forbid:acme@1:all" || decide(p.Shadow) != "policy_permit:acme@2:any" {
		t.Fatalf("loaded sets were not compiled with their ids: %+v", p)
	}
	if diff := cmp.Diff(s.Proto().GetPolicies(), feed.FromProto(s.Proto()).Proto().GetPolicies(), opts); diff != "" {
		t.Errorf("proto round trip (-want +got):\n%s", diff)
	}

	// Removing the shadow deletes its record; a full save holds the same.
	s = step(s, policyChanged("acme", shadow, 0, ""))
	if got := load().Proto().GetPolicies(); len(got) != 1 || got[0].GetMode() != live {
		t.Fatalf("after removing the shadow, loaded %v", got)
	}
	if err := st.Update(func(tx store.Tx) error { return feed.SaveAll(tx, s) }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s.Proto().GetPolicies(), load().Proto().GetPolicies(), opts); diff != "" {
		t.Errorf("SaveAll (-want +got):\n%s", diff)
	}
}

func TestCheckPolicyChanged(t *testing.T) {
	good := []*treatyv1.Event{
		policyChanged("acme", live, 1, forbidAll),
		policyChanged("acme", shadow, 7, permitAll),
		policyChanged("acme", shadow, 0, ""),
	}
	for _, ev := range good {
		if err := feed.CheckChange(ev); err != nil {
			t.Errorf("CheckChange(%v) = %v", ev, err)
		}
	}
	wrongID := policyChanged("acme", live, 2, forbidAll)
	wrongID.GetPolicyChanged().PolicyId = "acme@1"
	tests := []struct {
		ev    *treatyv1.Event
		field string
		msg   string
	}{
		{policyChanged("Acme", live, 1, forbidAll), "policy_changed.partner_id", ""},
		{policyChanged("acme", treatyv1.PolicyMode_POLICY_MODE_UNSPECIFIED, 1, forbidAll), "policy_changed.mode", ""},
		{wrongID, "policy_changed.policy_id", `"acme@2"`},
		{policyChanged("acme", live, 0, forbidAll), "policy_changed.policy_id", ""},
		{policyChanged("acme", live, 1, "permit(principal, action, resource);\nforbid(principal, action resource);"), "policy_changed.text", "line 2, column"},
		{policyChanged("acme", live, 1, `permit(principal in Partner::"globex", action, resource);`), "policy_changed.text", "another partner"},
	}
	for _, tt := range tests {
		err := feed.CheckChange(tt.ev)
		var fe *fail.Error
		if !errors.As(err, &fe) || fe.Kind != fail.Invalid || fe.Field != tt.field || !strings.Contains(fe.Msg, tt.msg) {
			t.Errorf("CheckChange(%v) = %v, want Invalid on %s containing %q", tt.ev, err, tt.field, tt.msg)
		}
	}
	if kind, target := feed.Describe(policyChanged("acme", live, 1, forbidAll)); kind != "policy_changed" || target != "partner/acme" {
		t.Errorf("Describe = %s %s", kind, target)
	}
}
