package registry

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// Partner is an external organisation that holds machine credentials into the platform.
type Partner struct {
	// ID is the partner's unique id.
	ID string
	// DisplayName is its human-readable name.
	DisplayName string
	// OwnerTeam is the internal team accountable for it.
	OwnerTeam string
	// ContractEnd is the instant access ends (exclusive).
	ContractEnd time.Time
	// State is its lifecycle state; credentials are valid only while it is ACTIVE.
	State treatyv1.PartnerState
	// RiskTier sets which client authentication methods its integrations may allow (see
	// DefaultMethods); UNSPECIFIED on create means DefaultRiskTier.
	RiskTier treatyv1.RiskTier
	// LegalName is its registered legal name.
	LegalName string
	// RelationshipType is the kind of relationship (vendor, SaaS, ...).
	RelationshipType treatyv1.RelationshipType
	// AccountableOwner and BackupOwner are the people accountable for the relationship, and
	// SecurityContact the partner's contact for incidents (e-mail addresses or names).
	AccountableOwner, BackupOwner, SecurityContact string
	// BreachNoticeHours is how long the partner has by contract to notify a breach; 0 if unknown.
	BreachNoticeHours int32
	// ContractID names the contract; ContractStart is when it started.
	ContractID    string
	ContractStart time.Time
	// DataClassification is the highest classification of data the partner may reach.
	DataClassification treatyv1.DataClassification
	// LastAssessment and LastAssessmentResult are the last risk assessment's date and result;
	// NextReview is when the next review is due.
	LastAssessment       time.Time
	LastAssessmentResult string
	NextReview           time.Time
	// ApprovedBy and Approved record the approval (ApprovePartner); empty until approved.
	ApprovedBy string
	Approved   time.Time
	// Created and Updated are when it was created and last changed.
	Created, Updated time.Time
	// Etag is an opaque version that changes with every change.
	Etag string
}

// partnerRecord is a partner as stored.
type partnerRecord struct {
	ID          string                `json:"id"`
	DisplayName string                `json:"display_name"`
	OwnerTeam   string                `json:"owner_team"`
	ContractEnd time.Time             `json:"contract_end"`
	State       treatyv1.PartnerState `json:"state"`
	RiskTier    treatyv1.RiskTier     `json:"risk_tier,omitempty"`
	Created     time.Time             `json:"created"`
	Updated     time.Time             `json:"updated"`
	Revision    uint64                `json:"revision"`
	// The governance fields (issue 6); absent in records written before them.
	LegalName            string                      `json:"legal_name,omitempty"`
	RelationshipType     treatyv1.RelationshipType   `json:"relationship_type,omitempty"`
	AccountableOwner     string                      `json:"accountable_owner,omitempty"`
	BackupOwner          string                      `json:"backup_owner,omitempty"`
	SecurityContact      string                      `json:"security_contact,omitempty"`
	BreachNoticeHours    int32                       `json:"breach_notice_hours,omitempty"`
	ContractID           string                      `json:"contract_id,omitempty"`
	ContractStart        time.Time                   `json:"contract_start,omitzero"`
	DataClassification   treatyv1.DataClassification `json:"data_classification,omitempty"`
	LastAssessment       time.Time                   `json:"last_assessment,omitzero"`
	LastAssessmentResult string                      `json:"last_assessment_result,omitempty"`
	NextReview           time.Time                   `json:"next_review,omitzero"`
	ApprovedBy           string                      `json:"approved_by,omitempty"`
	Approved             time.Time                   `json:"approved,omitzero"`
}

