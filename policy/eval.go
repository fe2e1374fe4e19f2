package policy

import (
	"math"
	"net/netip"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// Input is one request, as the policies see it. It is cheap to build: ids and values the caller
// has already. Evaluate fills in a few derived values (the Cedar entities and context) the first
// time a set needs them and keeps them in the Input, so that a live and a shadow set evaluated on
// the same Input build them once. An Input is therefore not safe for concurrent use, and its
// fields must not change between evaluations.
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

	built    builtMask
	ctxKeys  keyMask
	context  types.Record
	workload types.Entity
	integ    types.Entity
	resource types.Entity
}

type builtMask uint8

const (
	builtWorkload builtMask = 1 << iota
	builtIntegration
	builtResource
	builtResourceAttrs
)

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
	if s.resourceAttrs && in.built&builtResourceAttrs == 0 {
		in.buildResource(true)
	}
	req := cedar.Request{
		Principal: types.EntityUID{Type: typeWorkload, ID: types.String(in.Workload)},
		Action:    types.EntityUID{Type: typeAction, ID: types.String(in.Action)},
		Resource:  types.EntityUID{Type: typeAPI, ID: types.String(in.Resource)},
		Context:   in.context,
	}
	decision, diag := cedar.Authorize(&s.list, (*entities)(in), req)
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
	utc := now.UTC()
	m := make(types.RecordMap, 6)
	if keys&keySourceIP != 0 && in.SourceIP.IsValid() {
		a := in.SourceIP.Unmap()
		m["source_ip"] = types.IPAddr(netip.PrefixFrom(a, a.BitLen()))
	}
	if keys&keyEnvironment != 0 && in.Environment != "" {
		m["environment"] = types.String(in.Environment)
	}
	if keys&keyTime != 0 {
		m["time"] = types.NewDatetime(now)
	}
	if keys&keyHour != 0 {
		m["hour"] = types.Long(utc.Hour())
	}
	if keys&keyWeekday != 0 {
		m["weekday"] = types.Long(utc.Weekday())
	}
	if keys&keyUnix != 0 {
		m["unix"] = types.Long(now.Unix())
	}
	in.context = types.NewRecord(m)
	in.ctxKeys = keys
}

func (in *Input) buildResource(attrs bool) {
	in.resource = types.Entity{UID: types.EntityUID{Type: typeAPI, ID: types.String(in.Resource)}}
	in.built |= builtResource
	if attrs {
		if len(in.Properties) > 0 {
			m := make(types.RecordMap, len(in.Properties))
			for k, v := range in.Properties {
				if cv, ok := toValue(v, 0); ok {
					m[types.String(k)] = cv
				}
			}
			in.resource.Attributes = types.NewRecord(m)
		}
		in.built |= builtResourceAttrs
	}
}

// entities answers Cedar's entity lookups from an Input, building each entity on first use.
type entities Input

func (e *entities) Get(uid types.EntityUID) (types.Entity, bool) {
	in := (*Input)(e)
	switch uid.Type {
	case typeWorkload:
		if string(uid.ID) != in.Workload {
			return types.Entity{}, false
		}
		if in.built&builtWorkload == 0 {
			in.workload = types.Entity{UID: uid, Parents: types.NewEntityUIDSet(
				types.EntityUID{Type: typeIntegration, ID: types.String(in.Integration)},
				types.EntityUID{Type: typePartner, ID: types.String(in.Partner)},
			)}
			in.built |= builtWorkload
		}
		return in.workload, true
	case typeIntegration:
		if string(uid.ID) != in.Integration {
			return types.Entity{}, false
		}
		if in.built&builtIntegration == 0 {
			in.integ = types.Entity{UID: uid, Parents: types.NewEntityUIDSet(
				types.EntityUID{Type: typePartner, ID: types.String(in.Partner)},
			)}
			in.built |= builtIntegration
		}
		return in.integ, true
	case typePartner:
		if string(uid.ID) != in.Partner {
			return types.Entity{}, false
		}
		return types.Entity{UID: uid}, true
	case typeAPI:
		if string(uid.ID) != in.Resource {
			return types.Entity{}, false
		}
		if in.built&builtResource == 0 {
			in.buildResource(false)
		}
		return in.resource, true
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
