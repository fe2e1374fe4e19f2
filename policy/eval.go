package policy

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// Input is one request, as the policies see it. It is cheap to build: ids and values the caller
// has already. Evaluate fills in a few derived values (the Cedar context and the resource's
// attributes) the first time a set needs them and keeps them in the Input, so that a live and a
// shadow set evaluated on the same Input build them once. An Input is therefore not safe for
// concurrent use, and its fields must not change between evaluations.
type Input struct {
	// Partner, Integration and Workload name the principal and its parents.
	Partner, Integration, Workload string
	// Action is the scope the request needs.
	Action string
	// Resource is the audience (the API) the request is for.
	Resource string
	// Properties are the resource's attributes (resource.NAME).
	Properties map[string]any
	// SourceIP is the request's source address; the zero Addr when unknown.
	SourceIP netip.Addr
	// Environment is the environment the request is served in, for example "production".
	Environment string
	// Now is the PDP's clock; the zero time means time.Now().
	Now time.Time

	resAttrsBuilt bool
	ctxKeys       keyMask
	context       types.Record
	resAttrs      types.Record
}

// Result is a set's decision. Reasons is shared and read-only.
type Result struct {
	Allow   bool
	Reasons []string
}

// Evaluate decides in on the set (see the package doc for the semantics). A nil set allows.
func (s *Set) Evaluate(in *Input) Result {
	if s == nil {
		return Result{Allow: true}
	}
	if s.broken != nil {
		return Result{Reasons: s.broken}
	}
	if s.ctxKeys&^in.ctxKeys != 0 {
		in.buildContext(s.ctxKeys | in.ctxKeys)
	}
	if s.resourceAttrs && !in.resAttrsBuilt {
		in.buildResourceAttrs()
	}
	req := cedar.Request{
		Principal: types.EntityUID{Type: typeWorkload, ID: types.String(in.Workload)},
		Action:    types.EntityUID{Type: typeAction, ID: types.String(in.Action)},
		Resource:  types.EntityUID{Type: typeAPI, ID: types.String(in.Resource)},
		Context:   in.context,
	}
	// The entities come from a pooled getter rather than from in itself: handing in to cedar-go
	// behind an interface would move every Input to the heap.
	g := getters.Get().(*entities)
	*g = entities{set: s, partner: in.Partner, integration: in.Integration, workload: in.Workload,
		resource: in.Resource, resAttrs: in.resAttrs}
	var policies cedar.PolicyIterator = &s.list
	if in.Partner == s.partner {
		policies = (*ownPolicies)(&s.list)
	}
	decision, diag := cedar.Authorize(policies, g, req)
	*g = entities{}
	getters.Put(g)
	// Reasons hold forbids when a forbid matched, else the matching permits; both in text order.
	switch {
	case decision == cedar.Deny && len(diag.Reasons) > 0:
		return Result{Reasons: s.list.entries[s.byName[diag.Reasons[0].PolicyID]].matched}
	case len(diag.Errors) > 0:
		return Result{Reasons: s.list.entries[s.byName[diag.Errors[0].PolicyID]].errored}
	case decision == cedar.Allow:
		return Result{Allow: true, Reasons: s.list.entries[s.byName[diag.Reasons[0].PolicyID]].matched}
	case s.permits > 0:
		return Result{Reasons: s.noPermit}
	}
	return Result{Allow: true, Reasons: s.allow}
}

func (in *Input) buildContext(keys keyMask) {
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	k := ctxKey{keys: keys}
	if keys&keySourceIP != 0 {
		k.ip = in.SourceIP
	}
	if keys&keyEnvironment != 0 {
		k.env = in.Environment
	}
	// The key holds the instant only as finely as the attributes read need it, so that one
	// record serves a whole hour when only the hour and weekday are read.
	switch {
	case keys&keyTime != 0:
		k.instant = now.UnixMilli() // a Cedar datetime counts milliseconds
	case keys&keyUnix != 0:
		k.instant = now.Unix()
	case keys&(keyHour|keyWeekday) != 0:
		k.instant = floorDiv(now.Unix(), 3600)
	}
	in.context = contextRecord(k)
	in.ctxKeys = keys
}

func (in *Input) buildResourceAttrs() {
	if len(in.Properties) > 0 {
		m := make(types.RecordMap, len(in.Properties))
		for k, v := range in.Properties {
			if cv, ok := toValue(v, 0); ok {
				m[types.String(k)] = cv
			}
		}
		in.resAttrs = types.NewRecord(m)
	}
	in.resAttrsBuilt = true
}

// entities answers Cedar's entity lookups for one evaluation. The parents come from the set,
// computed once per partner and integration, so a lookup allocates nothing.
type entities struct {
	set                                      *Set
	partner, integration, workload, resource string
	resAttrs                                 types.Record
}

var getters = sync.Pool{New: func() any { return new(entities) }}

func (e *entities) Get(uid types.EntityUID) (types.Entity, bool) {
	switch uid.Type {
	case typeWorkload:
		if string(uid.ID) != e.workload {
			return types.Entity{}, false
		}
		return types.Entity{UID: uid, Parents: e.set.workloadParents(e.partner, e.integration)}, true
	case typeIntegration:
		if string(uid.ID) != e.integration {
			return types.Entity{}, false
		}
		return types.Entity{UID: uid, Parents: e.set.integrationParents(e.partner)}, true
	case typePartner:
		if string(uid.ID) != e.partner {
			return types.Entity{}, false
		}
		return types.Entity{UID: uid}, true
	case typeAPI:
		if string(uid.ID) != e.resource {
			return types.Entity{}, false
		}
		return types.Entity{UID: uid, Attributes: e.resAttrs}, true
	}
	return types.Entity{}, false
}

// maxDepth bounds the nesting of property values.
const maxDepth = 16

// toValue converts a property value to a Cedar value; ok is false for a value Cedar cannot hold.
func toValue(v any, depth int) (types.Value, bool) {
	if depth > maxDepth {
		return nil, false
	}
	switch v := v.(type) {
	case string:
		return types.String(v), true
	case bool:
		return types.Boolean(v), true
	case int:
		return types.Long(v), true
	case int32:
		return types.Long(v), true
	case int64:
		return types.Long(v), true
	case float64:
		if v == math.Trunc(v) && v >= -(1<<63) && v < 1<<63 {
			return types.Long(int64(v)), true
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, false
		}
		d, err := types.NewDecimalFromFloat(v)
		return d, err == nil
	case []any:
		vals := make([]types.Value, 0, len(v))
		for _, x := range v {
			cv, ok := toValue(x, depth+1)
			if !ok {
				return nil, false
			}
			vals = append(vals, cv)
		}
		return types.NewSet(vals...), true
	case []string:
		vals := make([]types.Value, len(v))
		for i, x := range v {
			vals[i] = types.String(x)
		}
		return types.NewSet(vals...), true
	case map[string]any:
		m := make(types.RecordMap, len(v))
		for k, x := range v {
			cv, ok := toValue(x, depth+1)
			if !ok {
				return nil, false
			}
			m[types.String(k)] = cv
		}
		return types.NewRecord(m), true
	case netip.Addr:
		if !v.IsValid() {
			return nil, false
		}
		v = v.Unmap()
		return types.IPAddr(netip.PrefixFrom(v, v.BitLen())), true
	case netip.Prefix:
		if !v.IsValid() {
			return nil, false
		}
		return types.IPAddr(v.Masked()), true
	case time.Time:
		return types.NewDatetime(v), true
	}
	return nil, false
}
