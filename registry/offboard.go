package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// Offboarding is a workflow, not a flag. Offboard takes a partner through five steps, each done
// once and recorded in the partner's offboarding record before the next starts, so that a crash,
// a lost connection or a second caller resumes where it stopped:
//
//  1. started: the partner becomes OFFBOARDING and its permanent block is published (the instant
//     kill: every credential under it is denied from that feed sequence on);
//  2. revoked: every live credential of the partner, as the issuer's inventory lists them, is
//     revoked one by one through the revoker, so the feed and the inventory carry evidence per
//     credential and not only the block;
//  3. retired: every integration, and with it every workload, is retired;
//  4. confirmed: the inventory, once it has applied the feed up to the last revocation, counts
//     zero live credentials for the partner (any it still counts are revoked and it is asked
//     again);
//  5. terminated: the partner becomes TERMINATED, which is final.
//
// The registry reaches the revoker and the inventory through CredentialRevoker and
// CredentialInventory (Config.Revoker, Config.Inventory), which the gRPC client adapters of
// revokersvc and issuersvc implement.

// CredentialRevoker revokes single credentials in the revoker's feed.
type CredentialRevoker interface {
	// RevokeCredential revokes the credential with the given jti and returns the feed sequence
	// its revocation is in force at. already is true if it was revoked before (by this request
	// id or otherwise) and nothing was appended. The request id makes a retry idempotent.
	RevokeCredential(ctx context.Context, jti, reason, actor, requestID string) (seq uint64, already bool, err error)
}

// CredentialInventory reads the issuer's inventory of credentials.
type CredentialInventory interface {
	// LiveCredentials returns one page of the ids of a partner's live credentials (unexpired and
	// not known to be revoked) and the token of the next page, "" after the last.
	LiveCredentials(ctx context.Context, partnerID, pageToken string) (ids []string, next string, err error)
	// CountLive counts a partner's live credentials once the inventory has applied the feed up to
	// appliedSeq (zero: no wait), and returns the sequence it had applied.
	CountLive(ctx context.Context, partnerID string, appliedSeq uint64) (count, applied uint64, err error)
}

// DefaultOffboardConcurrency is how many revocations an offboarding keeps in flight by default:
// enough for the revoker's group commit to put many into each fsync.
const DefaultOffboardConcurrency = 64

// maxConfirmRounds bounds how often confirmation revokes stragglers and asks again.
const maxConfirmRounds = 5

// Offboarding is a partner's offboarding record: how far the workflow has come and the evidence
// of each step. It is stored as JSON under the partner's id.
type Offboarding struct {
	PartnerID string `json:"partner_id"`
	Reason    string `json:"reason"`
	Actor     string `json:"actor"`
	// Step is the last step done.
	Step    treatyv1.OffboardingStep `json:"step"`
	Started time.Time                `json:"started"`
	// Revoked counts the revocations the offboarding appended; LastRevocationSequence is the
	// highest feed sequence any of its revocations is in force at.
	Revoked                uint64    `json:"revoked"`
	LastRevocationSequence uint64    `json:"last_revocation_sequence,omitempty"`
	RevokeDone             time.Time `json:"revoke_done,omitzero"`
	RetiredIntegrations    uint32    `json:"retired_integrations,omitempty"`
	RetiredWorkloads       uint32    `json:"retired_workloads,omitempty"`
	RetireDone             time.Time `json:"retire_done,omitzero"`
	// Confirmed is when the inventory counted zero live credentials, having applied the feed up
	// to ConfirmedAtSequence; LiveCredentials is that count.
	Confirmed           time.Time `json:"confirmed,omitzero"`
	ConfirmedAtSequence uint64    `json:"confirmed_at_sequence,omitempty"`
	LiveCredentials     uint64    `json:"live_credentials"`
	Terminated          time.Time `json:"terminated,omitzero"`

	// terminatedSeq is the feed sequence of the termination, when this call made it.
	terminatedSeq uint64
	// stored is the record as this call last read or wrote it (see putOffboarding).
	stored []byte
}

// OffboardProgress reports a step under way: Done out of Total (zero: not known).
type OffboardProgress struct {
	Step        treatyv1.OffboardingStep
	Done, Total uint64
}

