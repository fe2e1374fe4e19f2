package registry

import (
	"slices"
	"strings"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// Client authentication policy: a partner's risk tier decides which client authentication methods
// its integrations may allow, and what they allow when the request names none.
//
//	risk tier   allowed, and the default           refused
//	low         every method                       -
//	medium      every method                       -
//	high        private_key_jwt, tls_client_auth,  client_secret_basic, client_secret_post
//	            self_signed_tls_client_auth
//	critical    as high                            as high
//
// Client secrets are the weakest method (a bearer secret, replayable wherever it leaks), so
// partners whose credentials could do the most harm must prove possession of a private key.

// DefaultRiskTier is a partner's risk tier when none is given.
const DefaultRiskTier = treatyv1.RiskTier_RISK_TIER_MEDIUM

// allMethods lists every client authentication method, strongest first.
var allMethods = []treatyv1.ClientAuthMethod{
	treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_PRIVATE_KEY_JWT,
	treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_TLS_CLIENT_AUTH,
	treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_SELF_SIGNED_TLS_CLIENT_AUTH,
	treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_BASIC,
	treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_POST,
}

// legacyMethods is what an integration stored before methods were recorded allows: the only
// method there was.
var legacyMethods = []treatyv1.ClientAuthMethod{treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_PRIVATE_KEY_JWT}

// ClientSecretMethod reports whether m authenticates with a client secret.
func ClientSecretMethod(m treatyv1.ClientAuthMethod) bool {
	return m == treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_BASIC ||
		m == treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_CLIENT_SECRET_POST
}

// MethodName returns the RFC 8414 name of m, for example "private_key_jwt".
func MethodName(m treatyv1.ClientAuthMethod) string {
	return strings.ToLower(strings.TrimPrefix(m.String(), "CLIENT_AUTH_METHOD_"))
}

// ParseMethod returns the method whose RFC 8414 name is name.
func ParseMethod(name string) (treatyv1.ClientAuthMethod, bool) {
	for _, m := range allMethods {
		if MethodName(m) == name {
			return m, true
		}
	}
	return treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_UNSPECIFIED, false
}

// TierName returns the lower-case name of a risk tier, for example "high".
func TierName(t treatyv1.RiskTier) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "RISK_TIER_"))
}

// ParseTier returns the risk tier named name (low, medium, high, critical).
func ParseTier(name string) (treatyv1.RiskTier, bool) {
	v, ok := treatyv1.RiskTier_value["RISK_TIER_"+strings.ToUpper(name)]
	if !ok || v == 0 {
		return treatyv1.RiskTier_RISK_TIER_UNSPECIFIED, false
	}
	return treatyv1.RiskTier(v), true
}

// ConstraintName returns the lower-case name of a sender constraint, for example "dpop".
func ConstraintName(c treatyv1.SenderConstraint) string {
	if c == treatyv1.SenderConstraint_SENDER_CONSTRAINT_UNSPECIFIED {
		c = treatyv1.SenderConstraint_SENDER_CONSTRAINT_NONE
	}
	return strings.ToLower(strings.TrimPrefix(c.String(), "SENDER_CONSTRAINT_"))
}

// ParseConstraint returns the sender constraint named name (none, dpop, mtls, dpop_or_mtls).
func ParseConstraint(name string) (treatyv1.SenderConstraint, bool) {
	v, ok := treatyv1.SenderConstraint_value["SENDER_CONSTRAINT_"+strings.ToUpper(name)]
	if !ok || v == 0 {
		return treatyv1.SenderConstraint_SENDER_CONSTRAINT_UNSPECIFIED, false
	}
	return treatyv1.SenderConstraint(v), true
}

// tierAllows reports whether a partner of tier t may allow method m.
func tierAllows(t treatyv1.RiskTier, m treatyv1.ClientAuthMethod) bool {
	switch t {
	case treatyv1.RiskTier_RISK_TIER_HIGH, treatyv1.RiskTier_RISK_TIER_CRITICAL:
		return !ClientSecretMethod(m)
	}
	return true
}

// DefaultMethods returns the client authentication methods an integration of a partner of tier t
// allows when its creator names none: every method the tier allows.
func DefaultMethods(t treatyv1.RiskTier) []treatyv1.ClientAuthMethod {
	var out []treatyv1.ClientAuthMethod
	for _, m := range allMethods {
		if tierAllows(t, m) {
			out = append(out, m)
		}
	}
	return out
}

// CheckMethods checks the shape of a list of client authentication methods: known methods, each
// once. Whether the partner's tier allows them is checked against the stored partner.
func CheckMethods(field string, methods []treatyv1.ClientAuthMethod) error {
	for i, m := range methods {
		if !slices.Contains(allMethods, m) {
			return fail.Invalidf(field, "%s[%d] is not a client authentication method (private_key_jwt, tls_client_auth, self_signed_tls_client_auth, client_secret_basic, client_secret_post)", field, i)
		}
		if slices.Contains(methods[:i], m) {
			return fail.Invalidf(field, "%s lists %s twice", field, MethodName(m))
		}
	}
	return nil
}

// CheckConstraint checks that c is a sender constraint (UNSPECIFIED means none).
func CheckConstraint(field string, c treatyv1.SenderConstraint) error {
	if _, ok := treatyv1.SenderConstraint_name[int32(c)]; !ok {
		return fail.Invalidf(field, "%s must be none, dpop, mtls or dpop_or_mtls", field)
	}
	return nil
}

// CheckTier checks that t is a risk tier (UNSPECIFIED means DefaultRiskTier).
func CheckTier(field string, t treatyv1.RiskTier) error {
	if _, ok := treatyv1.RiskTier_name[int32(t)]; !ok {
		return fail.Invalidf(field, "%s must be low, medium, high or critical", field)
	}
	return nil
}

// methodsForTier returns the methods an integration of a partner of tier t allows: requested, or
// the tier's default if it is empty. A method the tier forbids is a FailedPrecondition error.
func methodsForTier(partnerID string, t treatyv1.RiskTier, requested []treatyv1.ClientAuthMethod) ([]treatyv1.ClientAuthMethod, error) {
	if len(requested) == 0 {
		return DefaultMethods(t), nil
	}
	for _, m := range requested {
		if !tierAllows(t, m) {
			return nil, fail.Preconditionf("partner %q is of risk tier %s, which does not allow %s: client secrets are bearer secrets, replayable wherever they leak; use private_key_jwt or mTLS client certificates",
				partnerID, TierName(t), MethodName(m))
		}
	}
	return slices.Clone(requested), nil
}

// tierOrDefault reads a stored tier: records written before tiers existed are medium.
func tierOrDefault(t treatyv1.RiskTier) treatyv1.RiskTier {
	if t == treatyv1.RiskTier_RISK_TIER_UNSPECIFIED {
		return DefaultRiskTier
	}
	return t
}

// constraintOrDefault reads a stored sender constraint: unset is none.
func constraintOrDefault(c treatyv1.SenderConstraint) treatyv1.SenderConstraint {
	if c == treatyv1.SenderConstraint_SENDER_CONSTRAINT_UNSPECIFIED {
		return treatyv1.SenderConstraint_SENDER_CONSTRAINT_NONE
	}
	return c
}
