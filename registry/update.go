package registry

import (
	"context"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// Updates change descriptive fields under optimistic concurrency: the caller passes the etag it
// read, and a change since is an Aborted error. The fields to change are named by their proto
// names (an update mask), so a client that does not know a field never clears it.

// PartnerUpdateFields are the partner fields UpdatePartner can change, by proto name.
var PartnerUpdateFields = []string{
	"display_name", "legal_name", "relationship_type", "owner_team", "accountable_owner", "backup_owner",
	"security_contact", "breach_notice_hours", "contract_id", "contract_start_time", "contract_end_time",
	"risk_tier", "data_classification", "last_assessment_time", "last_assessment_result", "next_review_time",
}

// IntegrationUpdateFields are the integration fields UpdateIntegration can change, by proto name.
var IntegrationUpdateFields = []string{
	"allowed_scopes", "audiences", "max_credential_ttl", "allowed_client_auth_methods", "sender_constraint",
	"purpose", "environment", "source_ranges", "approval_ticket", "owner",
}

// checkMask validates an update mask against the fields an update can change.
func checkMask(fields, allowed []string, kind string) error {
	if len(fields) == 0 {
		return fail.Invalidf("update_mask", "update_mask is required: name the fields to change, from %s", strings.Join(allowed, ", "))
	}
	for _, f := range fields {
		if !slices.Contains(allowed, f) {
			return fail.Invalidf("update_mask", "update_mask names %q, which is not a field an update can change on a %s (state changes are their own calls); choose from %s",
				f, kind, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// UpdatePartner sets the fields named by fields (proto names, PartnerUpdateFields) from p on the
// stored partner p.ID, if p.Etag is still its etag. A terminated partner cannot change; the
// contract end can only move while the partner still has (or may get) access, and never into the
// past. A new risk tier must allow the client authentication methods of its integrations. It
// returns the partner and the feed sequence of its PartnerChanged event, or 0 when no enforcement
// field (state, contract end) changed.
//
// The reason is optional; without one the audit record names the changed fields.
func (r *Registry) UpdatePartner(ctx context.Context, p Partner, fields []string, reason, actor string) (Partner, uint64, error) {
	if err := fail.CheckID("partner.id", p.ID); err != nil {
		return Partner{}, 0, err
	}
	if err := checkMask(fields, PartnerUpdateFields, "partner"); err != nil {
		return Partner{}, 0, err
	}
	if err := CheckActor("actor", actor); err != nil {
		return Partner{}, 0, err
	}
	reason, err := optionalReason(reason, "updated "+strings.Join(fields, ", "))
	if err != nil {
		return Partner{}, 0, err
	}
	now := r.now()
	var rec partnerRecord
	endMoved := false
	seq, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		if err := partners.load(tx, p.ID, &rec); err != nil {
			return change{}, err
		}
		if err := checkEtag("partner.etag", "partner", p.ID, p.Etag, rec.Revision); err != nil {
			return change{}, err
		}
		if rec.State == partnerTerminated {
			return change{}, fail.Preconditionf("partner %q is terminated; termination is final and its record is kept as it was", p.ID)
		}
		before := rec.summary()
		merged := rec.partner()
		for _, f := range fields {
			setPartnerField(&merged, p, f)
		}
		if err := checkPartnerUpdate(merged, rec.ContractEnd, now); err != nil {
			return change{}, err
		}
		endMoved = !merged.ContractEnd.Equal(rec.ContractEnd)
		if endMoved && !slices.Contains(contractEndable, rec.State) {
			return change{}, fail.Preconditionf("partner %q is %s; its contract end no longer matters", p.ID, feed.StateName(rec.State))
		}
		if tierOrDefault(merged.RiskTier) != tierOrDefault(rec.RiskTier) {
			if err := tierFitsIntegrations(tx, p.ID, tierOrDefault(merged.RiskTier)); err != nil {
				return change{}, err
			}
		}
		rec.setDescriptive(merged)
		rec.Updated, rec.Revision = now, rec.Revision+1
		if err := partners.put(tx, rec.ID, "", &rec); err != nil {
			return change{}, err
		}
		c := change{audit: AuditRecord{Time: now, Actor: actor, Action: "partner.update", Target: "partner/" + p.ID,
			Reason: reason, Before: before, After: rec.summary()}}
		if endMoved {
			c.events = []*treatyv1.Event{rec.changed(actor, "contract end changed")}
		}
		return c, nil
	})
	if !committed(err) {
		return Partner{}, 0, err
	}
	if endMoved {
		r.wakeContracts()
	}
	return rec.partner(), seq, err
}

// setPartnerField copies the field named f (a proto name) from src to dst.
func setPartnerField(dst *Partner, src Partner, f string) {
	switch f {
	case "display_name":
		dst.DisplayName = src.DisplayName
	case "legal_name":
		dst.LegalName = src.LegalName
	case "relationship_type":
		dst.RelationshipType = src.RelationshipType
	case "owner_team":
		dst.OwnerTeam = src.OwnerTeam
	case "accountable_owner":
		dst.AccountableOwner = src.AccountableOwner
	case "backup_owner":
		dst.BackupOwner = src.BackupOwner
	case "security_contact":
		dst.SecurityContact = src.SecurityContact
	case "breach_notice_hours":
		dst.BreachNoticeHours = src.BreachNoticeHours
	case "contract_id":
		dst.ContractID = src.ContractID
	case "contract_start_time":
		dst.ContractStart = src.ContractStart
	case "contract_end_time":
		dst.ContractEnd = src.ContractEnd
	case "risk_tier":
		dst.RiskTier = src.RiskTier
	case "data_classification":
		dst.DataClassification = src.DataClassification
	case "last_assessment_time":
		dst.LastAssessment = src.LastAssessment
	case "last_assessment_result":
		dst.LastAssessmentResult = src.LastAssessmentResult
	case "next_review_time":
		dst.NextReview = src.NextReview
	}
}

// checkPartnerUpdate validates a partner as an update would leave it; oldEnd is its contract end
// before the update.
func checkPartnerUpdate(p Partner, oldEnd, now time.Time) error {
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
	if p.ContractEnd.Equal(oldEnd) {
		return nil
	}
	switch {
	case p.ContractEnd.IsZero():
		return fail.Invalidf("partner.contract_end_time", "partner.contract_end_time is required: the instant the partner's access ends")
	case p.ContractEnd.Year() > 9999:
		return fail.Invalidf("partner.contract_end_time", "partner.contract_end_time must be before the year 10000")
	case !p.ContractEnd.After(now):
		return fail.Invalidf("partner.contract_end_time", "partner.contract_end_time %s is not in the future; to end access now, suspend or offboard the partner",
			p.ContractEnd.UTC().Format(time.RFC3339))
	}
	return nil
}

// tierFitsIntegrations refuses a risk tier that forbids a client authentication method one of the
// partner's integrations (not retired) allows.
func tierFitsIntegrations(tx store.Tx, partnerID string, tier treatyv1.RiskTier) error {
	prefix := []byte(partnerID + "/")
	var bad error
	err := tx.Scan(bucketIntegrationsByPartner, prefix, nil, func(k, _ []byte) (bool, error) {
		id := string(k[len(prefix):])
		var in integrationRecord
		if err := integrations.load(tx, id, &in); err != nil {
			return false, err
		}
		if in.State == integrationRetired {
			return true, nil
		}
		for _, m := range in.methods() {
			if !tierAllows(tier, m) {
				bad = fail.Preconditionf("integration %q of partner %q allows %s, which risk tier %s does not; remove it from the integration first (treaty integration update %s --auth-methods ...)",
					id, partnerID, MethodName(m), TierName(tier), id)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	return bad
}

// UpdateIntegration sets the fields named by fields (proto names, IntegrationUpdateFields) from i
// on the stored integration i.ID, if i.Etag is still its etag. A retired integration cannot
// change. Client authentication methods must be allowed by the partner's risk tier. It returns the
// integration and the feed sequence of its IntegrationChanged event, or 0 when no field the feed
// carries changed.
//
// The reason is optional; without one the audit record names the changed fields.
func (r *Registry) UpdateIntegration(ctx context.Context, i Integration, fields []string, reason, actor string) (Integration, uint64, error) {
	if err := fail.CheckID("integration.id", i.ID); err != nil {
		return Integration{}, 0, err
	}
	if err := checkMask(fields, IntegrationUpdateFields, "integration"); err != nil {
		return Integration{}, 0, err
	}
	if err := CheckActor("actor", actor); err != nil {
		return Integration{}, 0, err
	}
	reason, err := optionalReason(reason, "updated "+strings.Join(fields, ", "))
	if err != nil {
		return Integration{}, 0, err
	}
	now := r.now()
	var rec integrationRecord
	seq, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		if err := integrations.load(tx, i.ID, &rec); err != nil {
			return change{}, err
		}
		if err := checkEtag("integration.etag", "integration", i.ID, i.Etag, rec.Revision); err != nil {
			return change{}, err
		}
		if rec.State == integrationRetired {
			return change{}, fail.Preconditionf("integration %q is retired; retirement is final", i.ID)
		}
		if err := partnerOpen(tx, rec.PartnerID, "integration", i.ID); err != nil {
			return change{}, err
		}
		before, feedBefore := rec.summary(), rec.changed("", "").GetIntegrationChanged()
		merged := rec.integration()
		for _, f := range fields {
			setIntegrationField(&merged, i, f)
		}
		if err := r.checkIntegrationFields(merged); err != nil {
			return change{}, err
		}
		if slices.Contains(fields, "allowed_client_auth_methods") {
			var p partnerRecord
			if err := partners.load(tx, rec.PartnerID, &p); err != nil {
				return change{}, err
			}
			methods, err := methodsForTier(p.ID, tierOrDefault(p.RiskTier), merged.ClientAuthMethods)
			if err != nil {
				return change{}, err
			}
			merged.ClientAuthMethods = methods
		}
		rec.AllowedScopes, rec.Audiences, rec.MaxTTL = slices.Clone(merged.AllowedScopes), slices.Clone(merged.Audiences), merged.MaxTTL
		rec.AuthMethods, rec.SenderConstraint = slices.Clone(merged.ClientAuthMethods), constraintOrDefault(merged.SenderConstraint)
		rec.Purpose, rec.Environment, rec.SourceRanges = merged.Purpose, merged.Environment, slices.Clone(merged.SourceRanges)
		rec.ApprovalTicket, rec.Owner = merged.ApprovalTicket, merged.Owner
		rec.Updated, rec.Revision = now, rec.Revision+1
		if err := integrations.put(tx, rec.ID, rec.PartnerID, &rec); err != nil {
			return change{}, err
		}
		c := change{audit: AuditRecord{Time: now, Actor: actor, Action: "integration.update", Target: "integration/" + i.ID,
			Reason: reason, Before: before, After: rec.summary()}}
		if ev := rec.changed(actor, "integration updated"); !proto.Equal(ev.GetIntegrationChanged(), feedBefore) {
			c.events = []*treatyv1.Event{ev}
		}
		return c, nil
	})
	if !committed(err) {
		return Integration{}, 0, err
	}
	return rec.integration(), seq, err
}

// setIntegrationField copies the field named f (a proto name) from src to dst.
func setIntegrationField(dst *Integration, src Integration, f string) {
	switch f {
	case "allowed_scopes":
		dst.AllowedScopes = slices.Clone(src.AllowedScopes)
	case "audiences":
		dst.Audiences = slices.Clone(src.Audiences)
	case "max_credential_ttl":
		dst.MaxTTL = src.MaxTTL
	case "allowed_client_auth_methods":
		dst.ClientAuthMethods = slices.Clone(src.ClientAuthMethods)
	case "sender_constraint":
		dst.SenderConstraint = src.SenderConstraint
	case "purpose":
		dst.Purpose = src.Purpose
	case "environment":
		dst.Environment = src.Environment
	case "source_ranges":
		dst.SourceRanges = slices.Clone(src.SourceRanges)
	case "approval_ticket":
		dst.ApprovalTicket = src.ApprovalTicket
	case "owner":
		dst.Owner = src.Owner
	}
}
