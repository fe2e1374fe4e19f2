package policy

import (
	"errors"
	"fmt"
	"iter"
	"regexp"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/token"
)

// Bounds on a policy set, so that one partner's text cannot make every decision slow.
const (
	// MaxTextBytes bounds the size of a policy set's text.
	MaxTextBytes = 256 << 10
	// MaxPolicies bounds the number of policies in one set.
	MaxPolicies = 1000
	// maxNameLen bounds an @id annotation, which reasons carry.
	maxNameLen = 128
)

// The entity types of Treaty's model.
const (
	typePartner     = types.EntityType("Partner")
	typeIntegration = types.EntityType("Integration")
	typeWorkload    = types.EntityType("Workload")
	typeAPI         = types.EntityType("Api")
	typeAction      = types.EntityType("Action")
)

// Set is a partner's parsed and validated policy set. It is immutable and safe for concurrent
// use.
type Set struct {
	id      string
	partner string
	text    string
	list    policyList
	byName  map[cedar.PolicyID]int
	permits int
	// ctxKeys is the context attributes the policies read; resourceAttrs says whether they read
	// the resource's attributes. Evaluate builds only what is read.
	ctxKeys       keyMask
	resourceAttrs bool
	// parents holds the partner's entities' parent sets, built once (see Evaluate).
	parents *parents

	noPermit []string
	allow    []string
	// broken marks a set whose text did not compile: it denies everything (see Broken).
	broken []string
}

// entry is one policy with the reasons it can give, computed once.
type entry struct {
	name    cedar.PolicyID
	policy  *cedar.Policy
	own     *cedar.Policy // policy specialized for requests of the set's own partner (see specialize)
	forbid  bool
	matched []string // policy_forbid or policy_permit
	errored []string // policy_error
}

// policyList yields the policies in text order, so that a set's reasons are deterministic. Its
// iterator is built once, so handing it to cedar.Authorize allocates nothing.
type policyList struct {
	entries []entry
	seq     iter.Seq2[cedar.PolicyID, *cedar.Policy]
	ownSeq  iter.Seq2[cedar.PolicyID, *cedar.Policy]
}

func (l *policyList) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] { return l.seq }

// ownPolicies yields the policies specialized for requests of the set's own partner.
type ownPolicies policyList

func (l *ownPolicies) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] { return l.ownSeq }

func (l *policyList) build() {
	entries := l.entries
	l.seq = func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for i := range entries {
			if !yield(entries[i].name, entries[i].policy) {
				return
			}
		}
	}
	l.ownSeq = func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for i := range entries {
			if !yield(entries[i].name, entries[i].own) {
				return
			}
		}
	}
}

// ID returns the name the set's reasons carry: the partner id, or the id given to WithID.
func (s *Set) ID() string { return s.id }

// Partner returns the partner the set belongs to.
func (s *Set) Partner() string { return s.partner }

// Text returns the text the set was parsed from.
func (s *Set) Text() string { return s.text }

// Len returns the number of policies in the set.
func (s *Set) Len() int { return len(s.list.entries) }

// WithID returns a copy of the set whose reasons name id, for example the registry's policy
// version id `acme@3`.
func (s *Set) WithID(id string) *Set {
	c := *s
	c.id = id
	c.list.entries = append([]entry(nil), s.list.entries...)
	c.computeReasons()
	c.list.build()
	return &c
}

func (s *Set) computeReasons() {
	for i := range s.list.entries {
		e := &s.list.entries[i]
		kind := "policy_permit:"
		if e.forbid {
			kind = "policy_forbid:"
		}
		e.matched = []string{kind + s.id + ":" + string(e.name)}
		e.errored = []string{"policy_error:" + s.id + ":" + string(e.name)}
	}
	s.noPermit = []string{"policy_no_permit:" + s.id}
	s.allow = []string{"policy_allow:" + s.id}
	if s.broken != nil {
		s.broken = []string{"policy_invalid:" + s.id}
	}
}

// Broken returns a set that denies every request with reason `policy_invalid:<id>`, for a
// partner whose delivered text does not compile (validation on write makes this rare: a newer
// Treaty with stricter rules reading an older feed). Policies only narrow access, so a set that
// cannot be understood fails closed.
func Broken(partnerID, text string) *Set {
	s := &Set{id: partnerID, partner: partnerID, text: text, broken: []string{}}
	s.computeReasons()
	s.list.build()
	return s
}

