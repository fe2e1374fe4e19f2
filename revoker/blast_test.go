package revoker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store/storetest"
)

// issuerInventory is the real issuer's inventory, in-process.
type issuerInventory struct{ iss *issuer.Issuer }

func (inv issuerInventory) LiveCredentials(_ context.Context, q revoker.InventoryQuery) (uint64, []string, error) {
	return inv.iss.CountLive(issuer.LiveQuery{
		PartnerID: q.PartnerID, IntegrationID: q.IntegrationID, WorkloadID: q.WorkloadID, WorkloadIDs: q.WorkloadIDs,
		CredentialID: q.CredentialID, Kid: q.Kid, BelowSequence: q.BelowSequence, MinSequence: q.MinSequence, MaxIDs: q.MaxIDs,
	})
}

// mirror opens a log holding the same events as the world's feed, with inv as its inventory.
func mirror(t *testing.T, w *issuertest.World, inv revoker.Inventory) *revoker.Log {
	t.Helper()
	l, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{Inventory: inv, Logger: issuertest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	var entries []*treatyv1.PublishEntry
	for _, ev := range w.Events() {
		entries = append(entries, entry(fmt.Sprint("mirror-", ev.GetSequence()), ev))
	}
	seqs, err := l.Publish(context.Background(), entries)
	if err != nil || seqs[len(seqs)-1] != w.Head() {
		t.Fatalf("mirror the world's feed: %v, %v", seqs, err)
	}
	return l
}

func TestBlastRadiusCountsTheIssuersLiveCredentials(t *testing.T) {
	w := issuertest.Start(t, issuertest.Config{})
	contract := time.Now().Add(30 * 24 * time.Hour)
	w.CreatePartner("acme", contract)
	w.CreatePartner("globex", contract)
	for _, in := range []issuertest.Integration{{ID: "acme-billing", PartnerID: "acme"}, {ID: "acme-crm", PartnerID: "acme"}, {ID: "globex-api", PartnerID: "globex"}} {
		in.Scopes, in.Audiences, in.MaxTTL = []string{"read"}, []string{"api"}, time.Hour
		w.CreateIntegration(in)
	}
	wl := map[string]issuertest.Workload{}
	for id, integ := range map[string]string{"sync": "acme-billing", "report": "acme-billing", "crm-bot": "acme-crm", "globex-bot": "globex-api"} {
		wl[id] = w.CreateWorkload(id, integ)
	}
	m := w.StartIssuer()
	mint := func(id string) issuer.Credential { return m.Mint(wl[id], "read", "api", 10*time.Minute) }
	sync1, sync2, report, crm, globex := mint("sync"), mint("sync"), mint("report"), mint("crm-bot"), mint("globex-bot")

	l := mirror(t, w, issuerInventory{m.Issuer})
	ctx := context.Background()
	// One of acme's credentials is revoked by itself, and crm-bot is blocked: both are dead
	// already, so revoking acme does not kill them again.
	if _, err := l.Revoke(ctx, req(credentialK, report.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Revoke(ctx, req(workloadK, "crm-bot")); err != nil {
		t.Fatal(err)
	}
	head := l.Head()

	tests := []struct {
		kind   treatyv1.TargetKind
		target string
		want   revoker.BlastRadius
	}{
		{partnerK, "acme", revoker.BlastRadius{
			PartnerIDs: []string{"acme"}, IntegrationIDs: []string{"acme-billing", "acme-crm"}, WorkloadIDs: []string{"report", "sync"},
			LiveCredentials: 2, CredentialIDs: []string{sync2.ID, sync1.ID},
		}},
		{integrationK, "acme-billing", revoker.BlastRadius{
			IntegrationIDs: []string{"acme-billing"}, WorkloadIDs: []string{"report", "sync"},
			LiveCredentials: 2, CredentialIDs: []string{sync2.ID, sync1.ID},
		}},
		{integrationK, "acme-crm", revoker.BlastRadius{IntegrationIDs: []string{"acme-crm"}}},
		{workloadK, "globex-bot", revoker.BlastRadius{WorkloadIDs: []string{"globex-bot"}, LiveCredentials: 1, CredentialIDs: []string{globex.ID}}},
		{workloadK, "crm-bot", revoker.BlastRadius{}},
		{credentialK, sync1.ID, revoker.BlastRadius{LiveCredentials: 1, CredentialIDs: []string{sync1.ID}}},
		{credentialK, report.ID, revoker.BlastRadius{}},
		{credentialK, "never-issued", revoker.BlastRadius{CredentialIDs: []string{}}},
		// The key signed all five; the one revoked by itself is left out (crm-bot's is counted: a
		// key revocation kills it whatever its workload).
		{keyK, sync1.Kid, revoker.BlastRadius{LiveCredentials: 4, CredentialIDs: []string{globex.ID, crm.ID, sync2.ID, sync1.ID}}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.kind, "/", tc.target), func(t *testing.T) {
			got, err := l.BlastRadius(ctx, tc.kind, tc.target)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("blast radius (-want +got):\n%s", diff)
			}
		})
	}
	got, err := l.BlastRadiusBelow(ctx, 0)
	if err != nil || got.LiveCredentials != 4 || len(got.CredentialIDs) != 4 || got.InventoryUnavailable || len(got.PartnerIDs) != 0 {
		t.Errorf("BlastRadiusBelow(head) = %+v, %v; want the 4 live unrevoked credentials and no entity", got, err)
	}
	if got, _ := l.BlastRadiusBelow(ctx, sync1.Sequence); got.LiveCredentials != 0 {
		t.Errorf("BlastRadiusBelow(%d) = %+v; every credential was issued at or after it", sync1.Sequence, got)
	}
	// A dry run appends nothing.
	if l.Head() != head {
		t.Errorf("head moved from %d to %d during dry runs", head, l.Head())
	}
}

// recordingInventory answers with fixed results and records what it was asked.
type recordingInventory struct {
	mu    sync.Mutex
	asked []revoker.InventoryQuery
	count uint64
	ids   []string
	err   error
}

func (r *recordingInventory) LiveCredentials(_ context.Context, q revoker.InventoryQuery) (uint64, []string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, q)
	return r.count, slices.Clone(r.ids), r.err
}

