package pdp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/token"
)

// The decision tables in testdata/decisions are the PDP's behaviour written down as data: each
// file builds a world through a real revoker log followed by a real PDP, then asks it questions
// and states the expected decision and reasons. They are meant to be read (and extended) by
// people who do not read Go; the format is documented in testdata/decisions/README.md.

// decisionFile is one file of cases.
type decisionFile struct {
	Description string    `json:"description"`
	Now         time.Time `json:"now"`
	// StalenessBound is the PDP's staleness bound, for files that stall the feed.
	StalenessBound string `json:"staleness_bound"`
	// Environment is the PDP's configured environment (pdp.Config.Environment); default none.
	Environment string         `json:"environment"`
	Setup       []step         `json:"setup"`
	Cases       []decisionCase `json:"cases"`
}

// step changes the world through the revoker; exactly one field is set.
type step struct {
	Partner     *partnerStep     `json:"partner,omitempty"`
	Integration *integrationStep `json:"integration,omitempty"`
	Workload    *workloadStep    `json:"workload,omitempty"`
	Key         string           `json:"key,omitempty"`
	RevokeKey   string           `json:"revoke_key,omitempty"`
	Block       *targetStep      `json:"block,omitempty"`
	Restore     *targetStep      `json:"restore,omitempty"`
	RevokeToken string           `json:"revoke_credential,omitempty"`
	Policy      *policyStep      `json:"policy,omitempty"`
	// RevokeAll is the break-glass revocation: "head" for every credential issued so far, or
	// "@name" for every credential issued before a marked sequence.
	RevokeAll string `json:"revoke_all,omitempty"`
	// Mark names the feed's head at this point, for a token's "tsq": "@name".
	Mark string `json:"mark,omitempty"`
	// Stall cuts the PDP off its feed without closing the stream, and waits until it turns
	// stale (after the file's staleness_bound).
	Stall bool `json:"stall,omitempty"`
	// Hold reconnects the PDP to a feed that withholds every event while a new one is published,
	// so that it knows the head and cannot reach it: it reports syncing. Release lets the events
	// through again and waits until the PDP is ready.
	Hold    bool `json:"hold,omitempty"`
	Release bool `json:"release,omitempty"`
}

type partnerStep struct {
	ID          string    `json:"id"`
	State       string    `json:"state"`
	ContractEnd time.Time `json:"contract_end"`
}

type integrationStep struct {
	ID        string   `json:"id"`
	Partner   string   `json:"partner"`
	State     string   `json:"state"`
	Scopes    []string `json:"scopes"`
	Audiences []string `json:"audiences"`
	// Environment and SourceRanges (CIDR) are the integration's, as the registry publishes them.
	Environment  string   `json:"environment"`
	SourceRanges []string `json:"source_ranges"`
}

type workloadStep struct {
	ID          string `json:"id"`
	Integration string `json:"integration"`
	Partner     string `json:"partner"`
	State       string `json:"state"`
}

type targetStep struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

type policyStep struct {
	Partner string `json:"partner"`
	Mode    string `json:"mode"`
	Version uint64 `json:"version"`
	Text    string `json:"text"`
}

// decisionCase is one question and its expected answer.
type decisionCase struct {
	Name string `json:"name"`
	// Setup runs before the case, after every earlier case's: cases in a file share one world.
	Setup []step `json:"setup"`

	Token    *tokenSpec `json:"token,omitempty"`
	Claims   *tokenSpec `json:"claims,omitempty"`
	Workload string     `json:"workload,omitempty"`
	Trusted  bool       `json:"trusted,omitempty"`

	Action     string         `json:"action"`
	Resource   string         `json:"resource"`
	Context    contextSpec    `json:"context"`
	Properties map[string]any `json:"properties,omitempty"`
	Proof      *proofSpec     `json:"proof,omitempty"`

	Expect expectation `json:"expect"`
}