// Parse parses and validates the policy set text of a partner. Its reasons name the partner
// until WithID names the version. A parse or validation error is a fail.Invalid error on field
// "text" whose message names the line and column of the problem.
func Parse(partnerID, text string) (*Set, error) {
	if len(text) > MaxTextBytes {
		return nil, fail.Invalidf("text", "the policy text is %d bytes; at most %d are accepted", len(text), MaxTextBytes)
	}
	list, err := cedar.NewPolicyListFromBytes("", []byte(text))
	if err != nil {
		return nil, fail.Invalidf("text", "%s", parseMessage(err))
	}
	if len(list) > MaxPolicies {
		return nil, fail.Invalidf("text", "the policy text holds %d policies; at most %d are accepted", len(list), MaxPolicies)
	}
	s := &Set{id: partnerID, partner: partnerID, text: text, byName: make(map[cedar.PolicyID]int, len(list)),
		parents: newParents(partnerID)}
	v := validator{partner: partnerID}
	for i, p := range list {
		a := (*ast.Policy)(p.AST())
		name := cedar.PolicyID("policy" + strconv.Itoa(i))
		if id, ok := p.Annotations()["id"]; ok {
			if err := checkName(string(id)); err != nil {
				return nil, v.at(a, "@id %s", err)
			}
			name = cedar.PolicyID(id)
		}
		if prev, dup := s.byName[name]; dup {
			return nil, v.at(a, "policy id %q is used by the policy at line %d too", name, s.list.entries[prev].policy.Position().Line)
		}
		if err := v.policy(a); err != nil {
			return nil, err
		}
		s.byName[name] = i
		s.list.entries = append(s.list.entries, entry{name: name, policy: p, own: specialize(p, partnerID), forbid: p.Effect() == cedar.Forbid})
		if p.Effect() == cedar.Permit {
			s.permits++
		}
	}
	s.ctxKeys, s.resourceAttrs = v.ctxKeys, v.resourceAttrs
	s.computeReasons()
	s.list.build()
	return s, nil
}

func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("must be 1 to %d characters", maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x21 || c > 0x7e || c == ':' {
			return errors.New("may hold only printable ASCII characters other than space and ':'")
		}
	}
	return nil
}

// parseErrorRE picks the position out of cedar-go's parse errors, for example
// `parser error: parse error at <input>:3:22 ";": invalid primary`.
var parseErrorRE = regexp.MustCompile(`^(?:parser error: )?(?:parse error at )?<input>:(\d+):(\d+):? ?(.*)$`)

// parseMessage turns a cedar-go parse error into a message a person can act on.
func parseMessage(err error) string {
	msg := err.Error()
	m := parseErrorRE.FindStringSubmatch(msg)
	if m == nil {
		return "the policy text does not parse: " + strings.TrimPrefix(msg, "parser error: ")
	}
	detail := m[3]
	// `";": invalid primary` reads better as `invalid primary at ";"`.
	if strings.HasPrefix(detail, `"`) {
		if end := strings.Index(detail[1:], `": `); end >= 0 {
			detail = detail[end+4:] + " at " + detail[:end+2]
		}
	}
	return fmt.Sprintf("line %s, column %s: %s", m[1], m[2], detail)
}

// keyMask is a set of context attributes.
type keyMask uint8

const (
	keySourceIP keyMask = 1 << iota
	keyEnvironment
	keyTime
	keyHour
	keyWeekday
	keyUnix
	keyAll = keySourceIP | keyEnvironment | keyTime | keyHour | keyWeekday | keyUnix
)

var contextKeys = map[types.String]keyMask{
	"source_ip": keySourceIP, "environment": keyEnvironment, "time": keyTime,
	"hour": keyHour, "weekday": keyWeekday, "unix": keyUnix,
}

const contextKeyList = "source_ip, environment, time, hour, weekday, unix"

// validator checks policies against Treaty's entity model and notes what they read.
type validator struct {
	partner       string
	ctxKeys       keyMask
	resourceAttrs bool
}

// at reports a validation error at a policy's position.
func (v *validator) at(p *ast.Policy, format string, args ...any) error {
	return fail.Invalidf("text", "line %d, column %d: %s", p.Position.Line, p.Position.Column, fmt.Sprintf(format, args...))
}