// offboardStartable are the states from which an offboarding may start; OFFBOARDING itself is
// where the contract-end scheduler leaves a partner whose contract ended.
var offboardStartable = []treatyv1.PartnerState{
	treatyv1.PartnerState_PARTNER_STATE_PROPOSED, treatyv1.PartnerState_PARTNER_STATE_APPROVED,
	treatyv1.PartnerState_PARTNER_STATE_ACTIVE, treatyv1.PartnerState_PARTNER_STATE_SUSPENDED,
	treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING,
}

// offboardings is the kind of the records, for get.
var offboardings = kind{name: "offboarding", bucket: bucketOffboardings}

// GetOffboarding returns a partner's offboarding record, NotFound if none was started.
func (r *Registry) GetOffboarding(ctx context.Context, partnerID string) (Offboarding, error) {
	return get(r.cfg.Store, offboardings, partnerID, func(o *Offboarding) Offboarding { return *o })
}

// ListOffboardings returns every offboarding record, in partner id order.
func (r *Registry) ListOffboardings(ctx context.Context) ([]Offboarding, error) {
	var out []Offboarding
	err := r.cfg.Store.View(func(tx store.Tx) error {
		return tx.Scan(bucketOffboardings, nil, nil, func(k, v []byte) (bool, error) {
			var o Offboarding
			if err := json.Unmarshal(v, &o); err != nil {
				return false, fmt.Errorf("decode offboarding %q: %w", k, err)
			}
			out = append(out, o)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("registry: list offboardings: %w", err)
	}
	return out, nil
}

// Offboard runs a partner's offboarding to the end, or resumes it from the last step done (then
// reason is ignored: the record keeps the first). progress, if not nil, is called as steps
// advance. It returns the record of the finished offboarding; on error the steps done so far stay
// done, and calling Offboard again continues. Offboardings run one at a time per registry. Two
// replicas sharing a store may run the same partner's offboarding at once (their contract-end
// schedulers both find it): every step it takes is idempotent (revocations carry request ids,
// retirements and the termination check the stored state), and the one that finds the record moved
// on by the other stops with an Aborted error rather than record a step twice (putOffboarding).
func (r *Registry) Offboard(ctx context.Context, id, reason, actor string, progress func(OffboardProgress)) (Offboarding, error) {
	if err := fail.CheckID("id", id); err != nil {
		return Offboarding{}, err
	}
	if err := CheckReason("reason", reason); err != nil {
		return Offboarding{}, err
	}
	if err := CheckActor("actor", actor); err != nil {
		return Offboarding{}, err
	}
	if r.cfg.Revoker == nil || r.cfg.Inventory == nil {
		return Offboarding{}, fail.Preconditionf("this registry has no revoker and credential inventory configured; offboarding needs both to revoke and count the partner's credentials")
	}
	if progress == nil {
		progress = func(OffboardProgress) {}
	}
	r.offboardMu.Lock()
	defer r.offboardMu.Unlock()

	o, err := r.startOffboarding(ctx, id, reason, actor)
	if err != nil {
		return o, err
	}
	for o.Step != treatyv1.OffboardingStep_OFFBOARDING_STEP_TERMINATED {
		if err := ctx.Err(); err != nil {
			return o, fail.Unavailablef(err, "offboarding of partner %q stopped after step %s; run it again to continue", id, stepName(o.Step))
		}
		switch o.Step {
		case treatyv1.OffboardingStep_OFFBOARDING_STEP_STARTED:
			err = r.revokeAll(ctx, &o, progress)
		case treatyv1.OffboardingStep_OFFBOARDING_STEP_REVOKED:
			err = r.retireAll(ctx, &o, progress)
		case treatyv1.OffboardingStep_OFFBOARDING_STEP_RETIRED:
			err = r.confirmNoneLive(ctx, &o, progress)
		case treatyv1.OffboardingStep_OFFBOARDING_STEP_CONFIRMED:
			err = r.terminate(ctx, &o)
		default:
			err = fmt.Errorf("registry: offboarding of partner %q is at an unknown step %d", id, o.Step)
		}
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

func stepName(s treatyv1.OffboardingStep) string {
	if s == treatyv1.OffboardingStep_OFFBOARDING_STEP_UNSPECIFIED {
		return "none"
	}
	return s.String()[len("OFFBOARDING_STEP_"):]
}

// startOffboarding returns the partner's offboarding record, creating it with the first step if
// there is none: OFFBOARDING, a permanent block, and the audit record partner.offboard.start.
func (r *Registry) startOffboarding(ctx context.Context, id, reason, actor string) (Offboarding, error) {
	now := r.now()
	var o Offboarding
	var stored []byte
	_, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		o = Offboarding{}
		if err := offboardings.load(tx, id, &o); err == nil {
			stored = tx.Get(bucketOffboardings, []byte(id))
			return change{skip: true}, nil // started before: resume
		} else if fail.KindOf(err) != fail.NotFound {
			return change{}, err
		}
		var rec partnerRecord
		if err := partners.load(tx, id, &rec); err != nil {
			return change{}, err
		}
		if !slices.Contains(offboardStartable, rec.State) {
			return change{}, fail.Preconditionf("partner %q is %s; only a partner that is %s can be offboarded",
				id, feed.StateName(rec.State), stateNames(offboardStartable))
		}
		before := rec.summary()
		events := []*treatyv1.Event{}
		if rec.State != treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING {
			rec.State, rec.Updated, rec.Revision = treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING, now, rec.Revision+1
			if err := partners.put(tx, rec.ID, "", &rec); err != nil {
				return change{}, err
			}
			events = append(events, rec.changed(actor, reason))
		}
		// Published even when the contract-end scheduler blocked the partner already: a second
		// permanent block changes nothing, and the workflow never relies on someone else's.
		events = append(events, permanentBlock(treatyv1.TargetKind_TARGET_KIND_PARTNER, id, actor, reason))
		o = Offboarding{
			PartnerID: id, Reason: reason, Actor: actor, Step: treatyv1.OffboardingStep_OFFBOARDING_STEP_STARTED, Started: now,
		}
		var err error
		if stored, err = putOffboarding(tx, &o); err != nil {
			return change{}, err
		}
		return change{
			audit: AuditRecord{Time: now, Actor: actor, Action: "partner.offboard.start", Target: "partner/" + id,
				Reason: reason, Before: before, After: rec.summary()},
			events: events,
		}, nil
	})
	if !committed(err) {
		return Offboarding{}, err
	}
	o.stored = stored
	return o, err
}

// putOffboarding stores o and returns what it stored, for o.stored once the transaction commits.
// It refuses (Aborted) if the stored record is no longer the one this call last read or wrote:
// another replica runs the same offboarding and is ahead, and overwriting its progress with a
// stale copy would move the record back and record steps twice. Run again, Offboard resumes from
// the stored record.
func putOffboarding(tx store.Tx, o *Offboarding) ([]byte, error) {
	if cur := tx.Get(bucketOffboardings, []byte(o.PartnerID)); !bytes.Equal(cur, o.stored) {
		return nil, movedOn(o.PartnerID)
	}
	raw, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("registry: encode offboarding %q: %w", o.PartnerID, err)
	}
	return raw, tx.Put(bucketOffboardings, []byte(o.PartnerID), raw)
}

// movedOn is the error of a replica that finds the other ahead in the same offboarding.
func movedOn(partnerID string) error {
	return fail.Abortedf("the offboarding of partner %q moved on in another registry replica; run it again to resume from where it is", partnerID)
}

// stepProgress is what a step did since its record was stored. It is added to the stored record
// rather than overwriting it, so that the counts of two replicas running the same step at once add
// up, each counting only what it appended.
type stepProgress struct {
	revoked, lastSequence   uint64
	integrations, workloads uint32
	live                    *uint64 // the live credentials counted, if the step counted them
}

// addProgress adds p to o's stored record, which must still be at o's step (Aborted otherwise:
// another replica finished the step), and returns the record as it stored it.
func addProgress(tx store.Tx, o *Offboarding, p stepProgress) (Offboarding, error) {
	var cur Offboarding
	raw := tx.Get(bucketOffboardings, []byte(o.PartnerID))
	if raw != nil {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return cur, fmt.Errorf("registry: decode offboarding %q: %w", o.PartnerID, err)
		}
	}
	if raw == nil || cur.Step != o.Step {
		return cur, movedOn(o.PartnerID)
	}
	cur.stored = raw
	cur.Revoked += p.revoked
	cur.LastRevocationSequence = max(cur.LastRevocationSequence, p.lastSequence)
	cur.RetiredIntegrations += p.integrations
	cur.RetiredWorkloads += p.workloads
	if p.live != nil {
		cur.LiveCredentials = *p.live
	}
	stored, err := putOffboarding(tx, &cur)
	cur.stored = stored
	return cur, err
}

// saveProgress adds p to o's stored record, without an audit record, and updates o to it.
func (r *Registry) saveProgress(o *Offboarding, p stepProgress) error {
	var next Offboarding
	err := r.cfg.Store.Update(func(tx store.Tx) (err error) {
		next, err = addProgress(tx, o, p)
		return err
	})
	if err == nil {
		*o = next
	}
	return err
}

// finishStep stores o at its next step with the step's audit record (none if action is empty).
func (r *Registry) finishStep(o *Offboarding, action string, after map[string]string) error {
	var stored []byte
	_, err := r.write(func(tx store.Tx) (change, error) {
		var err error
		if stored, err = putOffboarding(tx, o); err != nil {
			return change{}, err
		}
		if action == "" {
			return change{skip: true}, nil // committed all the same, without an audit record
		}
		return change{audit: AuditRecord{Time: r.now(), Actor: o.Actor, Action: action, Target: "partner/" + o.PartnerID,
			Reason: o.Reason, After: after}}, nil
	})
	if err == nil {
		o.stored = stored
	}
	return err
}

// revokeAll is step 2: every live credential the inventory lists is revoked, and the step is
// audited as partner.offboard.revoked with the count.
func (r *Registry) revokeAll(ctx context.Context, o *Offboarding, progress func(OffboardProgress)) error {
	total, _, err := r.cfg.Inventory.CountLive(ctx, o.PartnerID, 0)
	if err != nil {
		return fmt.Errorf("registry: offboarding of partner %q: count its live credentials: %w", o.PartnerID, err)
	}
	if _, err := r.revokeListed(ctx, o, treatyv1.OffboardingStep_OFFBOARDING_STEP_REVOKED, total, progress); err != nil {
		return err
	}
	o.Step, o.RevokeDone = treatyv1.OffboardingStep_OFFBOARDING_STEP_REVOKED, r.now()
	return r.finishStep(o, "partner.offboard.revoked", map[string]string{
		"revoked_credentials":      strconv.FormatUint(o.Revoked, 10),
		"last_revocation_sequence": strconv.FormatUint(o.LastRevocationSequence, 10),
	})
}

// revokeListed revokes every credential the inventory lists as live for o's partner, page by
// page, with up to Config.OffboardConcurrency revocations in flight, saving o's counts after each
// page. It returns how many revocations it appended.
func (r *Registry) revokeListed(ctx context.Context, o *Offboarding, step treatyv1.OffboardingStep, total uint64, progress func(OffboardProgress)) (uint64, error) {
	var (
		appended uint64
		token    string
	)
	reason := o.Reason // the revoker takes reasons as long as the registry's
	for {
		ids, next, err := r.cfg.Inventory.LiveCredentials(ctx, o.PartnerID, token)
		if err != nil {
			return appended, fmt.Errorf("registry: offboarding of partner %q: list its live credentials: %w", o.PartnerID, err)
		}
		n, last, err := r.revokePage(ctx, o, ids, reason, func(done uint64) {
			progress(OffboardProgress{Step: step, Done: o.Revoked + done, Total: max(total, o.Revoked+done)})
		})
		appended += n
		if serr := r.saveProgress(o, stepProgress{revoked: n, lastSequence: last}); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			return appended, err
		}
		if next == "" {
			return appended, nil
		}
		token = next
	}
}

