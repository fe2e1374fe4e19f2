package feed

import (
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// GapError reports an event that does not directly follow the state it is applied to.
type GapError struct {
	Have, Got uint64
}

func (e *GapError) Error() string {
	return fmt.Sprintf("feed: event %d does not follow sequence %d", e.Got, e.Have)
}

// Editor derives a new State from an old one by applying events in order. The old State is never
// modified. An Editor is not safe for concurrent use.
type Editor struct {
	next         State
	partners     cowEdit[*Partner]
	integrations cowEdit[*Integration]
	workloads    cowEdit[*Workload]
	keys         cowEdit[*SigningKey]
	revoked      cowEdit[*RevokedCredential]
	policies     cowEdit[*Policies]
	dirty        map[recordRef]struct{}
}

// recordRef names one record of a state, for saving what an edit changed.
type recordRef struct {
	bucket string
	key    string
}

// Edit starts deriving a new State from s.
func (s *State) Edit() *Editor {
	e := &Editor{next: *s, dirty: make(map[recordRef]struct{})}
	e.partners.m = &e.next.partners
	e.integrations.m = &e.next.integrations
	e.workloads.m = &e.next.workloads
	e.keys.m = &e.next.keys
	e.revoked.m = &e.next.revoked
	e.policies.m = &e.next.policies
	return e
}

// Sequence returns the sequence of the last event applied so far.
func (e *Editor) Sequence() uint64 { return e.next.seq }

// State returns the state built so far. It shares the shards the edit owns, so it stays
// unchanged only if the Editor is not used again: to keep a state, stop editing; to read between
// events, read it before the next Apply.
func (e *Editor) State() *State {
	s := e.next
	s.id = nextStateID() // a new value, even when the edit changed nothing
	return &s
}

// Changes returns what the edit changed, for saving into a store.
func (e *Editor) Changes() *Changes { return &Changes{state: e.State(), dirty: e.dirty} }

// Apply folds one event into the state. The event must carry the next sequence; any well-sequenced
// event applies, so a follower never stalls on content it does not understand.
func (e *Editor) Apply(ev *treatyv1.Event) error {
	if ev.GetSequence() != e.next.seq+1 {
		return &GapError{Have: e.next.seq, Got: ev.GetSequence()}
	}
	e.next.seq = ev.GetSequence()
	seq := ev.GetSequence()
	switch c := ev.GetChange().(type) {
	case *treatyv1.Event_CredentialRevoked:
		e.revokeCredential(c.CredentialRevoked, seq)
	case *treatyv1.Event_Blocked:
		b := c.Blocked
		e.control(b.GetTargetKind(), b.GetTargetId(), func(ctl *Control) {
			switch {
			case ctl.Block == nil:
				ctl.Block = &Block{Sequence: seq, Permanent: b.GetPermanent(), Reason: ev.GetReason()}
			case b.GetPermanent() && !ctl.Block.Permanent:
				ctl.Block = &Block{Sequence: ctl.Block.Sequence, Permanent: true, Reason: ev.GetReason(),
					Lifecycle: ctl.Block.Lifecycle, Operator: ctl.Block.Operator}
			default:
				blk := *ctl.Block // states are immutable: copy before changing the holds
				ctl.Block = &blk
			}
			if b.GetLifecycle() {
				ctl.Block.Lifecycle = true
			} else {
				ctl.Block.Operator = true
			}
		})
	case *treatyv1.Event_Restored:
		r := c.Restored
		e.control(r.GetTargetKind(), r.GetTargetId(), func(ctl *Control) {
			if ctl.Block != nil && ctl.Block.Permanent {
				return // never lifted; the revoker refuses such restores anyway
			}
			if r.GetLifecycle() && ctl.Block != nil && ctl.Block.Operator {
				// A reactivation releases the lifecycle's hold only: the operator's block stays,
				// and so do the credentials it killed, until an operator restores it.
				blk := *ctl.Block
				blk.Lifecycle = false
				ctl.Block = &blk
				return
			}
			ctl.Block = nil
			ctl.Watermark = max(ctl.Watermark, seq)
		})
	case *treatyv1.Event_SigningKeyPublished:
		e.publishKey(c.SigningKeyPublished)
	case *treatyv1.Event_SigningKeyRevoked:
		kid := c.SigningKeyRevoked.GetKid()
		k := &SigningKey{Kid: kid}
		if old, ok := e.next.keys.get(kid); ok {
			if old.Revoked() {
				return nil
			}
			*k = *old
		}
		k.RevokedSequence = seq
		e.setKey(k)
	case *treatyv1.Event_PartnerChanged:
		pc := c.PartnerChanged
		p := &Partner{ID: pc.GetPartnerId()}
		if old, ok := e.next.partners.get(p.ID); ok {
			p.Control = old.Control
		}
		p.State = pc.GetState()
		p.ContractEnd = timeOf(pc.GetContractEndTime())
		e.setPartner(p)
	case *treatyv1.Event_IntegrationChanged:
		ic := c.IntegrationChanged
		i := &Integration{ID: ic.GetIntegrationId()}
		if old, ok := e.next.integrations.get(i.ID); ok {
			i.Control = old.Control
		}
		i.PartnerID = ic.GetPartnerId()
		i.State = ic.GetState()
		i.AllowedScopes = ic.GetAllowedScopes()
		i.Audiences = ic.GetAudiences()
		i.MaxTTL = ic.GetMaxCredentialTtl().AsDuration()
		i.Environment = ic.GetEnvironment()
		i.SourceRanges = parseRanges(ic.GetSourceRanges())
		e.setIntegration(i)
	case *treatyv1.Event_WorkloadChanged:
		wc := c.WorkloadChanged
		w := &Workload{ID: wc.GetWorkloadId()}
		if old, ok := e.next.workloads.get(w.ID); ok {
			w.Control = old.Control
		}
		w.IntegrationID = wc.GetIntegrationId()
		w.PartnerID = wc.GetPartnerId()
		w.State = wc.GetState()
		e.setWorkload(w)
	case *treatyv1.Event_PolicyChanged:
		e.changePolicy(c.PolicyChanged)
	case *treatyv1.Event_GlobalWatermark:
		// It only rises: a lower or equal one changes nothing (the revoker refuses those anyway).
		if b := c.GlobalWatermark.GetBelowSequence(); b > e.next.global {
			e.next.global, e.next.globalSeq = b, seq
		}
	}
	return nil
}

// ForgetExpired drops up to limit revoked credentials whose denylisting ended before t, and
// returns how many it dropped. A credential past its expiry is denied as expired whatever the
// denylist says, so its entry only costs memory; t should trail the clock by a margin for the
// clocks of the deciders. Changes saves the removals; the limit bounds how many one save writes
// (a transaction in etcd is bounded), so a caller that gets limit back calls again.
func (e *Editor) ForgetExpired(t time.Time, limit int) int {
	var gone []string
	e.next.revoked.each(func(jti string, r *RevokedCredential) bool {
		if r.Expires.Before(t) {
			gone = append(gone, jti)
		}
		return len(gone) < limit
	})
	for _, jti := range gone {
		e.revoked.delete(jti)
		e.dirty[recordRef{bucketRevoked, jti}] = struct{}{}
	}
	return len(gone)
}

func (e *Editor) changePolicy(pc *treatyv1.PolicyChanged) {
	id := pc.GetPartnerId()
	old, _ := e.next.policies.get(id)
	n := changePolicies(old, pc)
	if n == old {
		return
	}
	if n == nil {
		e.policies.delete(id)
	} else {
		e.policies.set(id, n)
	}
	e.dirty[recordRef{bucketPolicies, policyKey(id, pc.GetMode())}] = struct{}{}
}

func (e *Editor) revokeCredential(c *treatyv1.CredentialRevoked, seq uint64) {
	r := &RevokedCredential{JTI: c.GetJti(), Expires: timeOf(c.GetExpireTime()), Sequence: seq, PartnerID: c.GetPartnerId()}
	if old, ok := e.next.revoked.get(r.JTI); ok {
		// Revoked already: keep the first revocation and the later expiry.
		if !r.Expires.After(old.Expires) {
			return
		}
		r.Sequence, r.PartnerID = old.Sequence, old.PartnerID
	}
	e.revoked.set(r.JTI, r)
	e.dirty[recordRef{bucketRevoked, r.JTI}] = struct{}{}
}

func (e *Editor) publishKey(p *treatyv1.SigningKeyPublished) {
	k := &SigningKey{Kid: p.GetKid(), Algorithm: p.GetAlgorithm(), Issuer: p.GetIssuer(), JWK: p.GetPublicJwk()}
	k.Public = parsePublicJWK(k.JWK)
	if old, ok := e.next.keys.get(k.Kid); ok {
		k.RevokedSequence = old.RevokedSequence // republishing never un-revokes
	}
	e.setKey(k)
}

// parsePublicJWK returns the public key in a JWK, or nil if it is not a valid public key.
func parsePublicJWK(raw []byte) any {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil
	}
	return jwk.Key
}

