package pdpsvc_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
)

// recorder keeps the requests the PDP decided, to see what the adapter handed it.
type recorder struct {
	mu   sync.Mutex
	reqs []pdp.CheckRequest
}

func (r *recorder) Record(req pdp.CheckRequest, _ pdp.Decision, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
}

func (r *recorder) last(t *testing.T) pdp.CheckRequest {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("no decision recorded")
	}
	return r.reqs[len(r.reqs)-1]
}

// trustHeader trusts callers that send x-trusted: yes, standing in for the server assembly's
// peer-address rule.
func trustHeader(ctx context.Context) bool {
	v := metadata.ValueFromIncomingContext(ctx, "x-trusted")
	return len(v) == 1 && v[0] == "yes"
}

func claimsOf(e *env) *treatyv1.VerifiedClaims {
	c := pdptest.Claims("acme-bot", "acme-api", "acme", "read", "api", e.log.Epoch(), e.log.Head())
	return &treatyv1.VerifiedClaims{
		Iss: c.Issuer, Sub: c.Subject, ClientId: c.ClientID, Partner: c.Partner, Integration: c.Integration,
		Scopes: []string{"read", "write"}, Aud: c.Audience, Iat: c.IssuedAt, Exp: c.Expiry, Jti: c.ID, Tsq: c.Sequence,
		Tep: c.Epoch, Kid: "k1",
	}
}

func TestCheckSubjectsAndTrust(t *testing.T) {
	tests := []struct {
		name    string
		hook    bool // the service has the trustHeader hook (else Trusted is nil)
		trusted bool // the caller sends x-trusted: yes
		subject func(e *env) any
		want    string
	}{
		{"claims from a trusted caller", true, true, func(e *env) any { return claimsOf(e) }, pdp.ReasonGranted},
		{"claims from an untrusted caller", true, false, func(e *env) any { return claimsOf(e) }, pdp.ReasonClaimsNotTrusted},
		{"claims with no hook", false, true, func(e *env) any { return claimsOf(e) }, pdp.ReasonClaimsNotTrusted},
		{"incomplete claims", true, true, func(e *env) any { c := claimsOf(e); c.Tsq = 0; return c }, pdp.ReasonClaimsIncomplete},
		{"claims bound to a DPoP key, no proof", true, true, func(e *env) any {
			c := claimsOf(e)
			c.Cnf = &treatyv1.Confirmation{Jkt: "thumb"}
			return c
		}, pdp.ReasonProofMissing},
		{"workload from a trusted caller", true, true, func(*env) any { return "acme-bot" }, pdp.ReasonGranted},
		{"workload from an untrusted caller", true, false, func(*env) any { return "acme-bot" }, pdp.ReasonSubjectNotTrusted},
		{"workload with no hook", false, true, func(*env) any { return "acme-bot" }, pdp.ReasonSubjectNotTrusted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hook func(context.Context) bool
			if tc.hook {
				hook = trustHeader
			}
			e := newTrustingEnv(t, hook)
			req := &treatyv1.CheckRequest{Action: "read", Resource: "api"}
			switch s := tc.subject(e).(type) {
			case string:
				req.Subject = &treatyv1.CheckRequest_WorkloadId{WorkloadId: s}
			case *treatyv1.VerifiedClaims:
				req.Subject = &treatyv1.CheckRequest_Claims{Claims: s}
			}
			ctx := context.Background()
			if tc.trusted {
				ctx = metadata.AppendToOutgoingContext(ctx, "x-trusted", "yes")
			}
			resp, err := e.client.Check(ctx, req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !equal(resp.GetReasons(), tc.want) {
				t.Errorf("reasons = %v, want %s", resp.GetReasons(), tc.want)
			}
		})
	}
}

// A caller that sends no x-request-id gets one from the server, in the response header, and the
// decision log records that same id; one that sends an unusable id (spaces could forge log lines)
// gets it replaced the same way.
func TestCheckRecordsTheServersRequestID(t *testing.T) {
	e := newEnv(t)
	for _, sent := range []string{"", "two words"} {
		ctx := context.Background()
		if sent != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", sent)
		}
		var header metadata.MD
		req := &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: e.token(t)}, Action: "read", Resource: "api"}
		if _, err := e.client.Check(ctx, req, grpc.Header(&header)); err != nil {
			t.Fatalf("Check: %v", err)
		}
		got := header.Get("x-request-id")
		if len(got) != 1 || got[0] == "" || got[0] == sent {
			t.Fatalf("sent %q: x-request-id header %v, want one new id", sent, got)
		}
		if rec := e.rec.last(t).RequestID; rec != got[0] {
			t.Errorf("sent %q: the decision log records request id %q, the caller was told %q", sent, rec, got[0])
		}
	}
}

