package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// Bulk import: an existing spreadsheet of partners, with their integrations and workloads, is
// created in one transaction, all or nothing. Every item goes through the checks its Create
// method runs, and through the same store rules (ids unused, parents present and in a state that
// allows children, keys registered once), against the store and against the items before it; every
// failure is reported with the item's kind and index, so a client can point at the line of its
// file. Nothing is written unless every item passes.

// MaxImportItems bounds one import, so that one transaction stays a reasonable size.
const MaxImportItems = 100000

// Import kinds, named as the lists of an import file.
const (
	ImportPartners     = "partners"
	ImportIntegrations = "integrations"
	ImportWorkloads    = "workloads"
)

// Import is what one import creates.
type Import struct {
	// Partners to create. State is PROPOSED (also when unset), APPROVED or ACTIVE; APPROVED and
	// ACTIVE need ApprovedBy, recorded as for ApprovePartner: an import skips no due diligence,
	// it records diligence done elsewhere.
	Partners []Partner
	// Integrations to create, under partners of the store or of the import. State is REQUESTED
	// (also when unset), APPROVED or ACTIVE, with ApprovedBy as for partners; an ACTIVE
	// integration needs an ACTIVE partner.
	Integrations []Integration
	// Workloads to create, ACTIVE, under ACTIVE integrations of the store or of the import.
	Workloads []WorkloadSpec
}

// ImportError is one reason an item was refused.
type ImportError struct {
	// Kind is ImportPartners, ImportIntegrations or ImportWorkloads.
	Kind string
	// Index is the item's index in its list.
	Index int
	// Field is the field at fault, for invalid input.
	Field string
	// Message says what is wrong.
	Message string
}

// ImportResult says what an import did.
type ImportResult struct {
	// Errors lists every item refused, in kind and index order; nothing is written if any is.
	Errors []ImportError
	// Committed is true when every item was created.
	Committed bool
}

// errRollback ends the import's transaction without writing.
var errRollback = errors.New("registry: import rolled back")

// Import validates in and, unless dryRun or an item fails, creates everything in one
// transaction, with an audit record per item and one for the import, and their feed events. The
// error return is for the import as a whole (a bad actor, too many items, the store); item
// failures are in the result.
func (r *Registry) Import(ctx context.Context, in Import, actor string, dryRun bool) (ImportResult, error) {
	if err := CheckActor("actor", actor); err != nil {
		return ImportResult{}, err
	}
	if n := len(in.Partners) + len(in.Integrations) + len(in.Workloads); n > MaxImportItems {
		return ImportResult{}, fail.Invalidf("partners", "an import holds %d items; at most %d are allowed in one transaction", n, MaxImportItems)
	}
	now := r.now()
	var errs []ImportError
	// report records an item's failure; a failure of the store itself ends the import.
	report := func(kind string, i int, err error) error {
		if fail.KindOf(err) == fail.Internal {
			return err
		}
		e := ImportError{Kind: kind, Index: i, Message: err.Error()}
		var fe *fail.Error
		if errors.As(err, &fe) {
			e.Field, e.Message = fe.Field, fe.Msg
		}
		errs = append(errs, e)
		return nil
	}
	var last uint64
	err := r.cfg.Store.Update(func(tx store.Tx) error {
		errs, last = errs[:0], 0
		var c importChanges
		for i, p := range in.Partners {
			if err := r.importPartner(tx, p, actor, now, &c); err != nil {
				if err := report(ImportPartners, i, err); err != nil {
					return err
				}
			}
		}
		for i, it := range in.Integrations {
			if err := r.importIntegration(tx, it, actor, now, &c); err != nil {
				if err := report(ImportIntegrations, i, err); err != nil {
					return err
				}
			}
		}
		for i, w := range in.Workloads {
			if err := r.importWorkload(tx, w, actor, now, &c); err != nil {
				if err := report(ImportWorkloads, i, err); err != nil {
					return err
				}
			}
		}
		if len(errs) > 0 || dryRun {
			return errRollback
		}
		c.audits = append(c.audits, AuditRecord{Time: now, Actor: actor, Action: "inventory.import", Target: "inventory", Reason: "inventory imported",
			After: map[string]string{
				"partners":     strconv.Itoa(len(in.Partners)),
				"integrations": strconv.Itoa(len(in.Integrations)),
				"workloads":    strconv.Itoa(len(in.Workloads)),
			}})
		for _, a := range c.audits {
			if err := appendAudit(tx, a); err != nil {
				return err
			}
		}
		var err error
		last, err = addEvents(tx, c.events)
		return err
	})
	switch {
	case errors.Is(err, errRollback):
		return ImportResult{Errors: errs}, nil
	case err != nil:
		return ImportResult{}, fmt.Errorf("registry: import: %w", err)
	}
	r.wakeContracts()
	if last != 0 {
		wctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
		defer cancel()
		if _, err := r.cfg.Relay.Wait(wctx, last); err != nil {
			r.cfg.Logger.Warn("registry: import committed, but the revoker has not confirmed its events yet; they stay queued",
				"outbox_id", last, "err", err)
		}
	}
	return ImportResult{Committed: true}, nil
}

