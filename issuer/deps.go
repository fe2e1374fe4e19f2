// Package issuer authenticates partner workloads and mints scoped, short-lived, signed credentials.
package issuer

import (
	"context"
	"crypto"
	"time"
)

// What the issuer needs from other services. The gRPC-backed implementations live beside each
// provider's adapter (services/registrysvc, services/pdpsvc), so this package knows nothing of
// gRPC.

// WorkloadKey is a public key a workload signs its client assertions with.
type WorkloadKey struct {
	// KeyID is the key's RFC 7638 JWK thumbprint.
	KeyID string
	// Algorithm is the JWS algorithm, for example "EdDSA".
	Algorithm string
	// Public is the parsed public key.
	Public crypto.PublicKey
}

// Workload is what the issuer needs to know about a workload.
type Workload struct {
	ID            string
	IntegrationID string
	PartnerID     string
	Active        bool
	Keys          []WorkloadKey
	// TLS, if set, is the CA-issued client certificate subject the workload authenticates with by
	// tls_client_auth.
	TLS *TLSSubject
}

// Integration is what the issuer needs to know about an integration.
type Integration struct {
	ID            string
	PartnerID     string
	Active        bool
	AllowedScopes []string
	Audiences     []string
	MaxTTL        time.Duration
	// ClientAuthMethods are the client authentication methods (MethodPrivateKeyJWT, ...) its
	// workloads may use. Empty allows none: the registry always fills it.
	ClientAuthMethods []string
	// SenderConstraint is the proof of possession every token issued under it requires:
	// ConstraintNone ("" means none too), ConstraintDPoP, ConstraintMTLS or ConstraintDPoPOrMTLS.
	SenderConstraint string
}

// Partner is what the issuer needs to know about a partner.
type Partner struct {
	ID     string
	Active bool
	// ContractEnd is the instant access ends (exclusive).
	ContractEnd time.Time
}

// Directory looks workloads, integrations and partners up in the registry. Unknown ids yield a
// fail.NotFound error.
type Directory interface {
	Workload(ctx context.Context, id string) (Workload, error)
	Integration(ctx context.Context, id string) (Integration, error)
	Partner(ctx context.Context, id string) (Partner, error)
}

// IssuanceRequest asks the PDP whether a credential may be minted.
type IssuanceRequest struct {
	WorkloadID  string
	Scopes      []string
	Audience    string
	Kid         string
	MinSequence uint64
}

// IssuanceDecision is the PDP's answer. Sequence is the feed sequence the decision was made at
// and Epoch the feed's epoch; they become the credential's tsq and tep.
type IssuanceDecision struct {
	Allow      bool
	Reasons    []string
	DecisionID string
	Sequence   uint64
	Epoch      string
}

// Authorizer asks the PDP whether issuance is allowed.
type Authorizer interface {
	AuthorizeIssuance(ctx context.Context, req IssuanceRequest) (IssuanceDecision, error)
}
