package issuer_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
)

func TestInventoryRecordsAuthMethod(t *testing.T) {
	e := newEnv(t)
	c := e.issue(e.request()).Credential
	if c.AuthMethod != issuer.MethodPrivateKeyJWT || c.Binding != issuer.BindingNone || c.BindingThumbprint != "" {
		t.Fatalf("issued credential: auth method %q, binding %q/%q; want private_key_jwt, bearer", c.AuthMethod, c.Binding, c.BindingThumbprint)
	}
	got, err := e.iss.Credential(c.ID)
	if err != nil || got.AuthMethod != issuer.MethodPrivateKeyJWT {
		t.Fatalf("stored auth method %q (%v)", got.AuthMethod, err)
	}
}

func TestReportUsage(t *testing.T) {
	e := newEnv(t)
	a := e.issue(e.request()).Credential
	b := e.issue(e.requestAs(sibling)).Credential
	now := e.clock.Now().Add(-time.Minute).Truncate(time.Second) // a minute ago, so now+1s is in the past
	seen := func(id string) time.Time {
		t.Helper()
		c, err := e.iss.Credential(id)
		if err != nil {
			t.Fatal(err)
		}
		return c.LastSeen
	}
	if !seen(a.ID).IsZero() {
		t.Fatal("a credential nobody used has a last-seen time")
	}
	steps := []struct {
		name    string
		usages  []issuer.Usage
		updated int
		a, b    time.Time
	}{
		{"first report", []issuer.Usage{{a.ID, now}, {"no-such-jti", now}}, 1, now, time.Time{}},
		{"later", []issuer.Usage{{a.ID, now.Add(time.Second)}, {b.ID, now}}, 2, now.Add(time.Second), now},
		{"earlier is ignored", []issuer.Usage{{a.ID, now}}, 0, now.Add(time.Second), now},
		{"future is now", []issuer.Usage{{b.ID, now.Add(time.Hour)}}, 1, now.Add(time.Second), e.clock.Now()},
	}
	for _, s := range steps {
		n, err := e.iss.ReportUsage(s.usages)
		if err != nil || n != s.updated {
			t.Fatalf("%s: ReportUsage = %d, %v; want %d", s.name, n, err, s.updated)
		}
		if got := seen(a.ID); !got.Equal(s.a) {
			t.Fatalf("%s: a last seen %v, want %v", s.name, got, s.a)
		}
		if got := seen(b.ID); s.name != "future is now" && !got.Equal(s.b) || got.After(e.clock.Now()) {
			t.Fatalf("%s: b last seen %v, want %v", s.name, got, s.b)
		}
	}
	listed := mustList(t, e.iss, issuer.Filter{WorkloadID: workload})
	if len(listed) != 1 || !listed[0].LastSeen.Equal(now.Add(time.Second)) {
		t.Fatalf("listing: %+v, want a last seen at %v", listed, now.Add(time.Second))
	}
	_, err := e.iss.ReportUsage(make([]issuer.Usage, issuer.MaxUsageReport+1))
	wantKind(t, err, fail.Invalid)
	// Last-seen times survive a restart.
	e.reopen()
	if got := seen(a.ID); !got.Equal(now.Add(time.Second)) {
		t.Fatalf("after restart a last seen %v", got)
	}
}

func TestCountLiveByPartner(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{workload, sibling, workload} {
		e.issue(e.requestAs(id))
	}
	req := e.requestAs("globex-bot")
	req.Scopes, req.TTL = []string{"crm:read"}, time.Minute
	e.issue(req)
	got, err := e.iss.CountLiveByPartner()
	if err != nil {
		t.Fatal(err)
	}
	want := []issuer.PartnerCount{{PartnerID: partner, Live: 3}, {PartnerID: "globex", Live: 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("counts (-want +got):\n%s", diff)
	}
	e.clock.Advance(2 * time.Minute) // globex's credential has expired; acme's (5 minutes) have not
	got, err = e.iss.CountLiveByPartner()
	if diff := cmp.Diff(want[:1], got); err != nil || diff != "" {
		t.Fatalf("counts two minutes on (-want +got, %v):\n%s", err, diff)
	}
}
