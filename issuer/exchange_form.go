package issuer

import (
	"net/url"
	"strings"

	"github.com/treaty-dev/treaty/fail"
)

// ExchangeRequestFromForm reads the parameters of an RFC 8693 token exchange request at the token
// endpoint (section 2.1) into an ExchangeRequest around client, the request holding the client's
// authentication as the endpoint collected it: subject_token, subject_token_type, actor_token,
// actor_token_type, scope (space-delimited; absent asks for the subject token's), audience and
// resource (one target in all: a Treaty token has exactly one audience), requested_token_type
// (absent or TokenTypeAccessToken). grant_type is the caller's to check. Malformed parameters are
// Invalid errors naming the parameter (ErrInvalidTarget marks more than one target).
func ExchangeRequestFromForm(client Request, form url.Values) (ExchangeRequest, error) {
	if t := form.Get("requested_token_type"); t != "" && t != TokenTypeAccessToken {
		return ExchangeRequest{}, fail.Invalidf("requested_token_type", "requested_token_type must be absent or %q: only access tokens are issued", TokenTypeAccessToken)
	}
	targets := map[string]bool{}
	for _, name := range []string{"audience", "resource"} {
		for _, v := range form[name] {
			targets[v] = true
		}
	}
	if len(targets) > 1 {
		return ExchangeRequest{}, Mark(fail.Invalidf("audience", "name one target audience (audience or resource): a token has exactly one"), ErrInvalidTarget)
	}
	req := ExchangeRequest{
		Request:      client,
		SubjectToken: form.Get("subject_token"), SubjectTokenType: form.Get("subject_token_type"),
		ActorToken: form.Get("actor_token"), ActorTokenType: form.Get("actor_token_type"),
	}
	for t := range targets {
		req.Audience = t
	}
	if scope := form.Get("scope"); scope != "" {
		req.Scopes = strings.Fields(scope)
	}
	return req, nil
}