// What the adapter hands the PDP: the request id, the context, the proof and the resource's
// properties, converted.
func TestCheckConvertsTheRequest(t *testing.T) {
	e := newEnv(t)
	props, err := structpb.NewStruct(map[string]any{
		"owner": "acme", "size": 3, "ratio": 0.5, "public": true, "tags": []any{"a", 2}, "nested": map[string]any{"n": 1}, "none": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-request-id", "req-42")
	_, err = e.client.Check(ctx, &treatyv1.CheckRequest{
		Subject: &treatyv1.CheckRequest_Token{Token: e.token(t)}, Action: "read", Resource: "api",
		Context:            &treatyv1.RequestContext{SourceIp: "2001:db8::1", Environment: "production"},
		Proof:              &treatyv1.Proof{Dpop: "a.b.c", HttpMethod: "GET", HttpUri: "https://api.test/x", ClientCertThumbprint: "t"},
		ResourceProperties: props,
	})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	got := e.rec.last(t)
	want := pdp.CheckRequest{
		Token: got.Token, Action: "read", Resource: "api", RequestID: "req-42",
		Context: pdp.RequestContext{SourceIP: netip.MustParseAddr("2001:db8::1"), Environment: "production"},
		Proof:   pdp.Proof{DPoP: "a.b.c", Method: "GET", URI: "https://api.test/x", CertThumbprint: "t"},
		Properties: map[string]any{
			"owner": "acme", "size": int64(3), "ratio": 0.5, "public": true, "tags": []any{"a", int64(2)},
			"nested": map[string]any{"n": int64(1)}, "none": nil,
		},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("request handed to the PDP (-want +got):\n%s", diff)
	}
}

func TestCheckBatch(t *testing.T) {
	e := newTrustingEnv(t, trustHeader)
	tok := e.token(t)
	allow := &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: tok}, Action: "read", Resource: "api"}
	deny := &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: tok}, Action: "write", Resource: "api"}
	workload := &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_WorkloadId{WorkloadId: "acme-bot"}, Action: "write", Resource: "api"}
	tests := []struct {
		name    string
		checks  []*treatyv1.CheckRequest
		sem     treatyv1.BatchSemantics
		trusted bool
		want    []string
	}{
		{"unset semantics executes all", []*treatyv1.CheckRequest{allow, deny, allow}, treatyv1.BatchSemantics_BATCH_SEMANTICS_UNSPECIFIED, false,
			[]string{pdp.ReasonGranted, pdp.ReasonScopeMissing, pdp.ReasonGranted}},
		{"execute all", []*treatyv1.CheckRequest{deny, allow}, treatyv1.BatchSemantics_BATCH_SEMANTICS_EXECUTE_ALL, false,
			[]string{pdp.ReasonScopeMissing, pdp.ReasonGranted}},
		{"deny on first deny", []*treatyv1.CheckRequest{allow, deny, allow}, treatyv1.BatchSemantics_BATCH_SEMANTICS_DENY_ON_FIRST_DENY, false,
			[]string{pdp.ReasonGranted, pdp.ReasonScopeMissing}},
		{"permit on first permit", []*treatyv1.CheckRequest{deny, allow, deny}, treatyv1.BatchSemantics_BATCH_SEMANTICS_PERMIT_ON_FIRST_PERMIT, false,
			[]string{pdp.ReasonScopeMissing, pdp.ReasonGranted}},
		{"a workload subject, trusted", []*treatyv1.CheckRequest{deny, workload}, 0, true, []string{pdp.ReasonScopeMissing, pdp.ReasonGranted}},
		{"a workload subject, untrusted", []*treatyv1.CheckRequest{deny, workload}, 0, false, []string{pdp.ReasonScopeMissing, pdp.ReasonSubjectNotTrusted}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.trusted {
				ctx = metadata.AppendToOutgoingContext(ctx, "x-trusted", "yes")
			}
			resp, err := e.client.CheckBatch(ctx, &treatyv1.CheckBatchRequest{Checks: tc.checks, Semantics: tc.sem, MinSequence: e.log.Head()})
			if err != nil {
				t.Fatalf("CheckBatch: %v", err)
			}
			var got []string
			for _, d := range resp.GetDecisions() {
				if len(d.GetReasons()) != 1 || len(d.GetDecisionId()) != 32 || d.GetSequence() != e.log.Head() || d.GetEpoch() != e.log.Epoch() {
					t.Errorf("decision %v", d)
				}
				if (d.GetDecision() == treatyv1.Decision_DECISION_ALLOW) != (d.GetReasons()[0] == pdp.ReasonGranted) {
					t.Errorf("decision %v", d)
				}
				got = append(got, d.GetReasons()...)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("reasons (-want +got):\n%s", diff)
			}
		})
	}
}
