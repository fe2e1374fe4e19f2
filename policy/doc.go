// Package policy is Treaty's layer over Cedar (github.com/cedar-policy/cedar-go): it parses and
// validates a partner's policy set once, and evaluates it on every decision with the partner's
// facts. No other Treaty package imports cedar-go.
//
// # Entity model
//
// A decision is asked about one request of one workload:
//
//   - principal: Workload::"<workload id>", whose parents are Integration::"<integration id>" and
//     Partner::"<partner id>"; the integration's parent is the partner. So
//     `principal in Partner::"acme"` and `principal in Integration::"billing"` both work. These
//     entities have no attributes.
//   - action: Action::"<scope>", the scope the request needs (for example `Action::"orders:read"`).
//   - resource: Api::"<audience>", with the request's resource properties as attributes
//     (`resource.tier`, `resource.owner`). Property values map to Cedar values: strings, booleans,
//     integral numbers (Long), other numbers (decimal), lists (Set), objects (Record), IP addresses
//     (ipaddr) and times (datetime). A property of another type is left out, so a condition that
//     reads it errors (and so denies, see below).
//   - context:
//   - source_ip (ipaddr): the address the request came from; absent when the enforcement
//     point did not say.
//   - environment (String): the environment the request is served in; absent when empty.
//   - time (datetime): the PDP's own clock, never the caller's.
//   - hour (Long, 0-23, UTC), weekday (Long, 0 = Sunday .. 6 = Saturday, UTC) and unix
//     (Long, seconds since 1970): the same instant, so that time windows are easy to write:
//     `forbid(principal, action, resource) unless { context.hour >= 8 && context.hour < 18 };`
//
// Validation accepts only these entity types (Partner, Integration, Workload, Api, Action), only
// action ids that are valid scopes, only the context attributes above, and refuses a policy that
// names another partner (a `Partner::"other"` literal in a set that belongs to another partner).
// Entities other than the resource have no attributes, so reading one is refused too.
//
// # Semantics
//
// Policies can only narrow what the grants allow: the PDP checks the integration's scope ceiling
// and audiences natively before any policy runs, and a policy never grants more. A set decides:
//
//	allow  iff  no forbid matches
//	       and  (the set has no permit, or some permit matches)
//	       and  no policy's evaluation errored
//
// Cedar skips a policy whose evaluation errors (a type error, a missing attribute). Treaty does
// not: any error denies, so an erroring forbid still blocks. A set with no permits is a list of
// restrictions; a set with permits is an allow list.
//
// Every Result carries reasons computed when the set was parsed, so a decision allocates no
// reason strings. They name the set's id (the registry's `PARTNER@VERSION`, see WithID) and the
// policy (its `@id("...")` annotation, or `policyN` for the N-th policy of the text, from 0):
//
//	policy_forbid:acme@3:no-writes-at-night  a forbid matched
//	policy_error:acme@3:policy2              a policy's evaluation errored
//	policy_no_permit:acme@3                  the set has permits and none matched
//	policy_permit:acme@3:partners-read       allowed: this permit matched
//	policy_allow:acme@3                      allowed: the set has no permit and nothing forbade
//	policy_invalid:acme@3                    the delivered text did not compile: everything is denied (Broken)
package policy
