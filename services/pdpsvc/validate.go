package pdpsvc

import (
	"strings"
	"unicode"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/token"
)

// Bounds on request fields. A token's content is never echoed in a message: it is a credential.
const (
	maxResource = 1024 // a resource or audience
	maxScopes   = 64
)

func validateCheck(req *treatyv1.CheckRequest) error {
	switch tok := req.GetToken(); {
	case tok == "":
		return fail.Invalidf("token", "token is required: pass the access token to check")
	case len(tok) > pdp.MaxTokenBytes:
		return fail.Invalidf("token", "token is longer than %d bytes; Treaty access tokens are far smaller", pdp.MaxTokenBytes)
	}
	if err := checkScope("action", req.GetAction()); err != nil {
		return err
	}
	return checkPrintable("resource", req.GetResource(), maxResource)
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
		if err := checkScope("scopes", scope); err != nil {
			return err
		}
	}
	if err := checkPrintable("audience", req.GetAudience(), maxResource); err != nil {
		return err
	}
	return fail.CheckOpaqueID("kid", req.GetKid())
}

// checkScope checks a scope name (an action is one): printable ASCII without spaces, since scopes
// travel space-delimited in tokens.
func checkScope(field, s string) error {
	if !token.ValidScope(s) {
		return fail.Invalidf(field, "%s must be a scope name: 1-%d printable ASCII characters without spaces, quotes or backslashes", field, token.MaxScopeLen)
	}
	return nil
}

// checkPrintable checks a required, bounded string of printable characters.
func checkPrintable(field, s string, max int) error {
	if s == "" {
		return fail.Invalidf(field, "%s is required", field)
	}
	if len(s) > max || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return fail.Invalidf(field, "%s must be 1-%d bytes of printable characters", field, max)
	}
	return nil
}