// importChanges gathers an import's audit records and events, written only if every item passes.
type importChanges struct {
	audits []AuditRecord
	events []*treatyv1.Event
}

// approval checks an imported entity's approver: required for the approved and active states.
func approval(field, approvedBy string, approved bool) error {
	switch {
	case approved && strings.TrimSpace(approvedBy) == "":
		return fail.Invalidf(field, "%s is required for an approved or active item: who approved it, for the audit trail", field)
	case approved:
		return CheckName(field, approvedBy)
	case approvedBy != "":
		return fail.Invalidf(field, "%s is only taken for an approved or active item", field)
	}
	return nil
}

func (r *Registry) importPartner(tx store.Tx, p Partner, actor string, now time.Time, c *importChanges) error {
	if err := checkNewPartner(p, actor, now); err != nil {
		return err
	}
	state := p.State
	switch state {
	case treatyv1.PartnerState_PARTNER_STATE_UNSPECIFIED:
		state = treatyv1.PartnerState_PARTNER_STATE_PROPOSED
	case treatyv1.PartnerState_PARTNER_STATE_PROPOSED, treatyv1.PartnerState_PARTNER_STATE_APPROVED,
		treatyv1.PartnerState_PARTNER_STATE_ACTIVE:
	default:
		return fail.Invalidf("partner.state", "partner.state %s cannot be imported; import partners proposed, approved or active", feed.StateName(state))
	}
	approved := state != treatyv1.PartnerState_PARTNER_STATE_PROPOSED
	if err := approval("partner.approved_by", p.ApprovedBy, approved); err != nil {
		return err
	}
	if partners.exists(tx, p.ID) {
		return fail.AlreadyExistsf("partner %q already exists", p.ID)
	}
	rec := partnerRecord{ID: p.ID, State: state, Created: now, Updated: now, Revision: 1}
	rec.setDescriptive(p)
	if approved {
		rec.ApprovedBy, rec.Approved = p.ApprovedBy, now
	}
	if err := partners.put(tx, rec.ID, "", &rec); err != nil {
		return err
	}
	c.audits = append(c.audits, AuditRecord{Time: now, Actor: actor, Action: "partner.create", Target: "partner/" + rec.ID,
		Reason: "imported", After: rec.summary()})
	c.events = append(c.events, rec.changed(actor, "partner imported"))
	return nil
}

