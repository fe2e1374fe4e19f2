package revoker

import (
	"context"
	"slices"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// MaxBlastIDs bounds the credential ids a blast radius lists.
const MaxBlastIDs = 100

// inventoryTimeout bounds how long a dry run waits for the inventory.
const inventoryTimeout = 5 * time.Second

// Inventory counts the live credentials in the issuer's inventory, so that a dry run can say what
// a revocation would kill. It is optional: without it a dry run reports the entities it cuts off
// and says the inventory was unavailable.
type Inventory interface {
	// LiveCredentials counts the unexpired credentials q selects and returns up to q.MaxIDs of
	// their ids, soonest-expiring last.
	LiveCredentials(ctx context.Context, q InventoryQuery) (count uint64, ids []string, err error)
}

// InventoryQuery selects credentials in the inventory. Every field that is set must match.
type InventoryQuery struct {
	PartnerID, IntegrationID, WorkloadID string
	// CredentialID is a jti.
	CredentialID string
	// Kid is a signing key id.
	Kid string
	// BelowSequence, if non-zero, selects credentials issued at a feed sequence (tsq) below it: a
	// break-glass revocation's reach.
	BelowSequence uint64
	// MinSequence, if non-zero, leaves out credentials issued before it: a restore's watermark
	// killed those already.
	MinSequence uint64
	// MaxIDs is how many ids to return.
	MaxIDs int
	// WorkloadIDs, if not empty, selects credentials of one of these workloads: a block counts only
	// the credentials of the workloads it cuts off, not those already dead under a blocked or
	// inactive one.
	WorkloadIDs []string
}

// BlastRadius is what a revocation would hit: the entities it cuts off (active and not blocked
// yet) and the live credentials it kills.
type BlastRadius struct {
	// LiveCredentials counts the live credentials it kills, from the inventory. Credentials that
	// were revoked one by one are left out when they are among CredentialIDs; beyond those ids the
	// count may include a few.
	LiveCredentials uint64
	// CredentialIDs are up to MaxBlastIDs of them, soonest-expiring last.
	CredentialIDs []string
	// PartnerIDs, IntegrationIDs and WorkloadIDs are the entities cut off, in id order.
	PartnerIDs, IntegrationIDs, WorkloadIDs []string
	// InventoryUnavailable is true when the inventory is not configured or did not answer, so that
	// LiveCredentials and CredentialIDs are unknown.
	InventoryUnavailable bool
}

// BlastRadius reports what revoking target would hit, from the feed's state at the head and the
// inventory, without appending anything. A target Revoke would refuse as unknown is refused the
// same way; a target already revoked or blocked hits nothing more.
func (l *Log) BlastRadius(ctx context.Context, kind treatyv1.TargetKind, target string) (BlastRadius, error) {
	if err := feed.CheckTarget("target_id", kind, target); err != nil {
		return BlastRadius{}, err
	}
	s := l.State()
	var br BlastRadius
	q := InventoryQuery{MaxIDs: MaxBlastIDs}
	switch kind {
	case treatyv1.TargetKind_TARGET_KIND_CREDENTIAL:
		if _, ok := s.RevokedCredential(target); ok {
			return br, nil
		}
		q.CredentialID = target
	case treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY:
		k, ok := s.SigningKey(target)
		if !ok {
			return BlastRadius{}, fail.NotFoundf("signing key %q was never published into the feed; list keys with the issuer", target)
		}
		if k.Revoked() {
			return br, nil
		}
		q.Kid = target
	default:
		ctl, ok := s.Control(kind, target)
		if !ok {
			return BlastRadius{}, notKnown(kind, target)
		}
		if ctl.Block != nil {
			return br, nil
		}
		cutOff(s, kind, target, &br, &q)
		if len(br.WorkloadIDs) == 0 {
			return br, nil // no workload it cuts off can hold a valid credential
		}
		q.WorkloadIDs = br.WorkloadIDs
	}
	q.MinSequence = max(q.MinSequence, s.GlobalWatermark())
	l.countLive(ctx, s, q, &br)
	return br, nil
}

// BlastRadiusBelow reports what a break-glass revocation of every credential with a tsq below
// below would kill; zero means the head plus one (every credential issued so far). It cuts off no
// entity: their workloads may obtain new credentials at once.
func (l *Log) BlastRadiusBelow(ctx context.Context, below uint64) (BlastRadius, error) {
	s := l.State()
	if below == 0 {
		below = s.Sequence() + 1
	}
	var br BlastRadius
	gw := s.GlobalWatermark()
	if below <= gw {
		return br, nil // an earlier break-glass revocation killed all of those already
	}
	l.countLive(ctx, s, InventoryQuery{BelowSequence: below, MinSequence: gw, MaxIDs: MaxBlastIDs}, &br)
	return br, nil
}

// cutOff fills in the entities a block on target cuts off, and narrows q to the credentials under
// it that its watermarks have not killed already.
func cutOff(s *feed.State, kind treatyv1.TargetKind, target string, br *BlastRadius, q *InventoryQuery) {
	switch kind {
	case treatyv1.TargetKind_TARGET_KIND_PARTNER:
		q.PartnerID = target
		if livePartner(s, target) {
			br.PartnerIDs = []string{target}
		}
		q.MinSequence = watermark(s, target, "", "")
		// The feed state offers no walk over integrations, so take them from its snapshot form; a
		// dry run is rare enough for the copy.
		for _, r := range s.Proto().GetIntegrations() {
			if i := r.GetIntegration(); i.GetPartnerId() == target && liveIntegration(s, i.GetIntegrationId()) {
				br.IntegrationIDs = append(br.IntegrationIDs, i.GetIntegrationId())
			}
		}
		s.EachWorkload(func(w *feed.Workload) bool {
			if w.PartnerID == target && liveWorkload(s, w) {
				br.WorkloadIDs = append(br.WorkloadIDs, w.ID)
			}
			return true
		})
	case treatyv1.TargetKind_TARGET_KIND_INTEGRATION:
		i, _ := s.Integration(target)
		q.PartnerID, q.IntegrationID = i.PartnerID, target
		if liveIntegration(s, target) {
			br.IntegrationIDs = []string{target}
		}
		q.MinSequence = watermark(s, i.PartnerID, target, "")
		s.EachWorkload(func(w *feed.Workload) bool {
			if w.IntegrationID == target && liveWorkload(s, w) {
				br.WorkloadIDs = append(br.WorkloadIDs, w.ID)
			}
			return true
		})
	case treatyv1.TargetKind_TARGET_KIND_WORKLOAD:
		w, _ := s.Workload(target)
		q.WorkloadID = target
		if liveWorkload(s, w) {
			br.WorkloadIDs = []string{target}
		}
		q.MinSequence = watermark(s, w.PartnerID, w.IntegrationID, target)
	}
	slices.Sort(br.IntegrationIDs)
	slices.Sort(br.WorkloadIDs)
}

// admits reports whether an entity in state active (by its kind's rule) with ctl still admits
// credentials.
func admits(active bool, ctl feed.Control) bool { return active && ctl.Block == nil }

func livePartner(s *feed.State, id string) bool {
	p, ok := s.Partner(id)
	return ok && admits(p.State == treatyv1.PartnerState_PARTNER_STATE_ACTIVE, p.Control)
}

func liveIntegration(s *feed.State, id string) bool {
	i, ok := s.Integration(id)
	return ok && admits(i.State == treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE, i.Control) && livePartner(s, i.PartnerID)
}

func liveWorkload(s *feed.State, w *feed.Workload) bool {
	return w != nil && admits(w.State == treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE, w.Control) && liveIntegration(s, w.IntegrationID)
}

// watermark is the highest restore watermark along a credential's chain: credentials issued
// before it are dead already.
func watermark(s *feed.State, partnerID, integrationID, workloadID string) uint64 {
	var m uint64
	if p, ok := s.Partner(partnerID); ok {
		m = max(m, p.Watermark)
	}
	if i, ok := s.Integration(integrationID); ok {
		m = max(m, i.Watermark)
	}
	if w, ok := s.Workload(workloadID); ok {
		m = max(m, w.Watermark)
	}
	return m
}

// countLive asks the inventory for the live credentials q selects, leaving out those the feed
// revoked one by one. An inventory that is absent or fails never fails the dry run: it says so.
func (l *Log) countLive(ctx context.Context, s *feed.State, q InventoryQuery, br *BlastRadius) {
	if l.cfg.Inventory == nil {
		br.InventoryUnavailable = true
		return
	}
	cctx, cancel := context.WithTimeout(ctx, inventoryTimeout)
	defer cancel()
	count, ids, err := l.cfg.Inventory.LiveCredentials(cctx, q)
	if err != nil {
		l.cfg.Logger.Warn("revoker: credential inventory unreachable; the dry run reports no credentials", "err", err)
		br.InventoryUnavailable = true
		return
	}
	if len(ids) > MaxBlastIDs {
		ids = ids[:MaxBlastIDs]
	}
	br.CredentialIDs = make([]string, 0, len(ids))
	for _, id := range ids {
		if _, revoked := s.RevokedCredential(id); revoked {
			count = max(count, 1) - 1
			continue
		}
		br.CredentialIDs = append(br.CredentialIDs, id)
	}
	br.LiveCredentials = count
}
