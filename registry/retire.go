package registry

import (
	"context"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

const (
	integrationRetired = treatyv1.IntegrationState_INTEGRATION_STATE_RETIRED
	workloadRetired    = treatyv1.WorkloadState_WORKLOAD_STATE_RETIRED
	partnerTerminated  = treatyv1.PartnerState_PARTNER_STATE_TERMINATED
)

// RetireIntegration retires an integration for good: its state becomes RETIRED (final), every
// workload under it that is not retired yet is retired with it, and a permanent block on the
// integration is published, all in one transaction with the audit records. It returns the
// integration and the feed sequence of the block.
//
// Retiring cascades to the workloads (rather than only blocking them) because a workload can never
// act for a retired integration again: leaving it "active" would only mislead the inventory. The
// one permanent block on the integration covers every credential under it; the workloads'
// WorkloadChanged events make their retirement visible to every follower too.
func (r *Registry) RetireIntegration(ctx context.Context, id, reason, actor string) (Integration, uint64, error) {
	if err := checkRetire(id, reason, actor); err != nil {
		return Integration{}, 0, err
	}
	now := r.now()
	var rec integrationRecord
	seq, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		if err := integrations.load(tx, id, &rec); err != nil {
			return change{}, err
		}
		if rec.State == integrationRetired {
			return change{}, fail.Preconditionf("integration %q is already retired; retirement is final", id)
		}
		c, _, err := retireIntegration(tx, &rec, now, reason, actor)
		return c, err
	})
	if !committed(err) {
		return Integration{}, 0, err
	}
	return rec.integration(), seq, err
}

// retireIntegration retires rec (loaded in tx, not retired) with its workloads, and returns the
// change to record and how many workloads it retired.
func retireIntegration(tx store.Tx, rec *integrationRecord, now time.Time, reason, actor string) (change, int, error) {
	id := rec.ID
	if err := partnerNotTerminated(tx, rec.PartnerID, "integration", id); err != nil {
		return change{}, 0, err
	}
	before := rec.summary()
	rec.State, rec.Updated, rec.Revision = integrationRetired, now, rec.Revision+1
	if err := integrations.put(tx, rec.ID, rec.PartnerID, rec); err != nil {
		return change{}, 0, err
	}
	events := []*treatyv1.Event{rec.changed(actor, reason)}
	retired, err := retireWorkloads(tx, id, now, actor, reason)
	if err != nil {
		return change{}, 0, err
	}
	events = append(events, retired...)
	events = append(events, permanentBlock(treatyv1.TargetKind_TARGET_KIND_INTEGRATION, id, actor, reason))
	after := rec.summary()
	if len(retired) > 0 {
		after["retired_workloads"] = workloadIDs(retired)
	}
	return change{
		audit: AuditRecord{Time: now, Actor: actor, Action: "integration.retire", Target: "integration/" + id,
			Reason: reason, Before: before, After: after},
		events: events,
	}, len(retired), nil
}

// RetireWorkload retires a workload for good: its state becomes RETIRED (final) and a permanent
// block on it is published, in one transaction with the audit record. It returns the workload and
// the feed sequence of the block. The workload's keys stay registered to it, so they can never
// authenticate another workload.
func (r *Registry) RetireWorkload(ctx context.Context, id, reason, actor string) (Workload, uint64, error) {
	if err := checkRetire(id, reason, actor); err != nil {
		return Workload{}, 0, err
	}
	now := r.now()
	var rec workloadRecord
	seq, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		if err := workloads.load(tx, id, &rec); err != nil {
			return change{}, err
		}
		if rec.State == workloadRetired {
			return change{}, fail.Preconditionf("workload %q is already retired; retirement is final", id)
		}
		if err := partnerNotTerminated(tx, rec.PartnerID, "workload", id); err != nil {
			return change{}, err
		}
		before := rec.summary()
		rec.State, rec.Updated, rec.Revision = workloadRetired, now, rec.Revision+1
		if err := workloads.put(tx, rec.ID, rec.IntegrationID, &rec); err != nil {
			return change{}, err
		}
		return change{
			audit: AuditRecord{Time: now, Actor: actor, Action: "workload.retire", Target: "workload/" + id,
				Reason: reason, Before: before, After: rec.summary()},
			events: []*treatyv1.Event{
				rec.changed(actor, reason),
				permanentBlock(treatyv1.TargetKind_TARGET_KIND_WORKLOAD, id, actor, reason),
			},
		}, nil
	})
	if !committed(err) {
		return Workload{}, 0, err
	}
	return rec.workload(), seq, err
}

func checkRetire(id, reason, actor string) error {
	if err := fail.CheckID("id", id); err != nil {
		return err
	}
	if err := CheckReason("reason", reason); err != nil {
		return err
	}
	return CheckActor("actor", actor)
}

// partnerNotTerminated refuses to retire what a terminated partner holds: its permanent block
// already ended every credential under it, and what happens to its entities is the offboarding
// workflow's to record.
func partnerNotTerminated(tx store.Tx, partnerID, kind, id string) error {
	var p partnerRecord
	if err := partners.load(tx, partnerID, &p); err != nil {
		return err
	}
	if p.State == partnerTerminated {
		return fail.Preconditionf("%s %q belongs to partner %q, which is terminated; its access ended for good with the partner",
			kind, id, partnerID)
	}
	return nil
}

// retireWorkloads retires every workload of an integration that is not retired yet, inside tx,
// and returns their WorkloadChanged events in id order.
func retireWorkloads(tx store.Tx, integrationID string, now time.Time, actor, reason string) ([]*treatyv1.Event, error) {
	var ids []string
	prefix := []byte(integrationID + "/")
	// Collect first: a bbolt cursor must not run across writes to its bucket's records.
	err := tx.Scan(bucketWorkloadsByIntegration, prefix, nil, func(k, _ []byte) (bool, error) {
		ids = append(ids, string(k[len(prefix):]))
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	var events []*treatyv1.Event
	for _, wid := range ids {
		var w workloadRecord
		if err := workloads.load(tx, wid, &w); err != nil {
			return nil, err
		}
		if w.State == workloadRetired {
			continue
		}
		w.State, w.Updated, w.Revision = workloadRetired, now, w.Revision+1
		if err := workloads.put(tx, w.ID, w.IntegrationID, &w); err != nil {
			return nil, err
		}
		events = append(events, w.changed(actor, reason))
	}
	return events, nil
}

func workloadIDs(events []*treatyv1.Event) string {
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.GetWorkloadChanged().GetWorkloadId()
	}
	return strings.Join(ids, " ")
}

// permanentBlock is the event that ends access under an entity for good.
func permanentBlock(kind treatyv1.TargetKind, id, actor, reason string) *treatyv1.Event {
	return &treatyv1.Event{Actor: actor, Reason: reason, Change: &treatyv1.Event_Blocked{Blocked: &treatyv1.Blocked{
		TargetKind: kind, TargetId: id, Permanent: true, Lifecycle: true,
	}}}
}
