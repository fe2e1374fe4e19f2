package pdpsvc

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/token"
)

// Bounds on request fields. A token's content is never echoed in a message: it is a credential.
const (
	maxResource    = 1024 // a resource or audience
	maxScopes      = 64
	maxClaimString = 1024 // any string claim of verified claims
	maxProofField  = 2048 // the HTTP URI, method and certificate thumbprint of a proof
	maxEnvironment = 256
)

// validateCheck checks one check. prefix names the check inside a batch ("checks[3].") and is
// empty for Check; field names are built only on the error path, so a valid request costs no
// allocation here.
func validateCheck(prefix string, req *treatyv1.CheckRequest) error {
	switch sub := req.GetSubject().(type) {
	case *treatyv1.CheckRequest_Token:
		switch tok := sub.Token; {
		case tok == "":
			return fail.Invalidf(prefix+"token", "token is required: pass the access token to check")
		case len(tok) > pdp.MaxTokenBytes:
			return fail.Invalidf(prefix+"token", "token is longer than %d bytes; Treaty access tokens are far smaller", pdp.MaxTokenBytes)
		}
	case *treatyv1.CheckRequest_Claims:
		if err := validateClaims(prefix+"claims.", sub.Claims); err != nil {
			return err
		}
	case *treatyv1.CheckRequest_WorkloadId:
		if err := fail.CheckID(prefix+"workload_id", sub.WorkloadId); err != nil {
			return err
		}
	default:
		return fail.Invalidf(prefix+"token", "a subject is required: token, claims or workload_id")
	}
	if err := checkScope(prefix, "action", req.GetAction()); err != nil {
		return err
	}
	if err := checkPrintable(prefix, "resource", req.GetResource(), maxResource); err != nil {
		return err
	}
	if c := req.GetContext(); c != nil {
		if ip := c.GetSourceIp(); ip != "" {
			if _, err := netip.ParseAddr(ip); err != nil {
				return fail.Invalidf(prefix+"context.source_ip", "context.source_ip %q is not an IPv4 or IPv6 address", fail.Clip(ip))
			}
		}
		if env := c.GetEnvironment(); env != "" {
			if err := checkPrintable(prefix, "context.environment", env, maxEnvironment); err != nil {
				return err
			}
		}
	}
	if p := req.GetProof(); p != nil {
		if len(p.GetDpop()) > pdp.MaxTokenBytes {
			return fail.Invalidf(prefix+"proof.dpop", "proof.dpop is longer than %d bytes", pdp.MaxTokenBytes)
		}
		for _, f := range []struct{ name, v string }{
			{"proof.http_method", p.GetHttpMethod()}, {"proof.http_uri", p.GetHttpUri()}, {"proof.client_cert_thumbprint", p.GetClientCertThumbprint()},
		} {
			if f.v != "" {
				if err := checkPrintable(prefix, f.name, f.v, maxProofField); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// validateClaims checks the shape of verified claims. Missing claims are not malformed input but
// a deny (claims_incomplete) that the PDP decides; here only sizes and the scope syntax, without
// which the scopes could not be joined into a scope claim unambiguously.
func validateClaims(prefix string, c *treatyv1.VerifiedClaims) error {
	for _, f := range []struct{ name, v string }{
		{"iss", c.GetIss()}, {"sub", c.GetSub()}, {"client_id", c.GetClientId()}, {"partner", c.GetPartner()},
		{"integration", c.GetIntegration()}, {"aud", c.GetAud()}, {"jti", c.GetJti()}, {"tep", c.GetTep()}, {"kid", c.GetKid()},
		{"cnf.jkt", c.GetCnf().GetJkt()}, {"cnf.x5t_s256", c.GetCnf().GetX5TS256()},
	} {
		if len(f.v) > maxClaimString {
			return fail.Invalidf(prefix+f.name, "%s%s is longer than %d bytes", prefix, f.name, maxClaimString)
		}
	}
	if n := len(c.GetScopes()); n > maxScopes {
		return fail.Invalidf(prefix+"scopes", "%sscopes names %d scopes; at most %d are allowed", prefix, n, maxScopes)
	}
	for _, scope := range c.GetScopes() {
		if err := checkScope(prefix, "scopes", scope); err != nil {
			return err
		}
	}
	return nil
}

func validateBatch(req *treatyv1.CheckBatchRequest) error {
	switch n := len(req.GetChecks()); {
	case n == 0:
		return fail.Invalidf("checks", "checks must hold at least one check")
	case n > pdp.MaxBatch:
		return fail.Invalidf("checks", "a batch holds at most %d checks, not %d: split it", pdp.MaxBatch, n)
	}
	if _, ok := treatyv1.BatchSemantics_name[int32(req.GetSemantics())]; !ok {
		return fail.Invalidf("semantics", "semantics %d is not a BatchSemantics value", req.GetSemantics())
	}
	for i, c := range req.GetChecks() {
		if err := validateCheck("checks["+strconv.Itoa(i)+"].", c); err != nil {
			return err
		}
	}
	return nil
}

func validateIssuance(req *treatyv1.CheckIssuanceRequest) error {
	if err := fail.CheckID("workload_id", req.GetWorkloadId()); err != nil {
		return err
	}
	switch n := len(req.GetScopes()); {
	case n == 0:
		return fail.Invalidf("scopes", "scopes must name at least one scope")
	case n > maxScopes:
		return fail.Invalidf("scopes", "scopes names %d scopes; at most %d are allowed", n, maxScopes)
	}
	for _, scope := range req.GetScopes() {
		if err := checkScope("", "scopes", scope); err != nil {
			return err
		}
	}
	if err := checkPrintable("", "audience", req.GetAudience(), maxResource); err != nil {
		return err
	}
	return fail.CheckOpaqueID("kid", req.GetKid())
}

// checkScope checks a scope name (an action is one): printable ASCII without spaces, since scopes
// travel space-delimited in tokens.
func checkScope(prefix, field, s string) error {
	if !token.ValidScope(s) {
		return fail.Invalidf(prefix+field, "%s%s must be a scope name: 1-%d printable ASCII characters without spaces, quotes or backslashes",
			prefix, field, token.MaxScopeLen)
	}
	return nil
}

// checkPrintable checks a required, bounded string of printable characters.
func checkPrintable(prefix, field, s string, max int) error {
	if s == "" {
		return fail.Invalidf(prefix+field, "%s%s is required", prefix, field)
	}
	if len(s) > max || !printable(s) {
		return fail.Invalidf(prefix+field, "%s%s must be 1-%d bytes of printable characters", prefix, field, max)
	}
	return nil
}

// printable reports whether s holds only printable characters, with an ASCII fast path: a
// closure passed to strings.IndexFunc would cost a call per byte on every request.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 {
			return strings.IndexFunc(s[i:], func(r rune) bool { return !unicode.IsPrint(r) }) < 0
		} else if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