func (r *Registry) importIntegration(tx store.Tx, i Integration, actor string, now time.Time, c *importChanges) error {
	if err := r.checkNewIntegration(i, actor); err != nil {
		return err
	}
	state := i.State
	switch state {
	case treatyv1.IntegrationState_INTEGRATION_STATE_UNSPECIFIED:
		state = treatyv1.IntegrationState_INTEGRATION_STATE_REQUESTED
	case treatyv1.IntegrationState_INTEGRATION_STATE_REQUESTED, treatyv1.IntegrationState_INTEGRATION_STATE_APPROVED,
		treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE:
	default:
		return fail.Invalidf("integration.state", "integration.state %s cannot be imported; import integrations requested, approved or active", feed.StateName(state))
	}
	approved := state != treatyv1.IntegrationState_INTEGRATION_STATE_REQUESTED
	if err := approval("integration.approved_by", i.ApprovedBy, approved); err != nil {
		return err
	}
	if integrations.exists(tx, i.ID) {
		return fail.AlreadyExistsf("integration %q already exists", i.ID)
	}
	var p partnerRecord
	if err := partners.load(tx, i.PartnerID, &p); err != nil {
		return err
	}
	switch {
	case state == treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE && p.State != treatyv1.PartnerState_PARTNER_STATE_ACTIVE:
		return fail.Preconditionf("partner %q is %s; an active integration needs an active partner", p.ID, feed.StateName(p.State))
	case !slices.Contains([]treatyv1.PartnerState{treatyv1.PartnerState_PARTNER_STATE_PROPOSED, treatyv1.PartnerState_PARTNER_STATE_APPROVED,
		treatyv1.PartnerState_PARTNER_STATE_ACTIVE}, p.State):
		return fail.Preconditionf("partner %q is %s; integrations cannot be added to it", p.ID, feed.StateName(p.State))
	}
	methods, err := methodsForTier(p.ID, tierOrDefault(p.RiskTier), i.ClientAuthMethods)
	if err != nil {
		return err
	}
	rec := newIntegrationRecord(i, state, now)
	rec.AuthMethods = methods
	if approved {
		rec.ApprovedBy, rec.Approved = i.ApprovedBy, now
	}
	if err := integrations.put(tx, rec.ID, rec.PartnerID, &rec); err != nil {
		return err
	}
	c.audits = append(c.audits, AuditRecord{Time: now, Actor: actor, Action: "integration.create", Target: "integration/" + rec.ID,
		Reason: "imported", After: rec.summary()})
	c.events = append(c.events, rec.changed(actor, "integration imported"))
	return nil
}

func (r *Registry) importWorkload(tx store.Tx, spec WorkloadSpec, actor string, now time.Time, c *importChanges) error {
	if err := fail.CheckID("workload.id", spec.ID); err != nil {
		return err
	}
	if err := fail.CheckID("workload.integration_id", spec.IntegrationID); err != nil {
		return err
	}
	var keys []Key
	if spec.TLS == nil || strings.TrimSpace(spec.PublicKeyPEM) != "" {
		key, err := ParsePublicKey("workload.public_keys", spec.PublicKeyPEM)
		if err != nil {
			return err
		}
		keys = []Key{key}
	}
	if err := spec.TLS.Check("workload.tls_client_auth"); err != nil {
		return err
	}
	if workloads.exists(tx, spec.ID) {
		return fail.AlreadyExistsf("workload %q already exists", spec.ID)
	}
	var in integrationRecord
	if err := integrations.load(tx, spec.IntegrationID, &in); err != nil {
		return err
	}
	if in.State != treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE {
		return fail.Preconditionf("integration %q is %s; workloads can only be created under an active integration",
			spec.IntegrationID, feed.StateName(in.State))
	}
	if err := activePartner(tx, in.PartnerID, "workloads can only be created under an active partner"); err != nil {
		return err
	}
	for _, key := range keys {
		if err := claimKey(tx, key, spec.ID); err != nil {
			return err
		}
	}
	rec := newWorkloadRecord(spec, keys, now, actor)
	rec.PartnerID = in.PartnerID
	if err := workloads.put(tx, rec.ID, rec.IntegrationID, &rec); err != nil {
		return err
	}
	c.audits = append(c.audits, AuditRecord{Time: now, Actor: actor, Action: "workload.create", Target: "workload/" + rec.ID,
		Reason: "imported", After: rec.summary()})
	c.events = append(c.events, rec.changed(actor, "workload imported"))
	return nil
}