// control edits the Control of an entity, creating a placeholder record if the entity is unknown:
// a block must take effect even if it arrives before the entity does.
func (e *Editor) control(kind treatyv1.TargetKind, id string, edit func(*Control)) {
	switch kind {
	case treatyv1.TargetKind_TARGET_KIND_PARTNER:
		p := &Partner{ID: id}
		if old, ok := e.next.partners.get(id); ok {
			*p = *old
		}
		edit(&p.Control)
		e.setPartner(p)
	case treatyv1.TargetKind_TARGET_KIND_INTEGRATION:
		i := &Integration{ID: id}
		if old, ok := e.next.integrations.get(id); ok {
			*i = *old
		}
		edit(&i.Control)
		e.setIntegration(i)
	case treatyv1.TargetKind_TARGET_KIND_WORKLOAD:
		w := &Workload{ID: id}
		if old, ok := e.next.workloads.get(id); ok {
			*w = *old
		}
		edit(&w.Control)
		e.setWorkload(w)
	}
}

func (e *Editor) setPartner(p *Partner) {
	e.partners.set(p.ID, p)
	e.dirty[recordRef{bucketPartners, p.ID}] = struct{}{}
}

func (e *Editor) setIntegration(i *Integration) {
	e.integrations.set(i.ID, i)
	e.dirty[recordRef{bucketIntegrations, i.ID}] = struct{}{}
}

func (e *Editor) setWorkload(w *Workload) {
	e.workloads.set(w.ID, w)
	e.dirty[recordRef{bucketWorkloads, w.ID}] = struct{}{}
}

func (e *Editor) setKey(k *SigningKey) {
	e.keys.set(k.Kid, k)
	e.dirty[recordRef{bucketKeys, k.Kid}] = struct{}{}
}
