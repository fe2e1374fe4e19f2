# Treaty's check (pdp/check.go) written in Rego, for the side-by-side benchmark in this module.
#
# input: the claims of an already verified access token (OPA does not verify the signature: that
# is the benchmark's handicap in OPA's favour), the action (a scope), the resource (an audience),
# the request's source_ip and environment, and now (unix seconds, the decision point's clock).
#
# data: the enforcement state Treaty follows from its feed, read out of the same state:
#   sequence            the feed sequence the data is at
#   partners[id]        {state, contract_end, blocked, watermark}
#   integrations[id]    {partner, state, scopes, audiences, blocked, watermark}
#   workloads[id]       {partner, integration, state, blocked, watermark}
#   revoked[jti]        true for every revoked credential
#   conditions[id]      the partner's conditions, for the 10% of partners that have Cedar
#                       policies in Treaty: {cidrs, environments, hours: {from, to}}
package treaty.authz

default allow := false

allow if {
	c := input.claims
	c.exp > input.now
	c.tsq <= data.sequence
	not data.revoked[c.jti]

	# The kill switch: a block denies, and a credential issued before the last restore does too.
	p := data.partners[c.partner]
	i := data.integrations[c.integration]
	w := data.workloads[c.sub]
	admits(p, c.tsq)
	admits(i, c.tsq)
	admits(w, c.tsq)

	# Lifecycle and the contract window.
	p.state == "active"
	input.now < p.contract_end
	i.state == "active"
	w.state == "active"

	# The token's subject belongs where it says.
	w.partner == c.partner
	w.integration == c.integration
	i.partner == c.partner

	# Grants: the token's scopes and audience, within the integration's current ceiling.
	input.action in split(c.scope, " ")
	input.action in i.scopes
	input.resource == c.aud
	c.aud in i.audiences

	conditions_hold(c.partner)
}

admits(x, tsq) if {
	not x.blocked
	tsq >= x.watermark
}

conditions_hold(partner) if not data.conditions[partner]

conditions_hold(partner) if {
	cond := data.conditions[partner]
	some cidr in cond.cidrs
	net.cidr_contains(cidr, input.source_ip)
	input.environment in cond.environments
	hour := time.clock([input.now * 1000000000, "UTC"])[0]
	hour >= cond.hours.from
	hour < cond.hours.to
}