func (rec *partnerRecord) partner() Partner {
	return Partner{
		ID: rec.ID, DisplayName: rec.DisplayName, OwnerTeam: rec.OwnerTeam, ContractEnd: rec.ContractEnd,
		State: rec.State, RiskTier: tierOrDefault(rec.RiskTier), Created: rec.Created, Updated: rec.Updated,
		Etag:      etag(rec.Revision),
		LegalName: rec.LegalName, RelationshipType: rec.RelationshipType,
		AccountableOwner: rec.AccountableOwner, BackupOwner: rec.BackupOwner, SecurityContact: rec.SecurityContact,
		BreachNoticeHours: rec.BreachNoticeHours, ContractID: rec.ContractID, ContractStart: rec.ContractStart,
		DataClassification: rec.DataClassification, LastAssessment: rec.LastAssessment,
		LastAssessmentResult: rec.LastAssessmentResult, NextReview: rec.NextReview,
		ApprovedBy: rec.ApprovedBy, Approved: rec.Approved,
	}
}

// setDescriptive copies p's descriptive fields (everything but id, state, approval, times and
// revision) into rec, normalising times to UTC.
func (rec *partnerRecord) setDescriptive(p Partner) {
	rec.DisplayName, rec.OwnerTeam, rec.ContractEnd = p.DisplayName, p.OwnerTeam, utc(p.ContractEnd)
	rec.RiskTier = tierOrDefault(p.RiskTier)
	rec.LegalName, rec.RelationshipType = p.LegalName, p.RelationshipType
	rec.AccountableOwner, rec.BackupOwner, rec.SecurityContact = p.AccountableOwner, p.BackupOwner, p.SecurityContact
	rec.BreachNoticeHours, rec.ContractID, rec.ContractStart = p.BreachNoticeHours, p.ContractID, utc(p.ContractStart)
	rec.DataClassification = p.DataClassification
	rec.LastAssessment, rec.LastAssessmentResult, rec.NextReview = utc(p.LastAssessment), p.LastAssessmentResult, utc(p.NextReview)
}

// utc returns t in UTC without a monotonic reading, and the zero time as it is.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Round(0)
}

// summary is what the audit trail records of a partner.
func (rec *partnerRecord) summary() map[string]string {
	out := map[string]string{
		"state":        feed.StateName(rec.State),
		"display_name": rec.DisplayName,
		"owner_team":   rec.OwnerTeam,
		"contract_end": rec.ContractEnd.Format(time.RFC3339Nano),
		"risk_tier":    TierName(tierOrDefault(rec.RiskTier)),
	}
	put := func(k, v string) {
		if v != "" {
			out[k] = v
		}
	}
	putTime := func(k string, t time.Time) {
		if !t.IsZero() {
			out[k] = t.Format(time.RFC3339Nano)
		}
	}
	put("legal_name", rec.LegalName)
	if rec.RelationshipType != treatyv1.RelationshipType_RELATIONSHIP_TYPE_UNSPECIFIED {
		out["relationship_type"] = RelationshipName(rec.RelationshipType)
	}
	put("accountable_owner", rec.AccountableOwner)
	put("backup_owner", rec.BackupOwner)
	put("security_contact", rec.SecurityContact)
	if rec.BreachNoticeHours != 0 {
		out["breach_notice_hours"] = strconv.Itoa(int(rec.BreachNoticeHours))
	}
	put("contract_id", rec.ContractID)
	putTime("contract_start", rec.ContractStart)
	if rec.DataClassification != treatyv1.DataClassification_DATA_CLASSIFICATION_UNSPECIFIED {
		out["data_classification"] = ClassificationName(rec.DataClassification)
	}
	putTime("last_assessment", rec.LastAssessment)
	put("last_assessment_result", rec.LastAssessmentResult)
	putTime("next_review", rec.NextReview)
	put("approved_by", rec.ApprovedBy)
	putTime("approved", rec.Approved)
	return out
}

// changed is the partner's enforcement fields as a feed event.
func (rec *partnerRecord) changed(actor, reason string) *treatyv1.Event {
	return &treatyv1.Event{Actor: actor, Reason: reason, Change: &treatyv1.Event_PartnerChanged{
		PartnerChanged: &treatyv1.PartnerChanged{
			PartnerId: rec.ID, State: rec.State, ContractEndTime: timestamppb.New(rec.ContractEnd),
		},
	}}
}

