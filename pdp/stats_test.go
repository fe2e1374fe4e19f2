package pdp_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/pdp"
)

// The decision counters count each decision once under its kind and reason, and every built-in
// reason has a series from the start.
func TestDecisionCounts(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	tok := e.token(t, nil)
	for range 3 {
		e.check(t, tok, "read", "api")
	}
	e.check(t, tok, "delete", "api")         // scope_missing
	e.check(t, "not-a-token", "read", "api") // malformed_token
	if _, err := e.pdp.CheckIssuance(context.Background(), pdp.IssuanceRequest{WorkloadID: "nobody", Scopes: []string{"read"}, Audience: "api", Kid: "k1"}); err != nil {
		t.Fatal(err)
	}

	got := map[[2]string]uint64{}
	for _, c := range e.pdp.DecisionCounts() {
		if c.Allow != (c.Reason == pdp.ReasonGranted) {
			t.Errorf("%+v: Allow is wrong", c)
		}
		if c.Count > 0 {
			got[[2]string{c.Kind, c.Reason}] = c.Count
		}
		if _, dup := got[[2]string{c.Kind + "#", c.Reason}]; dup {
			t.Errorf("duplicate series %+v", c)
		}
		got[[2]string{c.Kind + "#", c.Reason}] = 0
	}
	want := map[[2]string]uint64{
		{pdp.KindCheck, pdp.ReasonGranted}:            3,
		{pdp.KindCheck, pdp.ReasonScopeMissing}:       1,
		{pdp.KindCheck, pdp.ReasonMalformedToken}:     1,
		{pdp.KindIssuance, pdp.ReasonWorkloadUnknown}: 1,
	}
	for k, v := range got {
		if k[0] == pdp.KindCheck || k[0] == pdp.KindIssuance {
			if want[k] != v {
				t.Errorf("%v = %d, want %d", k, v, want[k])
			}
		}
	}
	for k := range want {
		if got[k] == 0 {
			t.Errorf("%v missing", k)
		}
	}
	for _, kind := range []string{pdp.KindCheck, pdp.KindIssuance} {
		for _, r := range append(pdp.Reasons(), pdp.ReasonPolicy) {
			if _, ok := got[[2]string{kind + "#", r}]; !ok {
				t.Errorf("no series for %s %s", kind, r)
			}
		}
	}
}

// Stats reports the state's size, the feed position and the last contact with the feed.
func TestStats(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	e.check(t, e.token(t, nil), "read", "api") // waits for everything to be applied
	s := e.pdp.Stats()
	if !s.Contacted || s.SinceContact < 0 || s.SinceContact > 10*time.Second {
		t.Errorf("contact: %v %v", s.Contacted, s.SinceContact)
	}
	s.SinceContact, s.Contacted = 0, false
	want := pdp.Stats{
		Status: pdp.StatusReady, Epoch: e.log.Epoch(), Applied: e.log.Head(), Head: s.Head,
		Partners: 1, Integrations: 1, Workloads: 1, SigningKeys: 1,
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	if s.Head > s.Applied || s.Lag() != 0 {
		t.Errorf("head %d, applied %d, lag %d", s.Head, s.Applied, s.Lag())
	}
	if lag := (pdp.Stats{Applied: 3, Head: 10}).Lag(); lag != 7 {
		t.Errorf("Lag = %d", lag)
	}
}
