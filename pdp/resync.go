package pdp

import (
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// keepRevocations returns the snapshot of a replacement feed with every revocation of the old
// state folded in, and how many it had to carry over.
//
// A feed is replaced when the revoker's log was lost or restored from a backup. Whatever the new
// log forgot, a revocation must not come undone by it (DESIGN: "keep every revocation"), so the
// union is kept, and the registry's lifecycle data is taken from the snapshot alone:
//   - revoked credentials: the union; for a jti in both, the later expiry;
//   - revoked signing keys: a key revoked in the old state stays revoked (and stays known, so its
//     tokens deny as key_revoked rather than unknown_key);
//   - blocks: a block of the old state is kept unless the snapshot has one (a permanent one is
//     kept over a temporary one); an entity the snapshot does not know is kept as a placeholder
//     carrying only the block, which denies like the placeholders feed.Editor makes;
//   - watermarks: the larger one. A watermark is the residue of a block: tokens minted before
//     the restore must stay dead. Sequences of the two logs are not comparable, so keeping the old
//     value fails closed: tokens under that entity need a tsq at or after it, which the new log
//     reaches as it grows (a new restore cannot lower it).
//
// Sequences carried over from the old log (a block's, a key revocation's, a denylisting's) are
// kept as they were; they record that something happened, and decisions only test them for
// presence.
func keepRevocations(old, snap *feed.State) (*feed.State, int) {
	if old.Sequence() == 0 {
		return snap, 0 // nothing was ever applied, so nothing can be lost
	}
	op, np := old.Proto(), snap.Proto()
	kept := 0

	partners := make(map[string]*treatyv1.PartnerRecord, len(np.Partners))
	for _, r := range np.Partners {
		partners[r.GetPartner().GetPartnerId()] = r
	}
	for _, r := range op.Partners {
		if r.Block == nil && r.Watermark == 0 {
			continue
		}
		id := r.GetPartner().GetPartnerId()
		n, ok := partners[id]
		if !ok {
			n = &treatyv1.PartnerRecord{Partner: &treatyv1.PartnerChanged{PartnerId: id}}
			np.Partners = append(np.Partners, n)
		}
		if keepControl(&n.Block, &n.Watermark, r.Block, r.Watermark) {
			kept++
		}
	}

	integrations := make(map[string]*treatyv1.IntegrationRecord, len(np.Integrations))
	for _, r := range np.Integrations {
		integrations[r.GetIntegration().GetIntegrationId()] = r
	}
	for _, r := range op.Integrations {
		if r.Block == nil && r.Watermark == 0 {
			continue
		}
		id := r.GetIntegration().GetIntegrationId()
		n, ok := integrations[id]
		if !ok {
			n = &treatyv1.IntegrationRecord{Integration: &treatyv1.IntegrationChanged{IntegrationId: id}}
			np.Integrations = append(np.Integrations, n)
		}
		if keepControl(&n.Block, &n.Watermark, r.Block, r.Watermark) {
			kept++
		}
	}

	workloads := make(map[string]*treatyv1.WorkloadRecord, len(np.Workloads))
	for _, r := range np.Workloads {
		workloads[r.GetWorkload().GetWorkloadId()] = r
	}
	for _, r := range op.Workloads {
		if r.Block == nil && r.Watermark == 0 {
			continue
		}
		id := r.GetWorkload().GetWorkloadId()
		n, ok := workloads[id]
		if !ok {
			n = &treatyv1.WorkloadRecord{Workload: &treatyv1.WorkloadChanged{WorkloadId: id}}
			np.Workloads = append(np.Workloads, n)
		}
		if keepControl(&n.Block, &n.Watermark, r.Block, r.Watermark) {
			kept++
		}
	}

	keys := make(map[string]*treatyv1.SigningKeyRecord, len(np.SigningKeys))
	for _, r := range np.SigningKeys {
		keys[r.GetKey().GetKid()] = r
	}
	for _, r := range op.SigningKeys {
		if r.RevokedSequence == 0 {
			continue
		}
		switch n, ok := keys[r.GetKey().GetKid()]; {
		case !ok:
			np.SigningKeys = append(np.SigningKeys, r)
			kept++
		case n.RevokedSequence == 0:
			n.RevokedSequence = r.RevokedSequence
			kept++
		}
	}

	revoked := make(map[string]*treatyv1.RevokedCredential, len(np.RevokedCredentials))
	for _, r := range np.RevokedCredentials {
		revoked[r.GetJti()] = r
	}
	for _, r := range op.RevokedCredentials {
		switch n, ok := revoked[r.GetJti()]; {
		case !ok:
			np.RevokedCredentials = append(np.RevokedCredentials, r)
			kept++
		case r.GetExpireTime().AsTime().After(n.GetExpireTime().AsTime()):
			n.ExpireTime = r.ExpireTime
			kept++
		}
	}
	return feed.FromProto(np), kept
}

// keepControl folds an old block and watermark into a new record's, reporting whether anything
// of the old one had to be carried over.
func keepControl(block **treatyv1.Block, watermark *uint64, oldBlock *treatyv1.Block, oldWatermark uint64) bool {
	changed := false
	if oldBlock != nil && (*block == nil || oldBlock.GetPermanent() && !(*block).GetPermanent()) {
		*block = oldBlock
		changed = true
	}
	if oldWatermark > *watermark {
		*watermark = oldWatermark
		changed = true
	}
	return changed
}
