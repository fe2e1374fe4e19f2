package registry

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/store"
)

// Integration is one way a partner reaches the platform, with its scope ceiling and limits.
type Integration struct {
	// ID is the integration's unique id.
	ID string
	// PartnerID is the partner it belongs to.
	PartnerID string
	// AllowedScopes is the scope ceiling: credentials carry only scopes from it.
	AllowedScopes []string
	// Audiences are the audiences credentials may be issued for.
	Audiences []string
	// MaxTTL is the longest lifetime a credential under the integration may have.
	MaxTTL time.Duration
	// ClientAuthMethods are the client authentication methods its workloads may use; empty on
	// create means the default of the partner's risk tier (DefaultMethods).
	ClientAuthMethods []treatyv1.ClientAuthMethod
	// SenderConstraint is the proof of possession every token issued under it requires;
	// UNSPECIFIED on create means NONE.
	SenderConstraint treatyv1.SenderConstraint
	// State is its lifecycle state.
	State treatyv1.IntegrationState
	// Purpose says what it is for.
	Purpose string
	// Environment is the one environment its credentials are valid in (for example "production",
	// ValidEnvironment); a decision point of another environment denies them.
	Environment string
	// SourceRanges, if not empty, are the only source addresses requests with its credentials may
	// come from.
	SourceRanges []netip.Prefix
	// ApprovedBy, ApprovalTicket and Approved record the approval (ApproveIntegration).
	ApprovedBy, ApprovalTicket string
	Approved                   time.Time
	// Owner is the person or team that owns it on the platform's side.
	Owner string
	// LastRecertified is when its access was last reviewed (RecertifyIntegration).
	LastRecertified time.Time
	// Created and Updated are when it was created and last changed.
	Created, Updated time.Time
	// Etag is an opaque version that changes with every change.
	Etag string
}

// integrationRecord is an integration as stored.
type integrationRecord struct {
	ID            string        `json:"id"`
	PartnerID     string        `json:"partner_id"`
	AllowedScopes []string      `json:"allowed_scopes"`
	Audiences     []string      `json:"audiences"`
	MaxTTL        time.Duration `json:"max_ttl"`
	// AuthMethods is nil in records written before methods were recorded: private_key_jwt only.
	AuthMethods      []treatyv1.ClientAuthMethod `json:"client_auth_methods,omitempty"`
	SenderConstraint treatyv1.SenderConstraint   `json:"sender_constraint,omitempty"`
	State            treatyv1.IntegrationState   `json:"state"`
	Created          time.Time                   `json:"created"`
	Updated          time.Time                   `json:"updated"`
	Revision         uint64                      `json:"revision"`
	// The governance fields (issue 6); absent in records written before them.
	Purpose         string         `json:"purpose,omitempty"`
	Environment     string         `json:"environment,omitempty"`
	SourceRanges    []netip.Prefix `json:"source_ranges,omitempty"`
	ApprovedBy      string         `json:"approved_by,omitempty"`
	ApprovalTicket  string         `json:"approval_ticket,omitempty"`
	Approved        time.Time      `json:"approved,omitzero"`
	Owner           string         `json:"owner,omitempty"`
	LastRecertified time.Time      `json:"last_recertified,omitzero"`
}

func (rec *integrationRecord) integration() Integration {
	return Integration{
		ID: rec.ID, PartnerID: rec.PartnerID,
		AllowedScopes: slices.Clone(rec.AllowedScopes), Audiences: slices.Clone(rec.Audiences),
		MaxTTL: rec.MaxTTL, ClientAuthMethods: rec.methods(), SenderConstraint: constraintOrDefault(rec.SenderConstraint),
		State: rec.State, Created: rec.Created, Updated: rec.Updated, Etag: etag(rec.Revision),
		Purpose: rec.Purpose, Environment: rec.Environment, SourceRanges: slices.Clone(rec.SourceRanges),
		ApprovedBy: rec.ApprovedBy, ApprovalTicket: rec.ApprovalTicket, Approved: rec.Approved,
		Owner: rec.Owner, LastRecertified: rec.LastRecertified,
	}
}