// revokePage revokes ids concurrently. It returns how many revocations were appended and the
// highest sequence any is in force at, counting what succeeded even when one failed.
func (r *Registry) revokePage(ctx context.Context, o *Offboarding, ids []string, reason string, report func(done uint64)) (uint64, uint64, error) {
	var (
		mu       sync.Mutex
		appended uint64
		done     uint64
		last     uint64
		firstErr error
		wg       sync.WaitGroup
	)
	work := make(chan string)
	workers := min(r.cfg.OffboardConcurrency, max(len(ids), 1))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for jti := range work {
				seq, already, err := r.cfg.Revoker.RevokeCredential(ctx, jti, reason, o.Actor, "offboard/"+o.PartnerID+"/"+jti)
				mu.Lock()
				switch {
				case err != nil && firstErr == nil:
					firstErr = fmt.Errorf("registry: offboarding of partner %q: revoke credential %q: %w", o.PartnerID, jti, err)
				case err == nil:
					last = max(last, seq)
					if !already {
						appended++
					}
					if done++; done%100 == 0 {
						report(appended)
					}
				}
				mu.Unlock()
			}
		}()
	}
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return firstErr != nil }
feed:
	for _, jti := range ids {
		if failed() {
			break
		}
		select {
		case work <- jti:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	report(appended)
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fail.Unavailablef(ctx.Err(), "offboarding of partner %q interrupted while revoking", o.PartnerID)
	}
	return appended, last, firstErr
}

