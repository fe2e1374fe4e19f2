package feed

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// The buckets a State is kept in. A service that persists a State includes Buckets in its schema.
const (
	bucketMeta         = "feed_meta"
	bucketPartners     = "feed_partners"
	bucketIntegrations = "feed_integrations"
	bucketWorkloads    = "feed_workloads"
	bucketKeys         = "feed_keys"
	bucketRevoked      = "feed_revoked"
	bucketPolicies     = "feed_policies"
)

// Buckets lists the buckets Save and Load use.
var Buckets = []string{bucketMeta, bucketPartners, bucketIntegrations, bucketWorkloads, bucketKeys, bucketRevoked, bucketPolicies}

var (
	metaEpoch    = []byte("epoch")
	metaSequence = []byte("sequence")
	// The break-glass watermark and the sequence of the event that set it.
	metaGlobal    = []byte("global_watermark")
	metaGlobalSeq = []byte("global_watermark_sequence")
)

// Changes is what an edit changed, ready to be saved in the same transaction as whatever else
// the caller writes.
type Changes struct {
	state *State
	dirty map[recordRef]struct{}
}

// Save writes the changed records and the new sequence into tx.
func (c *Changes) Save(tx store.Tx) error {
	for ref := range c.dirty {
		raw, err := c.state.encodeRecord(ref)
		if err != nil {
			return err
		}
		if raw == nil {
			if err := tx.Delete(ref.bucket, []byte(ref.key)); err != nil {
				return err
			}
			continue
		}
		if err := tx.Put(ref.bucket, []byte(ref.key), raw); err != nil {
			return err
		}
	}
	return saveMeta(tx, c.state)
}

func saveMeta(tx store.Tx, s *State) error {
	if err := tx.Put(bucketMeta, metaEpoch, []byte(s.epoch)); err != nil {
		return err
	}
	if err := tx.Put(bucketMeta, metaSequence, store.Uint64Key(s.seq)); err != nil {
		return err
	}
	if err := tx.Put(bucketMeta, metaGlobal, store.Uint64Key(s.global)); err != nil {
		return err
	}
	return tx.Put(bucketMeta, metaGlobalSeq, store.Uint64Key(s.globalSeq))
}

// SaveEpoch gives the state saved in tx a new epoch, leaving its records as they are: a restored
// log keeps its state under a new epoch with one write, however large the state (a transaction
// in etcd is bounded).
func SaveEpoch(tx store.Tx, epoch string) error {
	return tx.Put(bucketMeta, metaEpoch, []byte(epoch))
}

// SaveAll replaces whatever state tx holds with s, for a resync from a snapshot.
func SaveAll(tx store.Tx, s *State) error {
	for _, b := range Buckets {
		if err := tx.Clear(b); err != nil {
			return err
		}
	}
	c := &Changes{state: s, dirty: make(map[recordRef]struct{})}
	s.partners.each(func(k string, _ *Partner) bool { c.dirty[recordRef{bucketPartners, k}] = struct{}{}; return true })
	s.integrations.each(func(k string, _ *Integration) bool {
		c.dirty[recordRef{bucketIntegrations, k}] = struct{}{}
		return true
	})
	s.workloads.each(func(k string, _ *Workload) bool { c.dirty[recordRef{bucketWorkloads, k}] = struct{}{}; return true })
	s.keys.each(func(k string, _ *SigningKey) bool { c.dirty[recordRef{bucketKeys, k}] = struct{}{}; return true })
	s.revoked.each(func(k string, _ *RevokedCredential) bool {
		c.dirty[recordRef{bucketRevoked, k}] = struct{}{}
		return true
	})
	s.policies.each(func(k string, p *Policies) bool {
		for _, r := range policyRecords(p) {
			c.dirty[recordRef{bucketPolicies, policyKey(k, r.GetMode())}] = struct{}{}
		}
		return true
	})
	return c.Save(tx)
}