func (rec *integrationRecord) methods() []treatyv1.ClientAuthMethod {
	if len(rec.AuthMethods) == 0 {
		return slices.Clone(legacyMethods)
	}
	return slices.Clone(rec.AuthMethods)
}

func (rec *integrationRecord) summary() map[string]string {
	out := map[string]string{
		"state":               feed.StateName(rec.State),
		"partner_id":          rec.PartnerID,
		"allowed_scopes":      strings.Join(rec.AllowedScopes, " "),
		"audiences":           strings.Join(rec.Audiences, " "),
		"max_ttl":             rec.MaxTTL.String(),
		"client_auth_methods": strings.Join(methodNames(rec.methods()), " "),
		"sender_constraint":   ConstraintName(rec.SenderConstraint),
	}
	for k, v := range map[string]string{
		"purpose": rec.Purpose, "environment": rec.Environment, "source_ranges": strings.Join(RangeStrings(rec.SourceRanges), " "),
		"approved_by": rec.ApprovedBy, "approval_ticket": rec.ApprovalTicket, "owner": rec.Owner,
	} {
		if v != "" {
			out[k] = v
		}
	}
	for k, t := range map[string]time.Time{"approved": rec.Approved, "last_recertified": rec.LastRecertified} {
		if !t.IsZero() {
			out[k] = t.Format(time.RFC3339Nano)
		}
	}
	return out
}

// changed is the integration's enforcement fields as a feed event.
func (rec *integrationRecord) changed(actor, reason string) *treatyv1.Event {
	return &treatyv1.Event{Actor: actor, Reason: reason, Change: &treatyv1.Event_IntegrationChanged{
		IntegrationChanged: &treatyv1.IntegrationChanged{
			IntegrationId: rec.ID, PartnerId: rec.PartnerID, State: rec.State,
			AllowedScopes: slices.Clone(rec.AllowedScopes), Audiences: slices.Clone(rec.Audiences),
			MaxCredentialTtl: durationpb.New(rec.MaxTTL),
			Environment:      rec.Environment, SourceRanges: RangeStrings(rec.SourceRanges),
		},
	}}
}

// CreateIntegration registers an integration, REQUESTED: it must be approved
// (ApproveIntegration) and activated (ActivateIntegration, under an active partner) before
// credentials are issued under it. It may be requested while its partner is still being approved,
// not once the partner is offboarding or terminated. With CreateOptions{Activate: true,
// ApprovedBy: ...} it is created, approved and activated in one transaction with one audit record;
// its partner must then be active. It returns the integration and the feed sequence of its
// IntegrationChanged event.
func (r *Registry) CreateIntegration(ctx context.Context, i Integration, actor string, opts ...CreateOptions) (Integration, uint64, error) {
	if err := r.checkNewIntegration(i, actor); err != nil {
		return Integration{}, 0, err
	}
	o := createOptions(opts)
	if err := o.check(); err != nil {
		return Integration{}, 0, err
	}
	now := r.now()
	rec := newIntegrationRecord(i, integrationRequested, now)
	reason := o.reason("integration created")
	seq, err := r.commit(ctx, func(tx store.Tx) (change, error) {
		if integrations.exists(tx, rec.ID) {
			return change{}, fail.AlreadyExistsf("integration %q already exists", rec.ID)
		}
		var p partnerRecord
		if err := partners.load(tx, rec.PartnerID, &p); err != nil {
			return change{}, err
		}
		if o.Activate {
			if err := partnerActiveFor(tx, rec.PartnerID, "create integration "+rec.ID+" active"); err != nil {
				return change{}, err
			}
			rec.State, rec.ApprovedBy, rec.Approved = integrationActive, o.ApprovedBy, now
		} else if err := partnerOpen(tx, rec.PartnerID, "integration", rec.ID); err != nil {
			return change{}, err
		}
		methods, err := methodsForTier(p.ID, tierOrDefault(p.RiskTier), i.ClientAuthMethods)
		if err != nil {
			return change{}, err
		}
		rec.AuthMethods = methods
		if err := integrations.put(tx, rec.ID, rec.PartnerID, &rec); err != nil {
			return change{}, err
		}
		return change{
			audit: AuditRecord{Time: now, Actor: actor, Action: "integration.create", Target: "integration/" + rec.ID,
				Reason: reason, After: rec.summary()},
			events: []*treatyv1.Event{rec.changed(actor, "integration created")},
		}, nil
	})
	if !committed(err) {
		return Integration{}, 0, err
	}
	return rec.integration(), seq, err
}