// CreatePartner registers a partner, PROPOSED: it must be approved (ApprovePartner) and activated
// (ActivatePartner) before any credential is issued under it. With CreateOptions{Activate: true,
// ApprovedBy: ...} it is created, approved and activated in one transaction with one audit record
// (the one-step shortcut for small deployments). It returns the partner and the feed sequence of
// its PartnerChanged event.
func (r *Registry) CreatePartner(ctx context.Context, p Partner, actor string, opts ...CreateOptions) (Partner, uint64, error) {
	now := r.now()
	if err := checkNewPartner(p, actor, now); err != nil {
		return Partner{}, 0, err
	}
	o := createOptions(opts)
	if err := o.check(); err != nil {
		return Partner{}, 0, err
	}
	rec := partnerRecord{ID: p.ID, State: partnerProposed, Created: now, Updated: now, Revision: 1}
	rec.setDescriptive(p)
	reason := o.reason("partner created")
	if o.Activate {
		rec.State, rec.ApprovedBy, rec.Approved = partnerActive, o.ApprovedBy, now
	}
	seq, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		if partners.exists(tx, rec.ID) {
			return change{}, fail.AlreadyExistsf("partner %q already exists", rec.ID)
		}
		if err := partners.put(tx, rec.ID, "", &rec); err != nil {
			return change{}, err
		}
		return change{
			audit: AuditRecord{Time: now, Actor: actor, Action: "partner.create", Target: "partner/" + rec.ID, Reason: reason,
				After: rec.summary()},
			events: []*treatyv1.Event{rec.changed(actor, "partner created")},
		}, nil
	})
	if !committed(err) {
		return Partner{}, 0, err
	}
	r.wakeContracts() // its contract end may come before the scheduler's next check
	return rec.partner(), seq, err
}

func checkNewPartner(p Partner, actor string, now time.Time) error {
	if err := fail.CheckID("partner.id", p.ID); err != nil {
		return err
	}
	if err := CheckName("partner.display_name", p.DisplayName); err != nil {
		return err
	}
	if err := CheckName("partner.owner_team", p.OwnerTeam); err != nil {
		return err
	}
	if err := CheckTier("partner.risk_tier", p.RiskTier); err != nil {
		return err
	}
	if err := checkPartnerDescriptive(p); err != nil {
		return err
	}
	if p.ContractEnd.IsZero() {
		return fail.Invalidf("partner.contract_end_time", "partner.contract_end_time is required: the instant the partner's access ends")
	}
	if p.ContractEnd.Year() > 9999 {
		return fail.Invalidf("partner.contract_end_time", "partner.contract_end_time must be before the year 10000")
	}
	if !p.ContractEnd.After(now) {
		return fail.Invalidf("partner.contract_end_time", "partner.contract_end_time %s is not in the future", p.ContractEnd.UTC().Format(time.RFC3339))
	}
	return CheckActor("actor", actor)
}

// GetPartner returns the partner with the given id.
func (r *Registry) GetPartner(ctx context.Context, id string) (Partner, error) {
	return get(r.cfg.Store, partners, id, (*partnerRecord).partner)
}

// ListPartners returns one page of partners in id order and the token of the next page ("" on
// the last). A page size of 0 means 100; larger sizes are capped at 1000.
func (r *Registry) ListPartners(ctx context.Context, pageSize int, pageToken string) ([]Partner, string, error) {
	return list(r.cfg.Store, partners, "", pageSize, pageToken, (*partnerRecord).partner)
}

// partnerTransition is a lifecycle step that ends a partner's access with a block.
type partnerTransition struct {
	action    string // audit action
	verb      string // for error messages: "suspended"
	from      []treatyv1.PartnerState
	to        treatyv1.PartnerState
	permanent bool // the block can never be restored
}

