package issuer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
)

// A usage report moves the last-used mark of each credential's workload forward, never back,
// whichever of the workload's credentials it names, and the mark survives a restart.
func TestWorkloadsLastUsed(t *testing.T) {
	e := newEnv(t)
	a := e.issue(e.request()).Credential
	a2 := e.issue(e.request()).Credential
	b := e.issue(e.requestAs(sibling)).Credential
	base := e.clock.Now().Add(-time.Hour).Truncate(time.Second)
	lastUsed := func() map[string]time.Time {
		t.Helper()
		got, err := e.iss.WorkloadsLastUsed([]string{workload, sibling, "never-seen"})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := lastUsed(); len(got) != 0 {
		t.Fatalf("before any report: %v, want nothing", got)
	}
	steps := []struct {
		name   string
		usages []issuer.Usage
		w, s   time.Time // the marks of workload and sibling after the report
	}{
		{"first use", []issuer.Usage{{a.ID, base.Add(10 * time.Minute)}}, base.Add(10 * time.Minute), time.Time{}},
		// a2's own last seen moves (it had none) but the workload was used later already.
		{"an older use of another credential", []issuer.Usage{{a2.ID, base}}, base.Add(10 * time.Minute), time.Time{}},
		{"a later use of that credential", []issuer.Usage{{a2.ID, base.Add(20 * time.Minute)}}, base.Add(20 * time.Minute), time.Time{}},
		{"both in one report, the later wins", []issuer.Usage{{a.ID, base.Add(30 * time.Minute)}, {a2.ID, base.Add(25 * time.Minute)}, {b.ID, base}},
			base.Add(30 * time.Minute), base},
		{"an earlier time is ignored", []issuer.Usage{{a.ID, base.Add(time.Minute)}}, base.Add(30 * time.Minute), base},
		{"an unknown credential is ignored", []issuer.Usage{{"no-such-jti", base.Add(50 * time.Minute)}}, base.Add(30 * time.Minute), base},
	}
	for _, s := range steps {
		if _, err := e.iss.ReportUsage(s.usages); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := lastUsed()
		if !got[workload].Equal(s.w) || !got[sibling].Equal(s.s) {
			t.Fatalf("%s: last used %v, want %s at %v and %s at %v", s.name, got, workload, s.w, sibling, s.s)
		}
		if _, ok := got["never-seen"]; ok {
			t.Fatalf("%s: a workload with no usage has a last-used time", s.name)
		}
	}
	e.reopen()
	if got := lastUsed(); !got[workload].Equal(base.Add(30*time.Minute)) || !got[sibling].Equal(base) {
		t.Fatalf("after restart: %v", got)
	}
}

func TestWorkloadsLastUsedRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	many := make([]string, issuer.MaxWorkloadUsageQuery+1)
	for i := range many {
		many[i] = workload
	}
	for name, ids := range map[string][]string{
		"too many":     many,
		"empty id":     {workload, ""},
		"malformed id": {"Not An Id"},
		"too long":     {strings.Repeat("a", 200)},
	} {
		_, err := e.iss.WorkloadsLastUsed(ids)
		if fail.KindOf(err) != fail.Invalid {
			t.Errorf("%s: err = %v, want Invalid", name, err)
		}
	}
	if got, err := e.iss.WorkloadsLastUsed(nil); err != nil || len(got) != 0 {
		t.Errorf("no ids: %v, %v; want an empty answer", got, err)
	}
}