func (r *Registry) checkNewIntegration(i Integration, actor string) error {
	if err := fail.CheckID("integration.id", i.ID); err != nil {
		return err
	}
	if err := fail.CheckID("integration.partner_id", i.PartnerID); err != nil {
		return err
	}
	if err := r.checkIntegrationFields(i); err != nil {
		return err
	}
	return CheckActor("actor", actor)
}

// checkIntegrationFields validates the fields of an integration a create or an update sets.
func (r *Registry) checkIntegrationFields(i Integration) error {
	if err := CheckScopes("integration.allowed_scopes", i.AllowedScopes); err != nil {
		return err
	}
	if err := CheckAudiences("integration.audiences", i.Audiences); err != nil {
		return err
	}
	if err := CheckMethods("integration.allowed_client_auth_methods", i.ClientAuthMethods); err != nil {
		return err
	}
	if err := CheckConstraint("integration.sender_constraint", i.SenderConstraint); err != nil {
		return err
	}
	if err := CheckEnvironment("integration.environment", i.Environment); err != nil {
		return err
	}
	if err := checkIntegrationDescriptive(i); err != nil {
		return err
	}
	if i.MaxTTL <= 0 {
		return fail.Invalidf("integration.max_credential_ttl", "integration.max_credential_ttl must be positive")
	}
	if i.MaxTTL > r.cfg.MaxCredentialTTL {
		return fail.Invalidf("integration.max_credential_ttl", "integration.max_credential_ttl %s exceeds the deployment's maximum credential lifetime %s",
			i.MaxTTL, r.cfg.MaxCredentialTTL)
	}
	return nil
}

// activePartner returns an error unless the partner exists and is active; rule ends the message
// with what was refused.
func activePartner(tx store.Tx, id, rule string) error {
	var p partnerRecord
	if err := partners.load(tx, id, &p); err != nil {
		return err
	}
	if p.State != treatyv1.PartnerState_PARTNER_STATE_ACTIVE {
		return fail.Preconditionf("partner %q is %s; %s", id, feed.StateName(p.State), rule)
	}
	return nil
}

// newIntegrationRecord is a new integration's first revision in state, created now; its
// client authentication methods are set by the caller, who knows the partner's tier.
func newIntegrationRecord(i Integration, state treatyv1.IntegrationState, now time.Time) integrationRecord {
	return integrationRecord{
		ID: i.ID, PartnerID: i.PartnerID,
		AllowedScopes: slices.Clone(i.AllowedScopes), Audiences: slices.Clone(i.Audiences), MaxTTL: i.MaxTTL,
		SenderConstraint: constraintOrDefault(i.SenderConstraint),
		State:            state, Created: now, Updated: now, Revision: 1,
		Purpose: i.Purpose, Environment: i.Environment, SourceRanges: slices.Clone(i.SourceRanges),
		ApprovalTicket: i.ApprovalTicket, Owner: i.Owner,
	}
}

// GetIntegration returns the integration with the given id.
func (r *Registry) GetIntegration(ctx context.Context, id string) (Integration, error) {
	return get(r.cfg.Store, integrations, id, (*integrationRecord).integration)
}

// ListIntegrations returns one page of integrations in id order, only those of partnerID if it is
// set, and the token of the next page ("" on the last). Page sizes are as for ListPartners.
func (r *Registry) ListIntegrations(ctx context.Context, partnerID string, pageSize int, pageToken string) ([]Integration, string, error) {
	return list(r.cfg.Store, integrations, partnerID, pageSize, pageToken, (*integrationRecord).integration)
}

func methodNames(ms []treatyv1.ClientAuthMethod) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = MethodName(m)
	}
	return out
}