func (v *validator) policy(p *ast.Policy) error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	principals := []types.EntityType{typeWorkload, typeIntegration, typePartner}
	scope := func(what string, n ast.IsScopeNode, allowed []types.EntityType) {
		var uids []types.EntityUID
		var typ types.EntityType
		switch s := n.(type) {
		case ast.ScopeTypeEq:
			uids = []types.EntityUID{s.Entity}
		case ast.ScopeTypeIn:
			uids = []types.EntityUID{s.Entity}
		case ast.ScopeTypeInSet:
			uids = s.Entities
		case ast.ScopeTypeIs:
			typ = s.Type
		case ast.ScopeTypeIsIn:
			typ, uids = s.Type, []types.EntityUID{s.Entity}
		}
		if typ != "" && !hasType(allowed, typ) {
			bad("the %s cannot be of type %s (use %s)", what, typ, typeList(allowed))
		}
		for _, u := range uids {
			if !hasType(allowed, u.Type) {
				bad("the %s cannot be %s (use %s)", what, u, typeList(allowed))
				continue
			}
			if msg := v.entity(u); msg != "" {
				bad("%s", msg)
			}
		}
	}
	scope("principal", p.Principal, principals)
	scope("action", p.Action, []types.EntityType{typeAction})
	scope("resource", p.Resource, []types.EntityType{typeAPI})

	for _, c := range p.Conditions {
		ctxVars, ctxReads := 0, 0
		ast.Inspect(ast.NewNode(c.Body), func(n ast.IsNode) bool {
			switch n := n.(type) {
			case ast.NodeValue:
				if u, ok := n.Value.(types.EntityUID); ok {
					if !hasType(allTypes, u.Type) {
						bad("unknown entity type %s in %s (use %s)", u.Type, u, typeList(allTypes))
					} else if msg := v.entity(u); msg != "" {
						bad("%s", msg)
					}
				}
			case ast.NodeTypeIs:
				if !hasType(allTypes, n.EntityType) {
					bad("unknown entity type %s (use %s)", n.EntityType, typeList(allTypes))
				}
			case ast.NodeTypeIsIn:
				if !hasType(allTypes, n.EntityType) {
					bad("unknown entity type %s (use %s)", n.EntityType, typeList(allTypes))
				}
			case ast.NodeTypeAccess:
				ctxReads += v.read(n.Arg, n.Value, "."+string(n.Value), bad)
			case ast.NodeTypeHas:
				ctxReads += v.read(n.Arg, n.Value, " has "+string(n.Value), bad)
			case ast.NodeTypeVariable:
				if n.Name == "context" {
					ctxVars++
				}
			}
			return true
		})
		if ctxVars > ctxReads {
			v.ctxKeys = keyAll // the context is used whole
		}
	}
	if len(errs) > 0 {
		return v.at(p, "%s", strings.Join(errs, "; "))
	}
	return nil
}

// read notes an attribute read (x.name or x has name) and checks it; it returns 1 if it read the
// context directly.
func (v *validator) read(arg ast.IsNode, name types.String, how string, bad func(string, ...any)) int {
	variable, ok := arg.(ast.NodeTypeVariable)
	if !ok {
		v.resourceAttrs = true // an attribute of some computed value: it may be the resource
		return 0
	}
	switch variable.Name {
	case "context":
		k, ok := contextKeys[name]
		if !ok {
			bad("context%s: the context has no attribute %q (it has %s)", how, name, contextKeyList)
		}
		v.ctxKeys |= k
		return 1
	case "resource":
		v.resourceAttrs = true
	default:
		bad("%s%s: the %s has no attributes (conditions may read resource and context attributes)", variable.Name, how, variable.Name)
	}
	return 0
}

// entity checks an entity named in a policy.
func (v *validator) entity(u types.EntityUID) string {
	switch u.Type {
	case typePartner:
		if string(u.ID) != v.partner {
			return fmt.Sprintf("%s is another partner: this policy set belongs to partner %q", u, v.partner)
		}
	case typeAction:
		if !token.ValidScope(string(u.ID)) {
			return fmt.Sprintf("%s is not a valid scope", u)
		}
	}
	return ""
}

var allTypes = []types.EntityType{typeWorkload, typeIntegration, typePartner, typeAPI, typeAction}

func hasType(list []types.EntityType, t types.EntityType) bool {
	for _, x := range list {
		if x == t {
			return true
		}
	}
	return false
}

func typeList(list []types.EntityType) string {
	s := make([]string, len(list))
	for i, t := range list {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}
