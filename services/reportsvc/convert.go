package reportsvc

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/posture"
	"github.com/treaty-dev/treaty/registry"
)

var workloadRetired = treatyv1.WorkloadState_WORKLOAD_STATE_RETIRED

// Input converts the snapshot into the posture rules' input.
func (s *Snapshot) Input() posture.Input {
	in := posture.Input{
		Now:          s.Now,
		Partners:     make([]posture.Partner, len(s.Partners)),
		Integrations: make([]posture.Integration, len(s.Integrations)),
		Workloads:    make([]posture.Workload, len(s.Workloads)),
		Secrets:      make([]posture.ClientSecret, len(s.Secrets)),
		Inventory:    s.Inventory,
	}
	for i, p := range s.Partners {
		in.Partners[i] = posture.Partner{
			ID: p.ID, DisplayName: p.DisplayName, State: p.State, RiskTier: p.RiskTier, OwnerTeam: p.OwnerTeam,
			AccountableOwner: p.AccountableOwner, ContractEnd: p.ContractEnd, NextReview: p.NextReview,
		}
	}
	for i, it := range s.Integrations {
		in.Integrations[i] = posture.Integration{
			ID: it.ID, PartnerID: it.PartnerID, State: it.State, Owner: it.Owner, Environment: it.Environment,
			Scopes: it.AllowedScopes, MaxTTL: it.MaxTTL, AuthMethods: it.ClientAuthMethods, SenderConstraint: it.SenderConstraint,
			Created: it.Created,
		}
	}
	for i, w := range s.Workloads {
		pw := posture.Workload{
			ID: w.ID, IntegrationID: w.IntegrationID, PartnerID: w.PartnerID, State: w.State, Created: w.Created,
			LastUsed: w.LastUsed, TLSSubject: w.TLS.String(),
		}
		for _, k := range w.Keys {
			pw.Keys = append(pw.Keys, posture.Key{ID: k.KeyID, Registered: s.KeyRegistered[w.ID][k.KeyID]})
		}
		in.Workloads[i] = pw
	}
	for i, c := range s.Secrets {
		in.Secrets[i] = posture.ClientSecret{ID: c.ID, WorkloadID: c.WorkloadID, Created: c.Created, Expires: c.Expires, Revoked: c.Revoked}
	}
	return in
}

var severities = map[posture.Severity]treatyv1.Severity{
	posture.Low: treatyv1.Severity_SEVERITY_LOW, posture.Medium: treatyv1.Severity_SEVERITY_MEDIUM,
	posture.High: treatyv1.Severity_SEVERITY_HIGH, posture.Critical: treatyv1.Severity_SEVERITY_CRITICAL,
}

// FindingProto converts a finding; the notify engineer's webhooks may reuse it for payloads.
func FindingProto(f posture.Finding) *treatyv1.Finding {
	return &treatyv1.Finding{
		Id: f.ID, Rule: f.Rule, Severity: severities[f.Severity], OwaspNhi: string(f.Risk), OwaspNhiTitle: f.Risk.Title(),
		PartnerId: f.Subject.PartnerID, IntegrationId: f.Subject.IntegrationID, WorkloadId: f.Subject.WorkloadID,
		CredentialId: f.Subject.CredentialID, Message: f.Message, Evidence: f.Evidence,
	}
}

// minSeverity converts a request's severity filter; UNSPECIFIED keeps everything.
func minSeverity(s treatyv1.Severity) posture.Severity {
	for k, v := range severities {
		if v == s {
			return k
		}
	}
	return posture.Low
}

func optionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func partnerRow(p registry.Partner) *treatyv1.InventoryPartner {
	return &treatyv1.InventoryPartner{
		Id: p.ID, DisplayName: p.DisplayName, LegalName: p.LegalName, RelationshipType: p.RelationshipType, State: p.State,
		RiskTier: p.RiskTier, OwnerTeam: p.OwnerTeam, AccountableOwner: p.AccountableOwner, BackupOwner: p.BackupOwner,
		SecurityContact: p.SecurityContact, ContractId: p.ContractID, ContractStartTime: optionalTime(p.ContractStart),
		ContractEndTime: optionalTime(p.ContractEnd), DataClassification: p.DataClassification,
		LastAssessmentTime: optionalTime(p.LastAssessment), LastAssessmentResult: p.LastAssessmentResult,
		NextReviewTime: optionalTime(p.NextReview),
	}
}

func integrationRow(it registry.Integration) *treatyv1.InventoryIntegration {
	return &treatyv1.InventoryIntegration{
		Id: it.ID, PartnerId: it.PartnerID, State: it.State, Environment: it.Environment, Owner: it.Owner, Purpose: it.Purpose,
		AllowedScopes: it.AllowedScopes, MaxCredentialTtl: durationpb.New(it.MaxTTL), ClientAuthMethods: it.ClientAuthMethods,
		SenderConstraint: it.SenderConstraint, LastRecertifiedTime: optionalTime(it.LastRecertified),
	}
}