// retireAll is step 3: every integration of the partner not retired yet is retired, with its
// workloads, each in one audited transaction that also counts it in the offboarding record.
func (r *Registry) retireAll(ctx context.Context, o *Offboarding, progress func(OffboardProgress)) error {
	var todo []string
	err := r.cfg.Store.View(func(tx store.Tx) error {
		prefix := []byte(o.PartnerID + "/")
		return tx.Scan(bucketIntegrationsByPartner, prefix, nil, func(k, _ []byte) (bool, error) {
			todo = append(todo, string(k[len(prefix):]))
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("registry: offboarding of partner %q: list its integrations: %w", o.PartnerID, err)
	}
	for k, id := range todo {
		progress(OffboardProgress{Step: treatyv1.OffboardingStep_OFFBOARDING_STEP_RETIRED, Done: uint64(k), Total: uint64(len(todo))})
		now := r.now()
		var next *Offboarding
		_, err := r.commit(ctx, func(tx store.Tx) (change, error) {
			next = nil
			var rec integrationRecord
			if err := integrations.load(tx, id, &rec); err != nil {
				return change{}, err
			}
			if rec.State == integrationRetired {
				// Before the offboarding, or by another replica running it too (which counted it).
				return change{skip: true}, nil
			}
			c, workloads, err := retireIntegration(tx, &rec, now, "partner offboarded: "+o.Reason, o.Actor)
			if err != nil {
				return c, err
			}
			o2, err := addProgress(tx, o, stepProgress{integrations: 1, workloads: uint32(workloads)})
			next = &o2
			return c, err
		})
		if !committed(err) {
			return fmt.Errorf("registry: offboarding of partner %q: retire integration %q: %w", o.PartnerID, id, err)
		}
		if next != nil {
			*o = *next
		}
	}
	progress(OffboardProgress{Step: treatyv1.OffboardingStep_OFFBOARDING_STEP_RETIRED, Done: uint64(len(todo)), Total: uint64(len(todo))})
	o.Step, o.RetireDone = treatyv1.OffboardingStep_OFFBOARDING_STEP_RETIRED, r.now()
	return r.finishStep(o, "", nil)
}

// confirmNoneLive is step 4: the inventory, having applied the feed up to the last revocation,
// must count zero live credentials. Any it still counts (issued in a race with the block, or
// missed) are revoked and it is asked again, a few times at most. Audited as
// partner.offboard.confirmed.
func (r *Registry) confirmNoneLive(ctx context.Context, o *Offboarding, progress func(OffboardProgress)) error {
	for round := 0; ; round++ {
		live, applied, err := r.cfg.Inventory.CountLive(ctx, o.PartnerID, o.LastRevocationSequence)
		if err != nil {
			return fmt.Errorf("registry: offboarding of partner %q: confirm no live credential is left: %w", o.PartnerID, err)
		}
		progress(OffboardProgress{Step: treatyv1.OffboardingStep_OFFBOARDING_STEP_CONFIRMED, Done: 0, Total: live})
		if live == 0 {
			o.Step, o.Confirmed, o.ConfirmedAtSequence, o.LiveCredentials = treatyv1.OffboardingStep_OFFBOARDING_STEP_CONFIRMED, r.now(), applied, 0
			return r.finishStep(o, "partner.offboard.confirmed", map[string]string{
				"confirmed":             o.Confirmed.Format(time.RFC3339Nano),
				"confirmed_at_sequence": strconv.FormatUint(applied, 10),
				"live_credentials":      "0",
				"revoked_credentials":   strconv.FormatUint(o.Revoked, 10),
				"retired_integrations":  strconv.FormatUint(uint64(o.RetiredIntegrations), 10),
				"retired_workloads":     strconv.FormatUint(uint64(o.RetiredWorkloads), 10),
			})
		}
		if round == maxConfirmRounds {
			_ = r.saveProgress(o, stepProgress{live: &live})
			return fail.Unavailablef(nil, "partner %q still has %d live credentials in the inventory after %d rounds of revocation; run the offboarding again",
				o.PartnerID, live, round)
		}
		if _, err := r.revokeListed(ctx, o, treatyv1.OffboardingStep_OFFBOARDING_STEP_CONFIRMED, live, progress); err != nil {
			return err
		}
	}
}

// terminate is step 5: the partner becomes TERMINATED (final), audited as partner.terminate.
func (r *Registry) terminate(ctx context.Context, o *Offboarding) error {
	now := r.now()
	var stored []byte
	seq, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		var rec partnerRecord
		if err := partners.load(tx, o.PartnerID, &rec); err != nil {
			return change{}, err
		}
		o.Step, o.Terminated = treatyv1.OffboardingStep_OFFBOARDING_STEP_TERMINATED, now
		var err error
		if stored, err = putOffboarding(tx, o); err != nil {
			return change{}, err
		}
		if rec.State == partnerTerminated {
			return change{skip: true}, nil
		}
		before := rec.summary()
		rec.State, rec.Updated, rec.Revision = partnerTerminated, now, rec.Revision+1
		if err := partners.put(tx, rec.ID, "", &rec); err != nil {
			return change{}, err
		}
		return change{
			audit: AuditRecord{Time: now, Actor: o.Actor, Action: "partner.terminate", Target: "partner/" + o.PartnerID,
				Reason: o.Reason, Before: before, After: rec.summary()},
			events: []*treatyv1.Event{rec.changed(o.Actor, o.Reason)},
		}, nil
	})
	if !committed(err) {
		o.Step, o.Terminated = treatyv1.OffboardingStep_OFFBOARDING_STEP_CONFIRMED, time.Time{}
		return err
	}
	o.terminatedSeq, o.stored = seq, stored
	return err
}

// ResumeOffboardings runs the offboarding of every partner that is OFFBOARDING (a contract end
// moved it there, or an offboarding stopped), as the contract-end scheduler does after each pass.
// It returns how many it finished; the first error stops it.
func (r *Registry) ResumeOffboardings(ctx context.Context) (int, error) {
	if r.cfg.Revoker == nil || r.cfg.Inventory == nil {
		return 0, nil
	}
	type due struct{ id, reason string }
	var todo []due
	err := r.cfg.Store.View(func(tx store.Tx) error {
		return tx.Scan(bucketPartners, nil, nil, func(k, v []byte) (bool, error) {
			var p partnerRecord
			if err := json.Unmarshal(v, &p); err != nil {
				return false, fmt.Errorf("decode partner %q: %w", k, err)
			}
			if p.State == treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING {
				todo = append(todo, due{p.ID, "contract ended at " + p.ContractEnd.Format(time.RFC3339)})
			}
			return true, nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("registry: find offboarding partners: %w", err)
	}
	done := 0
	for _, d := range todo {
		_, err := r.Offboard(ctx, d.id, d.reason, ContractActor, nil)
		if fail.KindOf(err) == fail.Aborted {
			// Another replica's scheduler is offboarding it too and is ahead; it finishes there,
			// or the next pass here resumes it.
			r.cfg.Logger.Info("registry: another replica is offboarding the partner", "partner", d.id)
			continue
		}
		if err != nil {
			return done, err
		}
		r.cfg.Logger.Info("registry: partner offboarded", "partner", d.id)
		done++
	}
	return done, nil
}
