package issuer_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
)

func TestSummarize(t *testing.T) {
	e := newEnv(t)
	wide := e.request()
	wide.Scopes = []string{"invoices:read", "reports:read"}
	a := e.issue(wide).Credential
	b := e.issue(e.request()).Credential
	c := e.issue(e.requestAs(sibling)).Credential
	seen := e.clock.Now().Add(-time.Second).Truncate(time.Second)
	if _, err := e.iss.ReportUsage([]issuer.Usage{{CredentialID: a.ID, LastSeen: seen}}); err != nil {
		t.Fatal(err)
	}
	got, err := e.iss.Summarize(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := []issuer.WorkloadSummary{
		{
			WorkloadID: sibling, IntegrationID: integration, PartnerID: partner, Live: 1, LiveBearer: 1,
			OldestLiveIssued: c.IssueTime, OldestLiveID: c.ID, LastIssued: c.IssueTime, AuthMethods: []string{issuer.MethodPrivateKeyJWT},
		},
		{
			WorkloadID: workload, IntegrationID: integration, PartnerID: partner, Live: 2, LiveBearer: 2,
			OldestLiveIssued: a.IssueTime, OldestLiveID: a.ID, LastIssued: b.IssueTime, LastSeen: seen,
			ScopesSeen: []string{"invoices:read", "reports:read"}, AuthMethods: []string{issuer.MethodPrivateKeyJWT},
		},
	}
	if a.IssueTime.Equal(b.IssueTime) {
		// Same instant: either may be the oldest.
		want[1].OldestLiveID = got.Workloads[1].OldestLiveID
	}
	if diff := cmp.Diff(want, got.Workloads, cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	if d := e.clock.Now().Add(-issuer.DefaultSummaryWindow).Sub(got.Since); got.Truncated || d < 0 || d > 10*time.Second {
		t.Errorf("since %v truncated %v", got.Since, got.Truncated)
	}

	// Two hours on, every credential expired: issued and seen in the window, none live.
	e.clock.Advance(2 * time.Hour)
	got, err = e.iss.Summarize(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Workloads) != 2 || got.Workloads[1].Live != 0 || !got.Workloads[1].OldestLiveIssued.IsZero() || !got.Workloads[1].LastSeen.Equal(seen) {
		t.Errorf("after expiry: %+v", got.Workloads)
	}
	// A window that starts after the use and the issuances: nothing.
	got, err = e.iss.Summarize(e.clock.Now().Add(-time.Minute))
	if err != nil || len(got.Workloads) != 0 {
		t.Errorf("a window after everything: %+v, %v", got.Workloads, err)
	}
	_, err = e.iss.Summarize(e.clock.Now().Add(time.Hour))
	wantKind(t, err, fail.Invalid)
}

func TestLivePerPartner(t *testing.T) {
	e := newEnv(t)
	e.issue(e.request())
	e.issue(e.request())
	e.issue(e.requestAs(sibling))
	got, truncated, err := e.iss.LivePerPartner()
	if err != nil || truncated {
		t.Fatal(err, truncated)
	}
	if diff := cmp.Diff(map[string]uint64{partner: 3}, got); diff != "" {
		t.Errorf("live (-want +got):\n%s", diff)
	}
	e.clock.Advance(2 * time.Hour) // every credential expired
	if got, _, err := e.iss.LivePerPartner(); err != nil || len(got) != 0 {
		t.Errorf("after expiry: %v, %v", got, err)
	}
}
