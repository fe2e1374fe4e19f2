package feed_test

import (
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

const (
	partnerK     = treatyv1.TargetKind_TARGET_KIND_PARTNER
	integrationK = treatyv1.TargetKind_TARGET_KIND_INTEGRATION
	workloadK    = treatyv1.TargetKind_TARGET_KIND_WORKLOAD
)

var contractEnd = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func partner(id string, st treatyv1.PartnerState) *treatyv1.Event {
	return &treatyv1.Event{Change: &treatyv1.Event_PartnerChanged{PartnerChanged: &treatyv1.PartnerChanged{
		PartnerId: id, State: st, ContractEndTime: timestamppb.New(contractEnd)}}}
}

func integration(id, partner string) *treatyv1.Event {
	return &treatyv1.Event{Change: &treatyv1.Event_IntegrationChanged{IntegrationChanged: &treatyv1.IntegrationChanged{
		IntegrationId: id, PartnerId: partner, State: treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE,
		AllowedScopes: []string{"read", "write"}, Audiences: []string{"api"}, MaxCredentialTtl: durationpb.New(10 * time.Minute)}}}
}

func workload(id, integ, partner string) *treatyv1.Event {
	return &treatyv1.Event{Change: &treatyv1.Event_WorkloadChanged{WorkloadChanged: &treatyv1.WorkloadChanged{
		WorkloadId: id, IntegrationId: integ, PartnerId: partner, State: treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE}}}
}

func block(k treatyv1.TargetKind, id string, permanent bool) *treatyv1.Event {
	return &treatyv1.Event{Reason: "why", Change: &treatyv1.Event_Blocked{Blocked: &treatyv1.Blocked{TargetKind: k, TargetId: id, Permanent: permanent}}}
}

// lifecycleBlock and lifecycleRestore are what the registry publishes for a suspension and a
// reactivation.
func lifecycleBlock(k treatyv1.TargetKind, id string) *treatyv1.Event {
	return &treatyv1.Event{Reason: "suspended", Change: &treatyv1.Event_Blocked{Blocked: &treatyv1.Blocked{TargetKind: k, TargetId: id, Lifecycle: true}}}
}

func lifecycleRestore(k treatyv1.TargetKind, id string) *treatyv1.Event {
	return &treatyv1.Event{Change: &treatyv1.Event_Restored{Restored: &treatyv1.Restored{TargetKind: k, TargetId: id, Lifecycle: true}}}
}

func restore(k treatyv1.TargetKind, id string) *treatyv1.Event {
	return &treatyv1.Event{Change: &treatyv1.Event_Restored{Restored: &treatyv1.Restored{TargetKind: k, TargetId: id}}}
}

func keyPublished(t testing.TB, kid string) *treatyv1.Event {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := (&jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: "EdDSA", Use: "sig"}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return &treatyv1.Event{Change: &treatyv1.Event_SigningKeyPublished{SigningKeyPublished: &treatyv1.SigningKeyPublished{
		Kid: kid, Algorithm: "EdDSA", PublicJwk: jwk, Issuer: "https://issuer.test"}}}
}

func keyRevoked(kid string) *treatyv1.Event {
	return &treatyv1.Event{Change: &treatyv1.Event_SigningKeyRevoked{SigningKeyRevoked: &treatyv1.SigningKeyRevoked{Kid: kid}}}
}

func credRevoked(jti string, exp time.Time) *treatyv1.Event {
	return &treatyv1.Event{Change: &treatyv1.Event_CredentialRevoked{CredentialRevoked: &treatyv1.CredentialRevoked{
		Jti: jti, ExpireTime: timestamppb.New(exp), PartnerId: "acme"}}}
}

// apply folds events into s, numbering them from s's next sequence.
func apply(t testing.TB, s *feed.State, events ...*treatyv1.Event) *feed.State {
	t.Helper()
	e := s.Edit()
	for _, ev := range events {
		ev.Sequence = e.Sequence() + 1
		if err := e.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	return e.State()
}

func onboarded(t testing.TB) *feed.State {
	return apply(t, feed.Empty("epoch-1"),
		partner("acme", treatyv1.PartnerState_PARTNER_STATE_ACTIVE),
		integration("acme-api", "acme"),
		workload("acme-bot", "acme-api", "acme"),
		keyPublished(t, "k1"),
	)
}

func TestControl(t *testing.T) {
	tests := []struct {
		name   string
		events []*treatyv1.Event
		kind   treatyv1.TargetKind
		id     string
		want   feed.Control
	}{
		{name: "fresh", kind: partnerK, id: "acme", want: feed.Control{}},
		{
			name:   "blocked",
			events: []*treatyv1.Event{block(partnerK, "acme", false)},
			kind:   partnerK, id: "acme",
			want: feed.Control{Block: &feed.Block{Sequence: 5, Reason: "why", Operator: true}},
		},
		{
			name:   "restore turns the block into a watermark",
			events: []*treatyv1.Event{block(workloadK, "acme-bot", false), restore(workloadK, "acme-bot")},
			kind:   workloadK, id: "acme-bot",
			want: feed.Control{Watermark: 6},
		},
		{
			name:   "second block keeps the first",
			events: []*treatyv1.Event{block(integrationK, "acme-api", false), block(integrationK, "acme-api", false)},
			kind:   integrationK, id: "acme-api",
			want: feed.Control{Block: &feed.Block{Sequence: 5, Reason: "why", Operator: true}},
		},
		{
			name:   "permanent block ignores restore",
			events: []*treatyv1.Event{block(partnerK, "acme", true), restore(partnerK, "acme")},
			kind:   partnerK, id: "acme",
			want: feed.Control{Block: &feed.Block{Sequence: 5, Permanent: true, Reason: "why", Operator: true}},
		},
		{
			name:   "a later permanent block upgrades",
			events: []*treatyv1.Event{block(partnerK, "acme", false), block(partnerK, "acme", true), restore(partnerK, "acme")},
			kind:   partnerK, id: "acme",
			want: feed.Control{Block: &feed.Block{Sequence: 5, Permanent: true, Reason: "why", Operator: true}},
		},
		{
			name:   "watermark only grows",
			events: []*treatyv1.Event{block(partnerK, "acme", false), restore(partnerK, "acme"), restore(partnerK, "acme")},
			kind:   partnerK, id: "acme",
			want: feed.Control{Watermark: 7},
		},
		{
			name:   "a reactivation lifts the lifecycle's block",
			events: []*treatyv1.Event{lifecycleBlock(partnerK, "acme"), lifecycleRestore(partnerK, "acme")},
			kind:   partnerK, id: "acme",
			want: feed.Control{Watermark: 6},
		},
		{
			name:   "a reactivation keeps an operator's block",
			events: []*treatyv1.Event{lifecycleBlock(partnerK, "acme"), block(partnerK, "acme", false), lifecycleRestore(partnerK, "acme")},
			kind:   partnerK, id: "acme",
			want: feed.Control{Block: &feed.Block{Sequence: 5, Reason: "suspended", Operator: true}},
		},
		{
			name:   "an operator's restore lifts both holds",
			events: []*treatyv1.Event{lifecycleBlock(partnerK, "acme"), block(partnerK, "acme", false), restore(partnerK, "acme")},
			kind:   partnerK, id: "acme",
			want: feed.Control{Watermark: 7},
		},
		{
			name:   "block before the entity is known still applies",
			events: []*treatyv1.Event{block(partnerK, "ghost", false), partner("ghost", treatyv1.PartnerState_PARTNER_STATE_ACTIVE)},
			kind:   partnerK, id: "ghost",
			want: feed.Control{Block: &feed.Block{Sequence: 5, Reason: "why", Operator: true}},
		},
		{
			name:   "registry change keeps the block",
			events: []*treatyv1.Event{block(workloadK, "acme-bot", false), workload("acme-bot", "acme-api", "acme")},
			kind:   workloadK, id: "acme-bot",
			want: feed.Control{Block: &feed.Block{Sequence: 5, Reason: "why", Operator: true}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := apply(t, onboarded(t), tc.events...)
			got, ok := s.Control(tc.kind, tc.id)
			if !ok {
				t.Fatalf("Control(%v, %s) not found", tc.kind, tc.id)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Control mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeysAndCredentials(t *testing.T) {
	s := onboarded(t)
	k, ok := s.SigningKey("k1")
	if !ok || k.Public == nil || k.Revoked() || k.Issuer != "https://issuer.test" {
		t.Fatalf("published key = %+v, %v", k, ok)
	}
	exp := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	s = apply(t, s, keyRevoked("k1"), keyPublished(t, "k1"), keyRevoked("unknown"), credRevoked("j1", exp), credRevoked("j1", exp.Add(-time.Hour)))
	if k, _ := s.SigningKey("k1"); k.RevokedSequence != 5 || k.Public == nil {
		t.Errorf("republishing must not un-revoke: %+v", k)
	}
	if k, ok := s.SigningKey("unknown"); !ok || !k.Revoked() || k.Public != nil {
		t.Errorf("revoking an unknown key must still deny it: %+v %v", k, ok)
	}
	if r, ok := s.RevokedCredential("j1"); !ok || r.Sequence != 8 || !r.Expires.Equal(exp) {
		t.Errorf("revoked credential = %+v %v, want first revocation with the later expiry", r, ok)
	}
	if _, ok := s.RevokedCredential("j2"); ok {
		t.Error("j2 is not revoked")
	}
}

func TestApplyRejectsGaps(t *testing.T) {
	e := feed.Empty("e").Edit()
	for _, seq := range []uint64{0, 2} {
		ev := partner("acme", treatyv1.PartnerState_PARTNER_STATE_ACTIVE)
		ev.Sequence = seq
		if err := e.Apply(ev); err == nil {
			t.Errorf("Apply(seq %d) on empty state succeeded", seq)
		}
	}
}

func TestEditLeavesOldStateAlone(t *testing.T) {
	old := onboarded(t)
	for i := range 200 { // enough partners to fill every shard
		old = apply(t, old, partner(fmt.Sprintf("p%d", i), treatyv1.PartnerState_PARTNER_STATE_ACTIVE))
	}
	next := apply(t, old, block(partnerK, "acme", false), partner("new", treatyv1.PartnerState_PARTNER_STATE_ACTIVE))
	if c, _ := old.Control(partnerK, "acme"); c.Block != nil {
		t.Error("old state sees the new block")
	}
	if _, ok := old.Partner("new"); ok {
		t.Error("old state sees the new partner")
	}
	if p, _, _, _, _ := old.Counts(); p != 201 {
		t.Errorf("old partner count = %d", p)
	}
	if p, _, _, _, _ := next.Counts(); p != 202 {
		t.Errorf("new partner count = %d", p)
	}
	if c, _ := next.Control(partnerK, "acme"); c.Block == nil {
		t.Error("new state lost the block")
	}
}

// Every State value has its own ID: an edit's result, even an empty edit's, a state rebuilt from
// its proto, and one loaded from a store never share the ID of the state they came from.
func TestStateIDs(t *testing.T) {
	schema := store.Schema{Name: "feedtest", Version: 1, Buckets: feed.Buckets}
	st := storetest.OpenBolt(t, schema)
	s := onboarded(t)
	if err := st.Update(func(tx store.Tx) error { return feed.SaveAll(tx, s) }); err != nil {
		t.Fatal(err)
	}
	var loaded *feed.State
	if err := st.View(func(tx store.Tx) (err error) { loaded, err = feed.Load(tx); return err }); err != nil {
		t.Fatal(err)
	}
	e := s.Edit()
	states := []*feed.State{
		feed.Empty("epoch-1"), feed.Empty("epoch-1"), s, e.State(), e.State(),
		apply(t, s, block(partnerK, "acme", false)), feed.FromProto(s.Proto()), loaded,
	}
	seen := map[uint64]int{}
	for i, st := range states {
		if st.ID() == 0 {
			t.Errorf("state %d has ID 0", i)
		}
		if j, dup := seen[st.ID()]; dup {
			t.Errorf("states %d and %d share ID %d", j, i, st.ID())
		}
		seen[st.ID()] = i
	}
}

func TestSaveLoadAndProtoRoundTrip(t *testing.T) {
	schema := store.Schema{Name: "feedtest", Version: 1, Buckets: feed.Buckets}
	st := storetest.OpenBolt(t, schema)
	s := onboarded(t)
	e := s.Edit()
	for _, ev := range []*treatyv1.Event{block(partnerK, "acme", false), restore(partnerK, "acme"), keyRevoked("k1"),
		credRevoked("j1", contractEnd), block(workloadK, "acme-bot", true)} {
		ev.Sequence = e.Sequence() + 1
		if err := e.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	// Save the first batch as a whole and the second as changes, the way followers do.
	if err := st.Update(func(tx store.Tx) error { return feed.SaveAll(tx, s) }); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(e.Changes().Save); err != nil {
		t.Fatal(err)
	}
	want := e.State()
	var loaded *feed.State
	if err := st.View(func(tx store.Tx) (err error) { loaded, err = feed.Load(tx); return err }); err != nil {
		t.Fatal(err)
	}
	if loaded.Sequence() != 9 || loaded.Epoch() != "epoch-1" {
		t.Fatalf("loaded at %s/%d", loaded.Epoch(), loaded.Sequence())
	}
	opts := []cmp.Option{protocmp.Transform(), protocmp.SortRepeated(func(a, b *treatyv1.PartnerRecord) bool { return a.Partner.PartnerId < b.Partner.PartnerId })}
	if diff := cmp.Diff(want.Proto(), loaded.Proto(), opts...); diff != "" {
		t.Errorf("Load mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want.Proto(), feed.FromProto(want.Proto()).Proto(), opts...); diff != "" {
		t.Errorf("proto round trip mismatch (-want +got):\n%s", diff)
	}
	if k, _ := loaded.SigningKey("k1"); k.Public == nil {
		t.Error("loaded key was not parsed")
	}
}

func TestCheckChange(t *testing.T) {
	good := []*treatyv1.Event{partner("acme", treatyv1.PartnerState_PARTNER_STATE_ACTIVE), integration("a", "acme"),
		workload("w", "a", "acme"), block(partnerK, "acme", false), restore(workloadK, "w"), keyPublished(t, "k"),
		keyRevoked("k"), credRevoked("j", contractEnd)}
	for _, ev := range good {
		if err := feed.CheckChange(ev); err != nil {
			t.Errorf("CheckChange(%v) = %v", ev, err)
		}
	}
	badKey := keyPublished(t, "k")
	badKey.GetSigningKeyPublished().PublicJwk = []byte(`{"kty":"OKP"}`)
	bad := []*treatyv1.Event{
		{},
		partner("Acme", treatyv1.PartnerState_PARTNER_STATE_ACTIVE),
		partner("acme", treatyv1.PartnerState_PARTNER_STATE_UNSPECIFIED),
		block(treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "j", false),
		restore(partnerK, ""),
		badKey,
		keyRevoked("has space"),
		credRevoked("", contractEnd),
		workload("w", "", "acme"),
	}
	for _, ev := range bad {
		if err := feed.CheckChange(ev); err == nil {
			t.Errorf("CheckChange(%v) accepted a bad event", ev)
		}
	}
}

func TestDescribe(t *testing.T) {
	kind, target := feed.Describe(block(partnerK, "acme", false))
	if kind != "blocked" || target != "partner/acme" {
		t.Errorf("Describe = %s %s", kind, target)
	}
	for _, name := range []string{"credential", "workload", "integration", "partner", "key"} {
		k, ok := feed.ParseKind(name)
		if !ok || feed.KindName(k) != name {
			t.Errorf("ParseKind(%s) = %v %v", name, k, ok)
		}
	}
}
