package authzen

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"unicode"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/token"
)

// The entity types this API knows.
const (
	typeWorkload = "workload"
	typeAPI      = "api"
)

// Bounds on request members.
const (
	maxResource    = 1024 // an audience
	maxEnvironment = 256
	maxProof       = 8 << 10
)

// checkRequest turns one evaluation (after defaults were applied) into a check. It validates as
// it goes; field names the evaluation in messages ("evaluations[2]."), empty for a single one.
func checkRequest(ev *evaluationRequest, field string, trusted bool, requestID string) (pdp.CheckRequest, error) {
	req := pdp.CheckRequest{RequestID: requestID}
	if err := subject(ev.Subject, field+"subject", trusted, &req); err != nil {
		return req, err
	}
	if ev.Action == nil {
		return req, invalid("%saction is required", field)
	}
	if !token.ValidScope(ev.Action.Name) {
		return req, invalid("%saction.name must be a scope name: 1-%d printable ASCII characters without spaces, quotes or backslashes", field, token.MaxScopeLen)
	}
	req.Action = ev.Action.Name
	if err := resource(ev.Resource, field+"resource", true); err != nil {
		return req, err
	}
	req.Resource = ev.Resource.ID
	props, err := properties(ev.Resource.Properties)
	if err != nil {
		return req, invalid("%sresource.properties: %v", field, err)
	}
	req.Properties = props
	req.Context, req.MinSequence, err = requestContextOf(ev.Context, field+"context")
	return req, err
}

// subject fills req's subject from a workload subject: its token if it carries one, else the
// workload id for a trusted caller (the PDP denies an untrusted one).
func subject(s *entity, field string, trusted bool, req *pdp.CheckRequest) error {
	if err := typed(s, field, typeWorkload); err != nil {
		return err
	}
	if !fail.ValidID(s.ID) {
		return invalid("%s.id must be a workload id: 1-63 lower-case letters, digits and dashes, starting with a letter or digit", field)
	}
	raw, hasToken := s.Properties["token"]
	if !hasToken {
		req.WorkloadID, req.Trusted = s.ID, trusted
		return nil
	}
	tok, ok := raw.(string)
	switch {
	case !ok || tok == "":
		return invalid("%s.properties.token must be a non-empty string: the access token to check", field)
	case len(tok) > pdp.MaxTokenBytes:
		// Never echo a token: it is a credential.
		return invalid("%s.properties.token is longer than %d bytes; Treaty access tokens are far smaller", field, pdp.MaxTokenBytes)
	}
	// The workload named rides along: the PDP denies (subject_mismatch) a token that is not its.
	req.Token, req.WorkloadID = tok, s.ID
	return proof(s.Properties["proof"], field+".properties.proof", &req.Proof)
}

// proof reads the evidence of possession a sender-constrained token needs: a DPoP proof with the
// method and URI of the request it was made for, and the client certificate's thumbprint.
func proof(raw any, field string, p *pdp.Proof) error {
	if raw == nil {
		return nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return invalid("%s must be an object", field)
	}
	for key, dst := range map[string]*string{"dpop": &p.DPoP, "htm": &p.Method, "htu": &p.URI, "x5t#S256": &p.CertThumbprint} {
		v, present := m[key]
		if !present {
			continue
		}
		s, ok := v.(string)
		if !ok || len(s) > maxProof {
			return invalid("%s.%s must be a string of at most %d bytes", field, key, maxProof)
		}
		*dst = s
	}
	return nil
}

// resource checks a resource of type api; its id is required unless this is a resource search.
func resource(r *entity, field string, needID bool) error {
	if err := typed(r, field, typeAPI); err != nil {
		return err
	}
	if r.ID == "" && !needID {
		return nil
	}
	return printable(field+".id", r.ID, maxResource)
}

// typed checks that an entity is present and of the one type this API knows for its role.
func typed(e *entity, field, want string) error {
	switch {
	case e == nil:
		return invalid("%s is required", field)
	case e.Type == "":
		return invalid("%s.type is required: Treaty knows %q", field, want)
	case e.Type != want:
		return invalid("%s.type %q is not known: Treaty knows %q", field, e.Type, want)
	}
	return nil
}

// requestContextOf reads the context members Treaty uses.
func requestContextOf(c *requestContext, field string) (pdp.RequestContext, uint64, error) {
	var rc pdp.RequestContext
	if c == nil {
		return rc, 0, nil
	}
	if c.SourceIP != nil {
		ip, err := netip.ParseAddr(*c.SourceIP)
		if err != nil {
			return rc, 0, invalid("%s.source_ip must be an IPv4 or IPv6 address, such as 192.0.2.7", field)
		}
		rc.SourceIP = ip.Unmap()
	}
	if c.Environment != nil {
		if err := printable(field+".environment", *c.Environment, maxEnvironment); err != nil {
			return rc, 0, err
		}
		rc.Environment = *c.Environment
	}
	var minSeq uint64
	if c.MinSequence != nil {
		n, err := strconv.ParseUint(c.MinSequence.String(), 10, 64)
		if err != nil {
			return rc, 0, invalid("%s.min_sequence must be a non-negative integer: a feed sequence returned by a write", field)
		}
		minSeq = n
	}
	return rc, minSeq, nil
}

// properties turns decoded JSON values into the types pdp.CheckRequest.Properties documents:
// numbers become int64 when integral, float64 otherwise.
func properties(m map[string]any) (map[string]any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		c, err := propertyValue(v)
		if err != nil {
			return nil, err
		}
		out[k] = c
	}
	return out, nil
}

func propertyValue(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, invalid("number %s is out of range", v)
		}
		return f, nil
	case map[string]any:
		return properties(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			c, err := propertyValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	}
	return v, nil // string, bool or nil
}

// printable checks a required, bounded string of printable characters.
func printable(field, s string, max int) error {
	if s == "" {
		return invalid("%s is required", field)
	}
	if len(s) > max || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return invalid("%s must be 1-%d bytes of printable characters", field, max)
	}
	return nil
}

func invalid(format string, args ...any) error { return errorf(http.StatusBadRequest, format, args...) }

// decisionOf answers one decision.
func decisionOf(d pdp.Decision) decision {
	return decision{Decision: d.Allow, Context: &decisionContext{
		Reasons: d.Reasons, DecisionID: d.DecisionID.String(), Sequence: d.Sequence, PolicyID: d.PolicyID,
	}}
}
