package issuer_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
)

func TestCountLive(t *testing.T) {
	e := newEnv(t)
	issueAs := func(id string, ttl time.Duration, minSeq uint64) issuer.Credential {
		req := e.requestAs(id)
		req.TTL, req.MinSequence = ttl, minSeq
		if id == "globex-bot" {
			req.Scopes = []string{"crm:read"}
		}
		return e.issue(req).Credential
	}
	a := issueAs(workload, time.Minute, 0)
	b := issueAs(sibling, time.Hour, 0)
	c := issueAs("globex-bot", time.Hour, 0)
	// c expires just after b (same lifetime, issued later). A registry write moves the feed on, so d is decided at a later sequence than the others.
	d := issueAs(workload, 30*time.Minute, e.world.CreatePartner("initech", time.Now().Add(24*time.Hour)))
	if d.Sequence <= c.Sequence {
		t.Fatalf("d was decided at %d, not after c's %d", d.Sequence, c.Sequence)
	}

	tests := []struct {
		name  string
		q     issuer.LiveQuery
		count uint64
		ids   []issuer.Credential // soonest-expiring last
	}{
		{"partner", issuer.LiveQuery{PartnerID: partner}, 3, []issuer.Credential{b, d, a}},
		{"partner, two ids", issuer.LiveQuery{PartnerID: partner, MaxIDs: 2}, 3, []issuer.Credential{b, d}},
		{"integration", issuer.LiveQuery{PartnerID: partner, IntegrationID: integration}, 3, []issuer.Credential{b, d, a}},
		{"integration without its partner", issuer.LiveQuery{IntegrationID: integration}, 3, []issuer.Credential{b, d, a}},
		{"integration of another partner", issuer.LiveQuery{PartnerID: "globex", IntegrationID: integration}, 0, nil},
		{"workload", issuer.LiveQuery{WorkloadID: workload}, 2, []issuer.Credential{d, a}},
		{"one listed workload", issuer.LiveQuery{WorkloadIDs: []string{workload}}, 2, []issuer.Credential{d, a}},
		{"listed workloads", issuer.LiveQuery{WorkloadIDs: []string{workload, sibling, "globex-bot"}}, 4, []issuer.Credential{c, b, d, a}},
		{"listed workloads of a partner", issuer.LiveQuery{PartnerID: partner, WorkloadIDs: []string{sibling, "globex-bot"}}, 1, []issuer.Credential{b}},
		{"credential", issuer.LiveQuery{CredentialID: c.ID}, 1, []issuer.Credential{c}},
		{"credential of another partner", issuer.LiveQuery{CredentialID: c.ID, PartnerID: partner}, 0, nil},
		{"unknown credential", issuer.LiveQuery{CredentialID: "no-such-jti"}, 0, nil},
		{"key", issuer.LiveQuery{Kid: a.Kid}, 4, []issuer.Credential{c, b, d, a}},
		{"other key", issuer.LiveQuery{Kid: "no-such-kid"}, 0, nil},
		{"below a sequence", issuer.LiveQuery{BelowSequence: d.Sequence}, 3, []issuer.Credential{c, b, a}},
		{"at or after a watermark", issuer.LiveQuery{PartnerID: partner, MinSequence: d.Sequence}, 1, []issuer.Credential{d}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, got, err := e.iss.CountLive(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.count {
				t.Errorf("count %d, want %d", n, tc.count)
			}
			if diff := cmp.Diff(ids(tc.ids), got, cmpEmpty); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}

	// Two minutes on, a has expired; a day on, everything has, and the scan stops at the window.
	e.clock.Advance(2 * time.Minute)
	if n, got, err := e.iss.CountLive(issuer.LiveQuery{PartnerID: partner}); err != nil || n != 2 || !cmp.Equal(got, ids([]issuer.Credential{b, d})) {
		t.Errorf("after a expired: %d %v, %v", n, got, err)
	}
	e.clock.Advance(25 * time.Hour)
	if n, got, err := e.iss.CountLive(issuer.LiveQuery{Kid: a.Kid}); err != nil || n != 0 || len(got) != 0 {
		t.Errorf("a day later: %d %v, %v", n, got, err)
	}

	for _, bad := range []issuer.LiveQuery{{}, {MinSequence: 3}, {PartnerID: partner, MaxIDs: -1}} {
		_, _, err := e.iss.CountLive(bad)
		wantKind(t, err, fail.Invalid)
	}
}

// cmpEmpty makes nil and empty id lists equal.
var cmpEmpty = cmp.Transformer("empty", func(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
})