// tokenSpec describes a token (or verified claims) by its differences from a valid one for
// acme-bot: claims given here replace the default ones ("+10m"/"-1m" for times relative to the
// file's now, "@mark" for a marked sequence), claims listed in omit are removed.
type tokenSpec struct {
	Raw string `json:"raw,omitempty"` // a literal token, used as is
	Key string `json:"key,omitempty"` // the signing key; default k1
	// Forged signs with a fresh key that claims Key's kid, as an attacker would.
	Forged bool           `json:"forged,omitempty"`
	Typ    *string        `json:"typ,omitempty"` // the typ header; default at+jwt
	Claims map[string]any `json:"claims,omitempty"`
	Omit   []string       `json:"omit,omitempty"`
}

// proofSpec is a proof of possession: a DPoP proof made by a named holder key for the request's
// method and URI, or a client certificate thumbprint.
type proofSpec struct {
	DPoP           *dpopSpec `json:"dpop,omitempty"`
	Method         string    `json:"method"`
	URI            string    `json:"uri"`
	CertThumbprint string    `json:"cert_thumbprint"`
}

// dpopSpec describes a DPoP proof: by default one that is right for the request, made now.
type dpopSpec struct {
	Key string `json:"key"`           // the holder key, created on first use
	HTM string `json:"htm,omitempty"` // default the request's method
	HTU string `json:"htu,omitempty"` // default the request's URI
	IAT string `json:"iat,omitempty"` // relative to now, default "+0s"
	// ATH is "token" (the hash of the request's token, the default), "other" (of another
	// string) or "none".
	ATH string `json:"ath,omitempty"`
	Typ string `json:"typ,omitempty"` // default dpop+jwt
}

type contextSpec struct {
	SourceIP    string `json:"source_ip"`
	Environment string `json:"environment"`
}

type expectation struct {
	Decision string   `json:"decision"`
	Reasons  []string `json:"reasons"`
}

func TestDecisionTables(t *testing.T) {
	files, err := filepath.Glob("testdata/decisions/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no decision tables in testdata/decisions")
	}
	total := 0
	for _, path := range files {
		f := readDecisionFile(t, path)
		total += len(f.Cases)
		t.Run(strings.TrimSuffix(filepath.Base(path), ".json"), func(t *testing.T) {
			t.Parallel()
			runDecisionFile(t, f)
		})
	}
	// The tables are the PDP's documented behaviour: a table shrinking by accident fails here.
	if total < 60 {
		t.Errorf("the decision tables hold %d cases, want at least 60", total)
	}
}

// Every reason a decision can carry is shown by at least one case, and so is every kind of
// policy reason: a new reason without a case fails here.
func TestDecisionTablesCoverReasons(t *testing.T) {
	files, err := filepath.Glob("testdata/decisions/*.json")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, path := range files {
		for _, c := range readDecisionFile(t, path).Cases {
			for _, r := range c.Expect.Reasons {
				seen[r] = true
				if kind, _, ok := strings.Cut(r, ":"); ok {
					seen[kind] = true
				}
			}
		}
	}
	for _, r := range append(pdp.Reasons(), "policy_forbid", "policy_error", "policy_no_permit") {
		if !seen[r] {
			t.Errorf("no decision table case expects reason %q", r)
		}
	}
}

func readDecisionFile(t *testing.T, path string) *decisionFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var f decisionFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if f.Now.IsZero() {
		f.Now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC) // a Monday, noon UTC
	}
	return &f
}

// world is the state a decision file builds: a real revoker log followed by a real PDP, whose
// clock is the file's now.
type world struct {
	*env
	now     time.Time
	keys    map[string]*pdptest.Key
	holders map[string]*pdptest.DPoPKey
	marks   map[string]uint64
	holding bool // the feed withholds events: decisions cannot wait for the head
}

