package pdp

import "slices"

// The reasons a decision carries. They are part of the API: gateways, dashboards and audit queries
// match on them, so a reason is never renamed, and each one means exactly one thing. A decision
// carries one reason: the first check that fails, in the order the constants are listed here.
const (
	// ReasonGranted: every check passed.
	ReasonGranted = "granted"

	// ReasonSyncing: the PDP has not yet applied the head the revoker announced, after starting,
	// reconnecting or resyncing. It denies rather than decide on a state it knows to be behind.
	ReasonSyncing = "syncing"
	// ReasonStale: the PDP has not been caught up with the feed for longer than its staleness
	// bound, or the feed was replaced (new epoch, lower head) and it is resyncing from a snapshot.
	ReasonStale = "stale"

	// ReasonClaimsNotTrusted: the request carries already-verified claims, but its caller is not
	// trusted to send them (CheckRequest.Trusted unset): anyone could write claims.
	ReasonClaimsNotTrusted = "claims_not_trusted"
	// ReasonClaimsIncomplete: the already-verified claims lack one of iss, jti, iat, exp, tsq and
	// kid, or the sub, partner and integration every access token carries.
	ReasonClaimsIncomplete = "claims_incomplete"
	// ReasonSubjectNotTrusted: the request asks about a workload's current grants without a
	// credential, and its caller is not trusted to do so (CheckRequest.Trusted unset).
	ReasonSubjectNotTrusted = "subject_not_trusted"

	// ReasonMalformedToken: the token is not a compact JWS of bounded size with an allowed
	// algorithm, a kid and the access-token type, or its verified payload lacks a required claim.
	ReasonMalformedToken = "malformed_token"
	// ReasonUnknownKey: the token's kid (or the issuance request's) was never published into the
	// feed, or its published JWK is unusable.
	ReasonUnknownKey = "unknown_key"
	// ReasonKeyRevoked: the signing key was revoked; every token it signed is denied.
	ReasonKeyRevoked = "key_revoked"
	// ReasonBadSignature: the signature does not verify with the published key, or the token's
	// algorithm is not the one the key was published with.
	ReasonBadSignature = "bad_signature"
	// ReasonWrongIssuer: the token's iss is not the issuer the signing key was published for.
	ReasonWrongIssuer = "wrong_issuer"
	// ReasonExpired: the token's exp has passed (exp <= now; no clock skew is granted).
	ReasonExpired = "expired"
	// ReasonNotYetValid: the token's iat is more than MaxClockSkew in the future.
	ReasonNotYetValid = "not_yet_valid"
	// ReasonEpochMismatch: the token was issued against another epoch of the feed (the log was
	// replaced since), so its tsq cannot be compared with this log's watermarks.
	ReasonEpochMismatch = "epoch_mismatch"
	// ReasonSequenceAhead: the token claims an issuance sequence this PDP has not reached even
	// after waiting briefly: the PDP lags far behind, or the log was rolled back.
	ReasonSequenceAhead = "sequence_ahead"
	// ReasonRevokedGlobal: the credential's tsq (an exchanged token's: the lowest of its chain) is
	// below the feed's global watermark, the
	// break-glass revocation of every credential issued before a sequence (an issuer compromise).
	ReasonRevokedGlobal = "revoked_global"
	// ReasonRevoked: the credential's jti is on the feed's denylist.
	ReasonRevoked = "revoked"
	// ReasonParentRevoked: the token was minted by token exchange and a token it derives from (its
	// parent or an earlier ancestor, listed in its anc claim) is revoked by jti, or the key that
	// signed one was revoked: an exchanged token dies with its parent.
	ReasonParentRevoked = "parent_revoked"
	// ReasonProofMissing: the credential is bound to a key (its cnf claim) and the request carries
	// no proof of the kind the binding needs: no DPoP proof for cnf.jkt, no client certificate
	// thumbprint for cnf.x5t#S256, or a cnf claim naming neither.
	ReasonProofMissing = "proof_missing"
	// ReasonProofInvalid: the DPoP proof is not a valid RFC 9449 proof for this request: malformed,
	// not typ dpop+jwt, a symmetric or unknown alg, no public jwk header, a bad signature, a
	// missing jti, htm or htu that differ from the request's method and URI, or an iat outside
	// DPoPProofWindow of the PDP's clock.
	ReasonProofInvalid = "proof_invalid"
	// ReasonProofMismatch: the proof is for another key or credential: the DPoP key's thumbprint
	// is not cnf.jkt, the proof's ath is not the hash of this token, or the client certificate's
	// thumbprint is not cnf.x5t#S256.
	ReasonProofMismatch = "proof_mismatch"

	// ReasonPartnerBlocked: a kill-switch block is in force on the token's partner.
	ReasonPartnerBlocked = "partner_blocked"
	// ReasonPartnerRevoked: the partner was restored after a block at a sequence later than the
	// token's tsq, so credentials minted before the restore stay dead.
	ReasonPartnerRevoked = "partner_revoked"
	// ReasonIntegrationBlocked: a block is in force on the token's integration.
	ReasonIntegrationBlocked = "integration_blocked"
	// ReasonIntegrationRevoked: the integration was restored after the token's tsq.
	ReasonIntegrationRevoked = "integration_revoked"
	// ReasonWorkloadBlocked: a block is in force on the token's workload (or, for an exchanged
	// token, on any actor's workload in its act claim).
	ReasonWorkloadBlocked = "workload_blocked"
	// ReasonWorkloadRevoked: the workload (or an actor's) was restored after the token's tsq (for
	// an exchanged token, the lowest tsq of its chain).
	ReasonWorkloadRevoked = "workload_revoked"

	// ReasonPartnerUnknown: the feed holds no partner record for the partner.
	ReasonPartnerUnknown = "partner_unknown"
	// ReasonPartnerInactive: the partner is not active yet (proposed or approved).
	ReasonPartnerInactive = "partner_inactive"
	// ReasonPartnerSuspended: the partner is suspended in the registry.
	ReasonPartnerSuspended = "partner_suspended"
	// ReasonPartnerTerminated: the partner is being offboarded or was terminated.
	ReasonPartnerTerminated = "partner_terminated"
	// ReasonContractEnded: the partner's contract end time has passed.
	ReasonContractEnded = "contract_ended"
	// ReasonIntegrationUnknown: the feed holds no integration record for the integration.
	ReasonIntegrationUnknown = "integration_unknown"
	// ReasonIntegrationInactive: the integration is not active (requested, approved, suspended or
	// retired).
	ReasonIntegrationInactive = "integration_inactive"
	// ReasonWorkloadUnknown: the feed holds no workload record for the workload.
	ReasonWorkloadUnknown = "workload_unknown"
	// ReasonWorkloadInactive: the workload is suspended or retired.
	ReasonWorkloadInactive = "workload_inactive"
	// ReasonSubjectMismatch: the partner or integration the token (or the workload record) names
	// is not the one the registry records for the workload or integration, the token's client_id
	// is not its presenter (its subject, or the latest actor of an exchanged token), the request
	// names a workload that is not the presenter, or an actor of an exchanged token is not in the
	// token's partner and integration.
	ReasonSubjectMismatch = "subject_mismatch"
	// ReasonEnvironmentMismatch: the integration's environment is not the one the request is
	// served in: the PDP's configured environment, or else the request context's (a test
	// integration's credentials on production). For an issuance, only the PDP's applies.
	ReasonEnvironmentMismatch = "environment_mismatch"
	// ReasonSourceIPNotAllowed: the integration admits requests from its source ranges only, and
	// the request's source IP is outside them, or the enforcement point did not report one.
	ReasonSourceIPNotAllowed = "source_ip_not_allowed"

	// ReasonScopeMissing: the action is not among the token's scopes (or an issuance request asks
	// for no scope at all).
	ReasonScopeMissing = "scope_missing"
	// ReasonScopeNotAllowed: the action (or a requested scope) is not inside the integration's
	// current scope ceiling: a ceiling narrowed after issuance takes effect at once.
	ReasonScopeNotAllowed = "scope_not_allowed"
	// ReasonAudienceMismatch: the resource is not the token's audience.
	ReasonAudienceMismatch = "audience_mismatch"
	// ReasonAudienceNotAllowed: the audience is no longer (or, for issuance, not) among the
	// integration's audiences: like scopes, audiences removed after issuance take effect at once.
	ReasonAudienceNotAllowed = "audience_not_allowed"
)