// Load reads the state saved in tx. A store that never held a state yields an empty state with no
// epoch.
func Load(tx store.Tx) (*State, error) {
	p := &treatyv1.EnforcementState{
		Epoch:    string(tx.Get(bucketMeta, metaEpoch)),
		Sequence: store.KeyUint64(tx.Get(bucketMeta, metaSequence)),
		// A store saved before the watermark existed has no key: zero, never set.
		GlobalWatermark: store.KeyUint64(tx.Get(bucketMeta, metaGlobal)),
	}
	scan := func(bucket string, decode func([]byte) error) error {
		return tx.Scan(bucket, nil, nil, func(k, v []byte) (bool, error) {
			if err := decode(v); err != nil {
				return false, fmt.Errorf("feed: decode %s/%s: %w", bucket, k, err)
			}
			return true, nil
		})
	}
	err := scan(bucketPartners, func(v []byte) error {
		r := new(treatyv1.PartnerRecord)
		p.Partners = append(p.Partners, r)
		return proto.Unmarshal(v, r)
	})
	if err == nil {
		err = scan(bucketIntegrations, func(v []byte) error {
			r := new(treatyv1.IntegrationRecord)
			p.Integrations = append(p.Integrations, r)
			return proto.Unmarshal(v, r)
		})
	}
	if err == nil {
		err = scan(bucketWorkloads, func(v []byte) error {
			r := new(treatyv1.WorkloadRecord)
			p.Workloads = append(p.Workloads, r)
			return proto.Unmarshal(v, r)
		})
	}
	if err == nil {
		err = scan(bucketKeys, func(v []byte) error {
			r := new(treatyv1.SigningKeyRecord)
			p.SigningKeys = append(p.SigningKeys, r)
			return proto.Unmarshal(v, r)
		})
	}
	if err == nil {
		err = scan(bucketRevoked, func(v []byte) error {
			r := new(treatyv1.RevokedCredential)
			p.RevokedCredentials = append(p.RevokedCredentials, r)
			return proto.Unmarshal(v, r)
		})
	}
	if err == nil {
		err = scan(bucketPolicies, func(v []byte) error {
			r := new(treatyv1.PolicyChanged)
			p.Policies = append(p.Policies, r)
			return proto.Unmarshal(v, r)
		})
	}
	if err != nil {
		return nil, err
	}
	s := FromProto(p)
	s.globalSeq = store.KeyUint64(tx.Get(bucketMeta, metaGlobalSeq))
	return s, nil
}