func runDecisionFile(t *testing.T, f *decisionFile) {
	now := f.Now
	w := &world{now: now, keys: map[string]*pdptest.Key{}, holders: map[string]*pdptest.DPoPKey{}, marks: map[string]uint64{}}
	var bound time.Duration // the PDP's default
	if f.StalenessBound != "" {
		var err error
		if bound, err = time.ParseDuration(f.StalenessBound); err != nil {
			t.Fatalf("staleness_bound: %v", err)
		}
	}
	w.env = newEnv(t, pdp.Config{Now: func() time.Time { return now }, StalenessBound: bound, Environment: f.Environment})
	w.keys["k1"] = w.key
	for _, s := range f.Setup {
		w.apply(t, s)
	}
	for _, c := range f.Cases {
		for _, s := range c.Setup {
			w.apply(t, s)
		}
		t.Run(c.Name, func(t *testing.T) {
			req := w.request(t, &c)
			d, err := w.pdp.Check(context.Background(), req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			got := "deny"
			if d.Allow {
				got = "allow"
			}
			if got != c.Expect.Decision || !slices.Equal(d.Reasons, c.Expect.Reasons) {
				t.Errorf("decision %s %q, want %s %q", got, d.Reasons, c.Expect.Decision, c.Expect.Reasons)
			}
		})
	}
}

// apply makes one step's change through the real revoker.
func (w *world) apply(t *testing.T, s step) {
	t.Helper()
	switch {
	case s.Partner != nil:
		end := s.Partner.ContractEnd
		if end.IsZero() {
			end = pdptest.ContractEnd
		}
		pdptest.Publish(t, w.log, pdptest.Partner(s.Partner.ID, enumValue[treatyv1.PartnerState](t, "PARTNER_STATE_", s.Partner.State), end))
	case s.Integration != nil:
		i := s.Integration
		ev := pdptest.Integration(i.ID, i.Partner, enumValue[treatyv1.IntegrationState](t, "INTEGRATION_STATE_", i.State), i.Scopes, i.Audiences)
		ev.GetIntegrationChanged().Environment, ev.GetIntegrationChanged().SourceRanges = i.Environment, i.SourceRanges
		pdptest.Publish(t, w.log, ev)
	case s.Workload != nil:
		wl := s.Workload
		pdptest.Publish(t, w.log, pdptest.Workload(wl.ID, wl.Integration, wl.Partner, enumValue[treatyv1.WorkloadState](t, "WORKLOAD_STATE_", wl.State)))
	case s.Key != "":
		k := pdptest.NewKey(t, s.Key)
		w.keys[s.Key] = k
		pdptest.Publish(t, w.log, k.Published(t))
	case s.RevokeKey != "":
		pdptest.Revoke(t, w.log, keyK, s.RevokeKey)
	case s.Block != nil:
		pdptest.Revoke(t, w.log, targetKind(t, s.Block.Kind), s.Block.ID)
	case s.Restore != nil:
		pdptest.Restore(t, w.log, targetKind(t, s.Restore.Kind), s.Restore.ID)
	case s.RevokeToken != "":
		pdptest.Revoke(t, w.log, credentialK, s.RevokeToken)
	case s.Policy != nil:
		p := s.Policy
		id := ""
		if p.Text != "" {
			id = fmt.Sprintf("%s@%d", p.Partner, p.Version)
		}
		pdptest.Publish(t, w.log, &treatyv1.Event{Change: &treatyv1.Event_PolicyChanged{PolicyChanged: &treatyv1.PolicyChanged{
			PartnerId: p.Partner, Mode: enumValue[treatyv1.PolicyMode](t, "POLICY_MODE_", p.Mode), Version: p.Version, Text: p.Text, PolicyId: id,
		}}})
	case s.RevokeAll != "":
		r := revoker.RevokeAllRequest{Reason: "decision table", Actor: "test"}
		if s.RevokeAll != "head" {
			below, ok := w.claimValue(t, "tsq", s.RevokeAll).(uint64)
			if !ok {
				t.Fatalf("revoke_all %q: \"head\" or \"@mark\"", s.RevokeAll)
			}
			r.Below = below
		}
		if _, err := w.log.RevokeAll(context.Background(), r); err != nil {
			t.Fatalf("revoke_all %q: %v", s.RevokeAll, err)
		}
	case s.Mark != "":
		w.marks[s.Mark] = w.log.Head()
	case s.Stall:
		w.feed.mute.Store(true)
		waitStatus(t, w.pdp, pdp.StatusStale)
	case s.Hold:
		w.holding = true
		w.feed.setFilter(func(m *treatyv1.SubscribeResponse) *treatyv1.SubscribeResponse {
			if m.GetEvent() != nil {
				return nil
			}
			return m
		})
		pdptest.Publish(t, w.log, pdptest.Partner("held-back", treatyv1.PartnerState_PARTNER_STATE_ACTIVE, pdptest.ContractEnd))
		w.src.Switch(w.log) // ends the stream: the PDP resubscribes and hears of a head it cannot reach
		waitStatus(t, w.pdp, pdp.StatusSyncing)
	case s.Release:
		w.holding = false
		w.feed.setFilter(nil)
		w.src.Switch(w.log)
		pdptest.WaitReady(t, w.pdp)
	default:
		t.Fatalf("empty setup step")
	}
}

// request builds the PDP request a case describes.
func (w *world) request(t *testing.T, c *decisionCase) pdp.CheckRequest {
	t.Helper()
	req := pdp.CheckRequest{
		Action: c.Action, Resource: c.Resource, Trusted: c.Trusted, WorkloadID: c.Workload,
		Properties: c.Properties, MinSequence: w.log.Head(),
		Context: pdp.RequestContext{Environment: c.Context.Environment},
	}
	if w.holding {
		req.MinSequence = w.pdp.Applied()
	}
	if c.Context.SourceIP != "" {
		ip, err := netip.ParseAddr(c.Context.SourceIP)
		if err != nil {
			t.Fatalf("context.source_ip: %v", err)
		}
		req.Context.SourceIP = ip
	}
	switch {
	case c.Token != nil:
		req.Token = w.token(t, c.Token)
	case c.Claims != nil:
		claims, kid := w.claims(t, c.Claims)
		req.Claims = &pdp.VerifiedClaims{Claims: claims, KeyID: kid}
	}
	if p := c.Proof; p != nil {
		req.Proof = pdp.Proof{Method: p.Method, URI: p.URI, CertThumbprint: p.CertThumbprint}
		if p.DPoP != nil {
			req.Proof.DPoP = w.dpop(t, p, req.Token)
		}
	}
	return req
}

// holder returns the named DPoP key, creating it on first use.
func (w *world) holder(t *testing.T, name string) *pdptest.DPoPKey {
	k, ok := w.holders[name]
	if !ok {
		k = pdptest.NewDPoPKey(t)
		w.holders[name] = k
	}
	return k
}

// dpop makes the DPoP proof a spec describes, for a request carrying tok.
func (w *world) dpop(t *testing.T, p *proofSpec, tok string) string {
	t.Helper()
	d := p.DPoP
	proof := pdptest.DPoPProof{Method: cmpOr(d.HTM, p.Method), URI: cmpOr(d.HTU, p.URI), Type: d.Typ, IAT: w.now}
	if d.IAT != "" {
		off, err := time.ParseDuration(d.IAT)
		if err != nil {
			t.Fatalf("proof.dpop.iat: %v", err)
		}
		proof.IAT = w.now.Add(off)
	}
	switch d.ATH {
	case "", "token":
		proof.Token = tok
	case "other":
		proof.Token = "some other token"
	case "none":
	default:
		t.Fatalf("proof.dpop.ath %q: token, other or none", d.ATH)
	}
	return w.holder(t, d.Key).Proof(t, proof)
}

// claimsJSON returns the spec's claims as a JSON object: the defaults for a valid acme-bot token,
// overridden and pruned as the spec says.
func (w *world) claimsJSON(t *testing.T, spec *tokenSpec) map[string]any {
	t.Helper()
	m := map[string]any{
		"iss": pdptest.Issuer, "sub": "acme-bot", "client_id": "acme-bot", "partner": "acme", "integration": "acme-api",
		"scope": "read write", "aud": "api", "iat": w.now.Unix(), "exp": w.now.Add(10 * time.Minute).Unix(),
		"jti": "jti-" + strconv.FormatUint(w.log.Head(), 10) + "-" + t.Name(), "tsq": w.log.Head(), "tep": w.log.Epoch(),
	}
	for k, v := range spec.Claims {
		if k == "cnf" {
			m[k] = w.cnfValue(t, v)
			continue
		}
		if k == "anc" {
			m[k] = w.ancestorsValue(t, v)
			continue
		}
		m[k] = w.claimValue(t, k, v)
	}
	for _, k := range spec.Omit {
		delete(m, k)
	}
	return m
}

// claimValue resolves relative times ("+10m", "-1h") and marks ("@name") in a claim's value.
func (w *world) claimValue(t *testing.T, name string, v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	switch {
	case (name == "iat" || name == "exp") && (strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-")):
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("claim %s: %v", name, err)
		}
		return w.now.Add(d).Unix()
	case name == "tsq" && strings.HasPrefix(s, "@"):
		seq, ok := w.marks[s[1:]]
		if !ok {
			t.Fatalf("claim tsq: no mark %q", s[1:])
		}
		return seq
	case name == "tsq" && s == "ahead":
		return w.log.Head() + 1000
	}
	return s
}

// ancestorsValue resolves marks ("@name") in the tsq of each entry of an anc claim.
func (w *world) ancestorsValue(t *testing.T, v any) any {
	list, ok := v.([]any)
	if !ok {
		return v
	}
	for _, e := range list {
		if a, ok := e.(map[string]any); ok {
			a["tsq"] = w.claimValue(t, "tsq", a["tsq"])
		}
	}
	return list
}

// cnfValue resolves "@holder" in a cnf claim's jkt to that holder key's thumbprint.
func (w *world) cnfValue(t *testing.T, v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{}
	for k, x := range m {
		if s, ok := x.(string); ok && k == "jkt" && strings.HasPrefix(s, "@") {
			x = w.holder(t, s[1:]).Thumbprint(t)
		}
		out[k] = x
	}
	return out
}

func (w *world) signer(t *testing.T, spec *tokenSpec) *pdptest.Key {
	name := cmpOr(spec.Key, "k1")
	k, ok := w.keys[name]
	if !ok {
		// A key never published: sign with a fresh one under that kid.
		k = pdptest.NewKey(t, name)
		w.keys[name] = k
	}
	return k
}

func (w *world) token(t *testing.T, spec *tokenSpec) string {
	t.Helper()
	if spec.Raw != "" {
		return spec.Raw
	}
	k := w.signer(t, spec)
	if spec.Forged {
		k = pdptest.NewKey(t, k.Kid)
	}
	headers := map[jose.HeaderKey]any{jose.HeaderType: token.Type}
	if spec.Typ != nil {
		headers[jose.HeaderType] = *spec.Typ
	}
	return k.Sign(t, w.claimsJSON(t, spec), headers)
}

func (w *world) claims(t *testing.T, spec *tokenSpec) (token.Claims, string) {
	t.Helper()
	raw, err := json.Marshal(w.claimsJSON(t, spec))
	if err != nil {
		t.Fatal(err)
	}
	var c token.Claims
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("claims: %v", err)
	}
	kid := cmpOr(spec.Key, "k1")
	if slices.Contains(spec.Omit, "kid") {
		kid = ""
	}
	return c, kid
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func targetKind(t *testing.T, name string) treatyv1.TargetKind {
	return enumValue[treatyv1.TargetKind](t, "TARGET_KIND_", name)
}

// enumValue looks a protobuf enum value up by its short lower-case name ("active", "signing_key").
func enumValue[E ~int32](t *testing.T, prefix, name string) E {
	t.Helper()
	var values map[string]int32
	switch any(E(0)).(type) {
	case treatyv1.PartnerState:
		values = treatyv1.PartnerState_value
	case treatyv1.IntegrationState:
		values = treatyv1.IntegrationState_value
	case treatyv1.WorkloadState:
		values = treatyv1.WorkloadState_value
	case treatyv1.TargetKind:
		values = treatyv1.TargetKind_value
	case treatyv1.PolicyMode:
		values = treatyv1.PolicyMode_value
	}
	v, ok := values[prefix+strings.ToUpper(name)]
	if !ok {
		t.Fatalf("unknown %s%s", prefix, strings.ToUpper(name))
	}
	return E(v)
}
