package pdp

import (
	"net/netip"
	"time"

	"github.com/treaty-dev/treaty/token"
)

// CheckRequest asks whether a subject may perform an action on a resource now. The subject is
// exactly one of Token, Claims and WorkloadID.
type CheckRequest struct {
	// Token is a raw access token (a compact JWS) to verify.
	Token string
	// Claims are the claims of a token the caller has verified itself. They are honoured only when
	// Trusted is set, and must carry iss, jti, iat, exp, tsq and kid.
	Claims *VerifiedClaims
	// WorkloadID asks about a workload's current grants, without a credential. Honoured only when
	// Trusted is set.
	WorkloadID string
	// Trusted says the caller holds a role allowed to send Claims or WorkloadID. The service edge
	// sets it; the PDP never infers it.
	Trusted bool

	// Action is matched against the token's scopes and the integration's current ceiling.
	Action string
	// Resource is matched against the token's audience.
	Resource string
	// Context holds facts about the request for policy conditions.
	Context RequestContext
	// Properties are the resource's attributes for policy conditions (resource.NAME in Cedar):
	// values are string, bool, float64 or int64 (integral), []any or map[string]any, as decoded
	// from JSON or a protobuf Struct.
	Properties map[string]any
	// Proof is the evidence of possession a token with a cnf claim needs.
	Proof Proof
	// MinSequence, if set, makes the decision wait until the PDP has applied that feed sequence.
	MinSequence uint64
	// RequestID is the caller's request id, for the decision log.
	RequestID string
}

// VerifiedClaims are the claims of an access token whose signature the caller has verified,
// with the id of the key that signed it.
type VerifiedClaims struct {
	token.Claims
	// KeyID is the kid of the signing key.
	KeyID string
}

// RequestContext holds facts about a request that policy conditions may use. The time is always
// the PDP's own clock, never the caller's.
type RequestContext struct {
	// SourceIP is the address the request came from, as the enforcement point saw it; invalid
	// (the zero Addr) when unknown.
	SourceIP netip.Addr
	// Environment is the environment the request is served in, for example "production".
	Environment string
}

// Proof is an enforcement point's evidence that the caller holds the key a credential is bound
// to (its cnf claim).
type Proof struct {
	// DPoP is an RFC 9449 DPoP proof JWT.
	DPoP string
	// Method and URI are the HTTP method and URI (without query or fragment) of the request the
	// DPoP proof must be for.
	Method, URI string
	// CertThumbprint is the base64url SHA-256 thumbprint of the client certificate (RFC 8705).
	CertThumbprint string
}

// IssuanceRequest asks whether the issuer may mint a credential now.
type IssuanceRequest struct {
	WorkloadID string
	Scopes     []string
	Audience   string
	// Kid is the signing key that would sign the credential.
	Kid         string
	MinSequence uint64
}

// Decision is the answer to a check. A deny is a Decision too: only an unmet MinSequence is an
// error.
type Decision struct {
	Allow bool
	// Reasons holds one reason (see the Reason constants): granted, or the first check that failed;
	// a policy's deny names the policy. The slice is shared between decisions: do not modify it.
	Reasons []string
	// DecisionID identifies the decision in the audit trail.
	DecisionID DecisionID
	// Sequence is the feed sequence of the state the decision was made on. For an issuance, it
	// becomes the credential's tsq.
	Sequence uint64
	// Epoch is the epoch of the feed Sequence belongs to; for an issuance, the credential's tep.
	Epoch string
	// PolicyID is the live policy version that took part in the decision, if any.
	PolicyID string
	// Subject, Partner and TokenID are the workload, its partner and the jti of a checked token,
	// for the audit trail; empty unless known (a token's only once its signature verified).
	Subject, Partner, TokenID string

	tokenSequence uint64 // the checked token's tsq, for waiting on it
}

// BatchSemantics says how CheckBatch evaluates its checks (AuthZEN's evaluations_semantic).
type BatchSemantics int

// The batch semantics.
const (
	// ExecuteAll decides every check.
	ExecuteAll BatchSemantics = iota
	// DenyOnFirstDeny stops after the first deny.
	DenyOnFirstDeny
	// PermitOnFirstPermit stops after the first allow.
	PermitOnFirstPermit
)

// MaxBatch bounds the checks in one batch.
const MaxBatch = 256

// Recorder receives every decision the PDP makes, for the decision log. Record is called on the
// decision path after the decision is made, and must never block for long. The request and the
// decision are passed by value: pointers handed to an interface method escape, which cost two
// heap copies per decision; values are copied on the stack. They share their strings and slices
// with the caller's, which nobody modifies.
type Recorder interface {
	Record(req CheckRequest, d Decision, latency time.Duration)
}
