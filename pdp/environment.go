package pdp

import "github.com/treaty-dev/treaty/feed"

// environmentReason applies an integration's environment and source ranges to a request:
// credentials of a test integration are denied on production, and an integration that names
// source ranges admits requests from inside them only.
//
// The environment a request is served in is the PDP's own (Config.Environment) when it is
// configured, so an enforcement point cannot talk a production PDP into admitting a test
// integration; otherwise the request context's, as the enforcement point reports it. With
// neither, or for an integration published before environments (""), there is nothing to compare.
//
// An integration with source ranges fails closed: a request whose source address the enforcement
// point did not report is outside every range.
func (p *PDP) environmentReason(i *feed.Integration, ctx *RequestContext) string {
	env := p.cfg.Environment
	if env == "" {
		env = ctx.Environment
	}
	if env != "" && i.Environment != "" && i.Environment != env {
		return ReasonEnvironmentMismatch
	}
	if !i.AllowsSource(ctx.SourceIP) {
		return ReasonSourceIPNotAllowed
	}
	return ""
}

// issuanceEnvironmentReason is environmentReason for an issuance: only the PDP's own environment
// applies (an issuance request carries no request context), so an issuer whose PDP serves one
// environment mints nothing for another. Source ranges apply where the credential is used.
func (p *PDP) issuanceEnvironmentReason(i *feed.Integration) string {
	if env := p.cfg.Environment; env != "" && i.Environment != "" && i.Environment != env {
		return ReasonEnvironmentMismatch
	}
	return ""
}
