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
//     carrying only the block, which denies like the placeholders feed.Editor makes. Restoring it
//     takes a block and a restore in the new log.
//   - watermarks are not carried over: they are positions in the old log's sequence space, and
//     every token issued against the old log carries the old epoch and is denied as
//     epoch_mismatch, which is stronger than any watermark.
//   - the global (break-glass) watermark is kept, the higher of the two, when the snapshot has the
//     old state's epoch: a log restored from an older backup of the same epoch reuses the old
//     sequence space, so a credential minted before a break-glass the backup missed would come
//     back to life, and cannot be told from one the restored log minted at the same tsq. Both stay
//     dead until the restored log passes the watermark (fail closed). A new epoch needs no
//     carrying over, for the reason above, and carrying it would deny every credential the new log
//     issues until its head caught up with the old one.
//
// Sequences carried over from the old log (a block's, a key revocation's, a denylisting's) are
// kept as they were; they record that something happened, and decisions only test them for
// presence.
func keepRevocations(old, snap *feed.State) (*feed.State, int) {
	if old.Sequence() == 0 {
		return snap, 0 // nothing was ever applied, so nothing can be lost
	}
	op, np := old.Proto(), snap.Proto()
	kept := keepBlocks(op.Partners, &np.Partners,
		func(r *treatyv1.PartnerRecord) string { return r.GetPartner().GetPartnerId() },
		func(r *treatyv1.PartnerRecord) **treatyv1.Block { return &r.Block },
		func(id string) *treatyv1.PartnerRecord {
			return &treatyv1.PartnerRecord{Partner: &treatyv1.PartnerChanged{PartnerId: id}}
		})
	kept += keepBlocks(op.Integrations, &np.Integrations,
		func(r *treatyv1.IntegrationRecord) string { return r.GetIntegration().GetIntegrationId() },
		func(r *treatyv1.IntegrationRecord) **treatyv1.Block { return &r.Block },
		func(id string) *treatyv1.IntegrationRecord {
			return &treatyv1.IntegrationRecord{Integration: &treatyv1.IntegrationChanged{IntegrationId: id}}
		})
	kept += keepBlocks(op.Workloads, &np.Workloads,
		func(r *treatyv1.WorkloadRecord) string { return r.GetWorkload().GetWorkloadId() },
		func(r *treatyv1.WorkloadRecord) **treatyv1.Block { return &r.Block },
		func(id string) *treatyv1.WorkloadRecord {
			return &treatyv1.WorkloadRecord{Workload: &treatyv1.WorkloadChanged{WorkloadId: id}}
		})

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

	if op.GetEpoch() == np.GetEpoch() && op.GetGlobalWatermark() > np.GetGlobalWatermark() {
		np.GlobalWatermark = op.GetGlobalWatermark()
		kept++
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

// keepBlocks carries the blocks of old records into the new ones (adding placeholders for
// entities the new log does not know) and reports how many it carried over. A permanent block
// wins over a temporary one.
func keepBlocks[R any](old []R, cur *[]R, id func(R) string, block func(R) **treatyv1.Block, placeholder func(string) R) int {
	byID := make(map[string]R, len(*cur))
	for _, r := range *cur {
		byID[id(r)] = r
	}
	kept := 0
	for _, r := range old {
		ob := *block(r)
		if ob == nil {
			continue
		}
		n, ok := byID[id(r)]
		if !ok {
			n = placeholder(id(r))
			*cur = append(*cur, n)
		}
		if nb := block(n); *nb == nil || ob.GetPermanent() && !(*nb).GetPermanent() {
			*nb = ob
			kept++
		}
	}
	return kept
}