var (
	suspend = partnerTransition{
		action: "partner.suspend", verb: "suspended",
		from: []treatyv1.PartnerState{treatyv1.PartnerState_PARTNER_STATE_ACTIVE},
		to:   treatyv1.PartnerState_PARTNER_STATE_SUSPENDED,
	}
	offboard = partnerTransition{
		action: "partner.offboard", verb: "offboarded",
		// OFFBOARDING is where a partner whose contract ended waits (see EndContracts).
		from: []treatyv1.PartnerState{treatyv1.PartnerState_PARTNER_STATE_ACTIVE, treatyv1.PartnerState_PARTNER_STATE_SUSPENDED,
			treatyv1.PartnerState_PARTNER_STATE_OFFBOARDING},
		to: treatyv1.PartnerState_PARTNER_STATE_TERMINATED, permanent: true,
	}
)

// SuspendPartner suspends an active partner and blocks every credential under it. It returns the
// partner and the feed sequence of the block.
func (r *Registry) SuspendPartner(ctx context.Context, id, reason, actor string) (Partner, uint64, error) {
	return r.endPartner(ctx, id, reason, actor, suspend)
}

// OffboardPartner offboards a partner for good and returns it (TERMINATED, final) with the feed
// sequence of its termination. Where the registry has a revoker and a credential inventory it runs
// the whole offboarding workflow (Offboard): a permanent block, every live credential revoked,
// integrations and workloads retired, zero live credentials confirmed and recorded. A registry
// without them can only block and terminate the partner at once; the posture finding for an
// ex-partner's live credentials then tells whether anything was left behind.
func (r *Registry) OffboardPartner(ctx context.Context, id, reason, actor string) (Partner, uint64, error) {
	if r.cfg.Revoker == nil || r.cfg.Inventory == nil {
		return r.endPartner(ctx, id, reason, actor, offboard)
	}
	o, err := r.Offboard(ctx, id, reason, actor, nil)
	if err != nil {
		return Partner{}, 0, err
	}
	p, err := r.GetPartner(ctx, id)
	if err != nil {
		return Partner{}, 0, err
	}
	seq := o.terminatedSeq
	if seq == 0 { // terminated by an earlier call: its confirmation is at or after the block
		seq = o.ConfirmedAtSequence
	}
	return p, seq, nil
}

// endPartner applies t to a partner and publishes the change followed by a block on the partner,
// both carrying the actor and reason.
func (r *Registry) endPartner(ctx context.Context, id, reason, actor string, t partnerTransition) (Partner, uint64, error) {
	if err := fail.CheckID("id", id); err != nil {
		return Partner{}, 0, err
	}
	if err := CheckReason("reason", reason); err != nil {
		return Partner{}, 0, err
	}
	if err := CheckActor("actor", actor); err != nil {
		return Partner{}, 0, err
	}
	now := r.now()
	var rec partnerRecord
	seq, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		if err := partners.load(tx, id, &rec); err != nil {
			return change{}, err
		}
		if !slices.Contains(t.from, rec.State) {
			return change{}, fail.Preconditionf("partner %q is %s; only a partner that is %s can be %s",
				id, feed.StateName(rec.State), stateNames(t.from), t.verb)
		}
		before := rec.summary()
		rec.State, rec.Updated, rec.Revision = t.to, now, rec.Revision+1
		if err := partners.put(tx, rec.ID, "", &rec); err != nil {
			return change{}, err
		}
		block := &treatyv1.Event{Actor: actor, Reason: reason, Change: &treatyv1.Event_Blocked{Blocked: &treatyv1.Blocked{
			TargetKind: treatyv1.TargetKind_TARGET_KIND_PARTNER, TargetId: id, Permanent: t.permanent, Lifecycle: true,
		}}}
		return change{
			audit: AuditRecord{Time: now, Actor: actor, Action: t.action, Target: "partner/" + id, Reason: reason,
				Before: before, After: rec.summary()},
			events: []*treatyv1.Event{rec.changed(actor, reason), block},
		}, nil
	})
	if !committed(err) {
		return Partner{}, 0, err
	}
	return rec.partner(), seq, err
}

func stateNames(states []treatyv1.PartnerState) string {
	names := make([]string, len(states))
	for i, s := range states {
		names[i] = feed.StateName(s)
	}
	return strings.Join(names, " or ")
}