// allReasons lists every built-in reason, in the order of the checks.
var allReasons = []string{
	ReasonGranted, ReasonSyncing, ReasonStale, ReasonClaimsNotTrusted, ReasonClaimsIncomplete,
	ReasonSubjectNotTrusted, ReasonMalformedToken, ReasonUnknownKey, ReasonKeyRevoked,
	ReasonBadSignature, ReasonWrongIssuer, ReasonExpired, ReasonNotYetValid, ReasonEpochMismatch,
	ReasonSequenceAhead, ReasonRevokedGlobal, ReasonRevoked, ReasonParentRevoked, ReasonProofMissing, ReasonProofInvalid, ReasonProofMismatch,
	ReasonPartnerBlocked, ReasonPartnerRevoked, ReasonIntegrationBlocked, ReasonIntegrationRevoked,
	ReasonWorkloadBlocked, ReasonWorkloadRevoked, ReasonPartnerUnknown, ReasonPartnerInactive,
	ReasonPartnerSuspended, ReasonPartnerTerminated, ReasonContractEnded, ReasonIntegrationUnknown,
	ReasonIntegrationInactive, ReasonWorkloadUnknown, ReasonWorkloadInactive, ReasonSubjectMismatch,
	ReasonEnvironmentMismatch, ReasonSourceIPNotAllowed,
	ReasonScopeMissing, ReasonScopeNotAllowed, ReasonAudienceMismatch, ReasonAudienceNotAllowed,
}

// Reasons returns every built-in reason, in the order of the checks. A partner policy's deny
// names the policy instead (policy_forbid:..., see package policy).
func Reasons() []string { return slices.Clone(allReasons) }

// reasonEntry is what a decision needs of its reason: the shared, read-only slice it carries (so
// that it carries its reason without allocating) and the reason's index among the decision
// counters (stats.go).
type reasonEntry struct {
	list  []string
	index int
}

// reasons maps every built-in reason to its entry; the index is its position in allReasons.
var reasons = func() map[string]reasonEntry {
	m := make(map[string]reasonEntry, len(allReasons))
	for i, r := range allReasons {
		m[r] = reasonEntry{list: []string{r}, index: i}
	}
	return m
}()

// grantedReasons is the reasons of every allow.
var grantedReasons = reasons[ReasonGranted].list