func (r *recordingInventory) last() revoker.InventoryQuery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked[len(r.asked)-1]
}

func TestBlastRadiusFromTheFeed(t *testing.T) {
	ctx := context.Background()
	inv := &recordingInventory{count: 3, ids: []string{"a", "b", "c"}}
	l := openLog(t, t.TempDir()+"/revoker.db", revoker.Config{Inventory: inv, Logger: issuertest.Quiet})
	if _, err := l.Publish(ctx, onboardingEntries(t, "acme")); err != nil {
		t.Fatal(err)
	}
	// A block lifted on acme leaves a watermark: credentials issued before it are dead already.
	if _, err := l.Revoke(ctx, req(partnerK, "acme")); err != nil {
		t.Fatal(err)
	}
	restored, err := l.Restore(ctx, req(partnerK, "acme"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Revoke(ctx, req(credentialK, "b")); err != nil {
		t.Fatal(err)
	}
	head := l.Head()

	got, err := l.BlastRadius(ctx, partnerK, "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := revoker.BlastRadius{PartnerIDs: []string{"acme"}, IntegrationIDs: []string{"acme-api"}, WorkloadIDs: []string{"acme-bot"},
		LiveCredentials: 2, CredentialIDs: []string{"a", "c"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("blast radius (-want +got):\n%s", diff)
	}
	wantQ := revoker.InventoryQuery{PartnerID: "acme", WorkloadIDs: []string{"acme-bot"}, MinSequence: restored.Sequence, MaxIDs: revoker.MaxBlastIDs}
	if diff := cmp.Diff(wantQ, inv.last()); diff != "" {
		t.Errorf("inventory query (-want +got):\n%s", diff)
	}
	if _, err := l.BlastRadius(ctx, integrationK, "acme-api"); err != nil || inv.last().IntegrationID != "acme-api" || inv.last().PartnerID != "acme" {
		t.Errorf("integration query %+v, %v", inv.last(), err)
	}

	// Refusals match Revoke's.
	for _, tc := range []struct {
		kind   treatyv1.TargetKind
		target string
		want   fail.Kind
	}{
		{partnerK, "nobody", fail.NotFound},
		{workloadK, "Bad Id", fail.Invalid},
		{keyK, "no-such-kid", fail.NotFound},
		{treatyv1.TargetKind_TARGET_KIND_UNSPECIFIED, "acme", fail.Invalid},
	} {
		if _, err := l.BlastRadius(ctx, tc.kind, tc.target); fail.KindOf(err) != tc.want {
			t.Errorf("BlastRadius(%v, %q) = %v, want kind %v", tc.kind, tc.target, err, tc.want)
		}
	}

	// An inventory that fails, or none, makes the credentials unknown, not the dry run a failure.
	inv.err = errors.New("issuer unreachable (injected by the test)")
	if got, err := l.BlastRadius(ctx, workloadK, "acme-bot"); err != nil || !got.InventoryUnavailable || got.LiveCredentials != 0 ||
		!slices.Equal(got.WorkloadIDs, []string{"acme-bot"}) {
		t.Errorf("failing inventory: %+v, %v", got, err)
	}
	bare := newLog(t)
	if got, err := bare.BlastRadius(ctx, partnerK, "acme"); err != nil || !got.InventoryUnavailable || len(got.WorkloadIDs) != 1 {
		t.Errorf("no inventory: %+v, %v", got, err)
	}
	if got, err := bare.BlastRadiusBelow(ctx, 0); err != nil || !got.InventoryUnavailable {
		t.Errorf("no inventory, break-glass: %+v, %v", got, err)
	}
	// A blocked target hits nothing more, and the inventory is not asked.
	if _, err := l.Revoke(ctx, req(partnerK, "acme")); err != nil {
		t.Fatal(err)
	}
	head++
	asked := len(inv.asked)
	if got, err := l.BlastRadius(ctx, partnerK, "acme"); err != nil || !cmp.Equal(got, revoker.BlastRadius{}) || len(inv.asked) != asked {
		t.Errorf("blocked partner: %+v, %v (asked %d more)", got, err, len(inv.asked)-asked)
	}
	if l.Head() != head {
		t.Errorf("head %d, want %d: a dry run appended", l.Head(), head)
	}
}
