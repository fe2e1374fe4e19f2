package posture

import (
	"context"
	"time"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// Input is everything the rules read: the registry's entities and what the issuer's inventory
// knows of the credentials minted for them. The report service gathers it (see package reportsvc);
// tests build it by hand.
type Input struct {
	// Now is the instant the findings are computed for.
	Now          time.Time
	Partners     []Partner
	Integrations []Integration
	Workloads    []Workload
	// Secrets are every workload's client secrets, live or not.
	Secrets []ClientSecret
	// Inventory is what the issuer's inventory says of credentials; nil if it could not be read,
	// in which case the rules that need it are skipped and Result.Notes says so.
	Inventory *Inventory
}

// Partner is what the rules read of a partner.
type Partner struct {
	ID, DisplayName string
	State           treatyv1.PartnerState
	RiskTier        treatyv1.RiskTier
	// OwnerTeam and AccountableOwner are who answers for it.
	OwnerTeam, AccountableOwner string
	// ContractEnd is the instant its access ends.
	ContractEnd time.Time
	// NextReview is when its next risk review is due; zero if none is scheduled.
	NextReview time.Time
}

// Integration is what the rules read of an integration.
type Integration struct {
	ID, PartnerID string
	State         treatyv1.IntegrationState
	// Owner answers for the integration; empty if nobody does.
	Owner string
	// Environment is where its credentials are valid, for example "production".
	Environment string
	// Scopes is its scope ceiling.
	Scopes []string
	// MaxTTL is the longest lifetime its credentials may have now.
	MaxTTL time.Duration
	// AuthMethods are the client authentication methods its workloads may use.
	AuthMethods []treatyv1.ClientAuthMethod
	// SenderConstraint is the proof of possession its tokens require (NONE: bearer tokens).
	SenderConstraint treatyv1.SenderConstraint
	// Created is when it was created: an integration younger than the usage window has not had
	// the time to use its scopes.
	Created time.Time
}

// Workload is what the rules read of a workload.
type Workload struct {
	ID, IntegrationID, PartnerID string
	State                        treatyv1.WorkloadState
	Created                      time.Time
	// LastUsed is when the registry last knew it to act; zero if unknown.
	LastUsed time.Time
	// Keys are its registered public keys.
	Keys []Key
	// TLSSubject is the client certificate subject it authenticates with ("subject_dn=...",
	// "san_dns=...", "san_uri=..."), or empty.
	TLSSubject string
}

// Key is a workload's registered public key.
type Key struct {
	// ID is its thumbprint.
	ID string
	// Registered is when it was added to the workload; zero if unknown.
	Registered time.Time
}

// ClientSecret is a client secret's metadata.
type ClientSecret struct {
	ID, WorkloadID string
	Created        time.Time
	Expires        time.Time
	// Revoked is when it was revoked; zero while it is not.
	Revoked time.Time
}

// Live reports whether the secret authenticates at now.
func (s ClientSecret) Live(now time.Time) bool { return s.Revoked.IsZero() && now.Before(s.Expires) }

// Inventory is the issuer's inventory, aggregated per workload.
type Inventory struct {
	// Since is the start of the usage window the aggregates cover: ScopesSeen, AuthMethods and
	// LastSeen only reflect credentials seen or issued since then.
	Since time.Time
	// Workloads holds one entry per workload with a credential issued or seen since Since, or
	// live now.
	Workloads []CredentialStats
	// Truncated is set when the issuer stopped before the start of the window (too many
	// credentials to read): usage-based rules are then skipped.
	Truncated bool
}

// CredentialStats aggregates one workload's credentials.
type CredentialStats struct {
	WorkloadID, IntegrationID, PartnerID string
	// Live is how many of its credentials have not expired; LiveBearer how many of those carry no
	// sender constraint.
	Live, LiveBearer uint64
	// OldestLiveIssued is when its oldest live credential was issued; zero if none is live.
	OldestLiveIssued time.Time
	// OldestLiveID is that credential's jti.
	OldestLiveID string
	// LastIssued is when its newest credential was issued; zero if none in the window.
	LastIssued time.Time
	// LastSeen is the last time a decision point allowed a request with one of its credentials;
	// zero if none in the window.
	LastSeen time.Time
	// ScopesSeen are the scopes carried by its credentials that a decision point allowed a
	// request with in the window. PDP usage reports name the credential, not the action, so every
	// scope of a used credential counts as used: this over-counts use, never under-counts it.
	ScopesSeen []string
	// AuthMethods are the client authentication methods of its credentials issued in the window.
	AuthMethods []string
	// BindingThumbprints are the distinct DPoP key or certificate thumbprints its credentials were
	// bound to in the window (at most a few).
	BindingThumbprints []string
}

// CredentialSource reads the issuer's inventory aggregated per workload over the window that
// starts at since (see issuersvc.NewCredentialSource).
type CredentialSource interface {
	Summarize(ctx context.Context, since time.Time) (Inventory, error)
}
