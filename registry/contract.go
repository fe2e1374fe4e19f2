package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// DefaultContractCheckInterval is the longest the contract-end scheduler sleeps between checks by
// default. It wakes at the next contract end it knows of anyway; the interval only bounds how late
// a clock jump or a missed wake-up can make it.
const DefaultContractCheckInterval = time.Minute

// ContractActor is the actor recorded when the scheduler ends a partner's access at its contract
// end.
const ContractActor = "treaty-registry (contract end)"

// contractEndable are the states in which a partner still holds (or may come to hold) access that
// its contract end must take away.
var contractEndable = []treatyv1.PartnerState{
	treatyv1.PartnerState_PARTNER_STATE_PROPOSED, treatyv1.PartnerState_PARTNER_STATE_APPROVED,
	treatyv1.PartnerState_PARTNER_STATE_ACTIVE, treatyv1.PartnerState_PARTNER_STATE_SUSPENDED,
}

// Run is the contract-end scheduler: until ctx ends, it ends the access of every partner whose
// contract end has passed (see EndContracts), waking at the next contract end and at least every
// ContractCheckInterval. Its first pass catches up on contract ends that passed while the process
// was down. Run it once per registry store, beside the outbox relay: go reg.Run(ctx).
func (r *Registry) Run(ctx context.Context) {
	for {
		_, next, err := r.EndContracts(ctx)
		if err == nil {
			// Partners left OFFBOARDING (by this pass, or an offboarding that stopped) are
			// taken on to TERMINATED, when the registry can reach the revoker and inventory.
			_, err = r.ResumeOffboardings(ctx)
		}
		wait := r.cfg.ContractCheckInterval
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.cfg.Logger.Error("registry: contract-end check failed; will retry", "err", err)
			wait = min(wait, 5*time.Second)
		case !next.IsZero():
			wait = min(wait, max(next.Sub(r.now()), 0))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// wakeContracts asks Run to look again now.
func (r *Registry) wakeContracts() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// EndContracts ends the access of every partner whose contract end has passed and who is not
// offboarding or terminated yet: each moves to OFFBOARDING, with an audit record, a PartnerChanged
// event and a permanent block, in one transaction per partner. It returns how many partners it
// ended and the earliest contract end still ahead (zero if none).
//
// Exactly once: the state change and the outbox entries commit together, and a partner is ended
// only if its stored state still allows it, so a second pass, a second process or a restart finds
// nothing more to do; the outbox then publishes the entries exactly once into the feed. It does not
// wait for the revoker: the relay publishes the entries when it can.
//
// OFFBOARDING rather than SUSPENDED, and a permanent block, because a contract that ended does not
// come back by a restore: a renewed contract is a new onboarding. The offboarding workflow
// (Offboard, which Run resumes after each pass) takes the partner on to TERMINATED.
func (r *Registry) EndContracts(ctx context.Context) (ended int, next time.Time, err error) {
	now := r.now()
	var due []string
	err = r.cfg.Store.View(func(tx store.Tx) error {
		return tx.Scan(bucketPartners, nil, nil, func(k, v []byte) (bool, error) {
			var p struct {
				State       treatyv1.PartnerState `json:"state"`
				ContractEnd time.Time             `json:"contract_end"`
			}
			if err := json.Unmarshal(v, &p); err != nil {
				return false, fmt.Errorf("decode partner %q: %w", k, err)
			}
			switch {
			case !slices.Contains(contractEndable, p.State):
			case !now.Before(p.ContractEnd):
				due = append(due, string(k))
			case next.IsZero() || p.ContractEnd.Before(next):
				next = p.ContractEnd
			}
			return true, nil
		})
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("registry: find ended contracts: %w", err)
	}
	for _, id := range due {
		if err := ctx.Err(); err != nil {
			return ended, next, err
		}
		did, err := r.endContract(id, now)
		if err != nil {
			return ended, next, err
		}
		if did {
			ended++
		}
	}
	if ended > 0 {
		r.cfg.Relay.Kick()
	}
	return ended, next, nil
}

// endContract ends partner id's access if, inside the transaction, its contract end has passed
// and its state still allows it. It reports whether it did.
func (r *Registry) endContract(id string, now time.Time) (bool, error) {
	did := false
	_, err := r.write(func(tx store.Tx) (change, error) {
		did = false
		var rec partnerRecord
		if err := partners.load(tx, id, &rec); err != nil {
			return change{}, err
		}
		if !slices.Contains(contractEndable, rec.State) || now.Before(rec.ContractEnd) {
			return change{skip: true}, nil
		}
		before := rec.summary()
		rec.State, rec.Updated, rec.Revision = treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING, now, rec.Revision+1
		if err := partners.put(tx, rec.ID, "", &rec); err != nil {
			return change{}, err
		}
		reason := "contract ended at " + rec.ContractEnd.Format(time.RFC3339)
		did = true
		return change{
			audit: AuditRecord{Time: now, Actor: ContractActor, Action: "partner.contract_end", Target: "partner/" + id,
				Reason: reason, Before: before, After: rec.summary()},
			events: []*treatyv1.Event{
				rec.changed(ContractActor, reason),
				permanentBlock(treatyv1.TargetKind_TARGET_KIND_PARTNER, id, ContractActor, reason),
			},
		}, nil
	})
	if err != nil {
		return false, fmt.Errorf("registry: end the contract of partner %q: %w", id, err)
	}
	if did {
		r.cfg.Logger.Info("registry: partner's contract ended; access blocked for good", "partner", id,
			"state", feed.StateName(treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING))
	}
	return did, nil
}