func (s *State) encodeRecord(ref recordRef) ([]byte, error) {
	var m proto.Message
	switch ref.bucket {
	case bucketPartners:
		p, _ := s.partners.get(ref.key)
		m = partnerRecord(p)
	case bucketIntegrations:
		i, _ := s.integrations.get(ref.key)
		m = integrationRecord(i)
	case bucketWorkloads:
		w, _ := s.workloads.get(ref.key)
		m = workloadRecord(w)
	case bucketKeys:
		k, _ := s.keys.get(ref.key)
		m = keyRecord(k)
	case bucketRevoked:
		r, ok := s.revoked.get(ref.key)
		if !ok {
			return nil, nil // forgotten (ForgetExpired): Save deletes the record
		}
		m = revokedRecord(r)
	case bucketPolicies:
		// The key is PARTNER/MODE; a mode without a set has no record.
		partnerID, modeName, _ := strings.Cut(ref.key, "/")
		mode := treatyv1.PolicyMode_POLICY_MODE_LIVE
		if modeName == "shadow" {
			mode = treatyv1.PolicyMode_POLICY_MODE_SHADOW
		}
		p, _ := s.policies.get(partnerID)
		r := policyRecord(p, mode)
		if r == nil {
			return nil, nil
		}
		m = r
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// Proto returns the state as an EnforcementState message, for the Snapshot RPC.
func (s *State) Proto() *treatyv1.EnforcementState {
	p := &treatyv1.EnforcementState{Epoch: s.epoch, Sequence: s.seq, GlobalWatermark: s.global}
	s.partners.each(func(_ string, v *Partner) bool { p.Partners = append(p.Partners, partnerRecord(v)); return true })
	s.integrations.each(func(_ string, v *Integration) bool {
		p.Integrations = append(p.Integrations, integrationRecord(v))
		return true
	})
	s.workloads.each(func(_ string, v *Workload) bool { p.Workloads = append(p.Workloads, workloadRecord(v)); return true })
	s.keys.each(func(_ string, v *SigningKey) bool { p.SigningKeys = append(p.SigningKeys, keyRecord(v)); return true })
	s.revoked.each(func(_ string, v *RevokedCredential) bool {
		p.RevokedCredentials = append(p.RevokedCredentials, revokedRecord(v))
		return true
	})
	s.policies.each(func(_ string, v *Policies) bool { p.Policies = append(p.Policies, policyRecords(v)...); return true })
	return p
}

// FromProto builds a State from an EnforcementState message.
func FromProto(p *treatyv1.EnforcementState) *State {
	s := &State{epoch: p.GetEpoch(), seq: p.GetSequence(), global: p.GetGlobalWatermark()}
	e := s.Edit() // its State gets the ID
	for _, r := range p.GetPartners() {
		pc := r.GetPartner()
		e.partners.set(pc.GetPartnerId(), &Partner{
			ID: pc.GetPartnerId(), State: pc.GetState(), ContractEnd: timeOf(pc.GetContractEndTime()),
			Control: controlOf(r.GetBlock(), r.GetWatermark()),
		})
	}
	for _, r := range p.GetIntegrations() {
		ic := r.GetIntegration()
		e.integrations.set(ic.GetIntegrationId(), &Integration{
			ID: ic.GetIntegrationId(), PartnerID: ic.GetPartnerId(), State: ic.GetState(),
			AllowedScopes: ic.GetAllowedScopes(), Audiences: ic.GetAudiences(),
			MaxTTL:      ic.GetMaxCredentialTtl().AsDuration(),
			Environment: ic.GetEnvironment(), SourceRanges: parseRanges(ic.GetSourceRanges()),
			Control: controlOf(r.GetBlock(), r.GetWatermark()),
		})
	}
	for _, r := range p.GetWorkloads() {
		wc := r.GetWorkload()
		e.workloads.set(wc.GetWorkloadId(), &Workload{
			ID: wc.GetWorkloadId(), IntegrationID: wc.GetIntegrationId(), PartnerID: wc.GetPartnerId(),
			State: wc.GetState(), Control: controlOf(r.GetBlock(), r.GetWatermark()),
		})
	}
	for _, r := range p.GetSigningKeys() {
		k := r.GetKey()
		e.keys.set(k.GetKid(), &SigningKey{
			Kid: k.GetKid(), Algorithm: k.GetAlgorithm(), Issuer: k.GetIssuer(), JWK: k.GetPublicJwk(),
			Public: parsePublicJWK(k.GetPublicJwk()), RevokedSequence: r.GetRevokedSequence(),
		})
	}
	for _, r := range p.GetRevokedCredentials() {
		e.revoked.set(r.GetJti(), &RevokedCredential{
			JTI: r.GetJti(), Expires: timeOf(r.GetExpireTime()), Sequence: r.GetSequence(), PartnerID: r.GetPartnerId(),
		})
	}
	for _, r := range p.GetPolicies() {
		old, _ := e.policies.m.get(r.GetPartnerId())
		if n := changePolicies(old, r); n != nil {
			e.policies.set(r.GetPartnerId(), n)
		}
	}
	return e.State()
}

func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func tsOf(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func controlOf(b *treatyv1.Block, watermark uint64) Control {
	c := Control{Watermark: watermark}
	if b != nil {
		c.Block = &Block{Sequence: b.GetSequence(), Permanent: b.GetPermanent(), Reason: b.GetReason(),
			Lifecycle: b.GetLifecycle(), Operator: b.GetOperator() || !b.GetLifecycle()}
	}
	return c
}

func blockProto(b *Block) *treatyv1.Block {
	if b == nil {
		return nil
	}
	return &treatyv1.Block{Sequence: b.Sequence, Permanent: b.Permanent, Reason: b.Reason, Lifecycle: b.Lifecycle, Operator: b.Operator}
}

func partnerRecord(p *Partner) *treatyv1.PartnerRecord {
	return &treatyv1.PartnerRecord{
		Partner:   &treatyv1.PartnerChanged{PartnerId: p.ID, State: p.State, ContractEndTime: tsOf(p.ContractEnd)},
		Block:     blockProto(p.Block),
		Watermark: p.Watermark,
	}
}

func integrationRecord(i *Integration) *treatyv1.IntegrationRecord {
	return &treatyv1.IntegrationRecord{
		Integration: &treatyv1.IntegrationChanged{
			IntegrationId: i.ID, PartnerId: i.PartnerID, State: i.State,
			AllowedScopes: i.AllowedScopes, Audiences: i.Audiences, MaxCredentialTtl: durationpb.New(i.MaxTTL),
			Environment: i.Environment, SourceRanges: rangeStrings(i.SourceRanges),
		},
		Block:     blockProto(i.Block),
		Watermark: i.Watermark,
	}
}

func workloadRecord(w *Workload) *treatyv1.WorkloadRecord {
	return &treatyv1.WorkloadRecord{
		Workload:  &treatyv1.WorkloadChanged{WorkloadId: w.ID, IntegrationId: w.IntegrationID, PartnerId: w.PartnerID, State: w.State},
		Block:     blockProto(w.Block),
		Watermark: w.Watermark,
	}
}

func keyRecord(k *SigningKey) *treatyv1.SigningKeyRecord {
	return &treatyv1.SigningKeyRecord{
		Key:             &treatyv1.SigningKeyPublished{Kid: k.Kid, Algorithm: k.Algorithm, Issuer: k.Issuer, PublicJwk: k.JWK},
		RevokedSequence: k.RevokedSequence,
	}
}

func revokedRecord(r *RevokedCredential) *treatyv1.RevokedCredential {
	return &treatyv1.RevokedCredential{Jti: r.JTI, ExpireTime: tsOf(r.Expires), Sequence: r.Sequence, PartnerId: r.PartnerID}
}
