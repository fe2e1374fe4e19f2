package pdpsvc_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/pdpsvc"
	"github.com/treaty-dev/treaty/services/requestid"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a real revoker log, a real PDP following it, and the DecisionService on a loopback gRPC
// server, with a client connection to it.
type env struct {
	rec    *recorder
	log    *revoker.Log
	key    *pdptest.Key
	svc    *pdpsvc.Service
	pdp    *pdp.PDP
	conn   *grpc.ClientConn
	client treatyv1.DecisionServiceClient
}

func newEnv(t *testing.T) *env { return newTrustingEnv(t, nil) }

// newTrustingEnv is newEnv with a Trusted hook for the service.
func newTrustingEnv(t *testing.T, trusted func(context.Context) bool) *env {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	rl, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{log: rl, key: pdptest.NewKey(t, "k1"), rec: &recorder{}}
	pdptest.Publish(t, rl,
		pdptest.Partner("acme", treatyv1.PartnerState_PARTNER_STATE_ACTIVE, pdptest.ContractEnd),
		pdptest.Integration("acme-api", "acme", treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE, []string{"read", "write"}, []string{"api"}),
		pdptest.Workload("acme-bot", "acme-api", "acme", treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE),
		e.key.Published(t),
	)
	p := pdptest.Start(t, pdp.Config{
		Store: storetest.OpenBolt(t, pdp.Schema), Source: pdptest.NewSource(rl, 50*time.Millisecond),
		MaxWait: 300 * time.Millisecond, Logger: logger, Recorder: e.rec,
	})
	pdptest.WaitReady(t, p)
	e.pdp = p
	e.svc = pdpsvc.New(pdpsvc.Config{PDP: p, Logger: logger, Trusted: trusted})

	// The server's requestid interceptor, whose id the decision log records.
	e.conn = grpctest.ServeWith(t, []grpc.ServerOption{grpc.ChainUnaryInterceptor(requestid.UnaryServerInterceptor())}, e.svc.Register)
	e.client = treatyv1.NewDecisionServiceClient(e.conn)
	return e
}

func (e *env) token(t *testing.T) string {
	return e.key.Mint(t, pdptest.Claims("acme-bot", "acme-api", "acme", "read", "api", e.log.Epoch(), e.log.Head()))
}

func TestCheckDecides(t *testing.T) {
	e := newEnv(t)
	if !e.svc.Ready() {
		t.Error("Ready() = false for a PDP that caught up")
	}
	ctx := context.Background()
	tok := e.token(t)
	resp, err := e.client.Check(ctx, &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: tok}, Action: "read", Resource: "api"})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.GetDecision() != treatyv1.Decision_DECISION_ALLOW || !equal(resp.GetReasons(), pdp.ReasonGranted) ||
		resp.GetSequence() != e.log.Head() || len(resp.GetDecisionId()) != 32 || resp.GetEpoch() != e.log.Epoch() {
		t.Errorf("allow response = %v", resp)
	}

	// A deny is a normal response with a reason, never an RPC error.
	seq := pdptest.Revoke(t, e.log, treatyv1.TargetKind_TARGET_KIND_WORKLOAD, "acme-bot")
	resp, err = e.client.Check(ctx, &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: tok}, Action: "read", Resource: "api", MinSequence: seq})
	if err != nil {
		t.Fatalf("Check after the block: %v", err)
	}
	if resp.GetDecision() != treatyv1.Decision_DECISION_DENY || !equal(resp.GetReasons(), pdp.ReasonWorkloadBlocked) || resp.GetSequence() != seq {
		t.Errorf("deny response = %v", resp)
	}
	resp, err = e.client.Check(ctx, &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: "garbage"}, Action: "read", Resource: "api"})
	if err != nil || resp.GetDecision() != treatyv1.Decision_DECISION_DENY || !equal(resp.GetReasons(), pdp.ReasonMalformedToken) {
		t.Errorf("garbage token: %v, %v", resp, err)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t)
	check := func(mod func(*treatyv1.CheckRequest)) func() error {
		return func() error {
			req := &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: tok}, Action: "read", Resource: "api"}
			mod(req)
			_, err := e.client.Check(context.Background(), req)
			return err
		}
	}
	batch := func(mod func(*treatyv1.CheckBatchRequest)) func() error {
		return func() error {
			req := &treatyv1.CheckBatchRequest{Checks: []*treatyv1.CheckRequest{
				{Subject: &treatyv1.CheckRequest_Token{Token: tok}, Action: "read", Resource: "api"},
				{Subject: &treatyv1.CheckRequest_Token{Token: tok}, Action: "write", Resource: "api"},
			}}
			mod(req)
			_, err := e.client.CheckBatch(context.Background(), req)
			return err
		}
	}
	issuance := func(mod func(*treatyv1.CheckIssuanceRequest)) func() error {
		return func() error {
			req := &treatyv1.CheckIssuanceRequest{WorkloadId: "acme-bot", Scopes: []string{"read"}, Audience: "api", Kid: "k1"}
			mod(req)
			_, err := e.client.CheckIssuance(context.Background(), req)
			return err
		}
	}
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"no subject", check(func(r *treatyv1.CheckRequest) { r.Subject = nil }), codes.InvalidArgument, "token"},
		{"bad workload id", check(func(r *treatyv1.CheckRequest) { r.Subject = &treatyv1.CheckRequest_WorkloadId{WorkloadId: "Acme Bot"} }), codes.InvalidArgument, "workload_id"},
		{"claims with a bad scope", check(func(r *treatyv1.CheckRequest) {
			r.Subject = &treatyv1.CheckRequest_Claims{Claims: &treatyv1.VerifiedClaims{Scopes: []string{"read write"}}}
		}), codes.InvalidArgument, "claims.scopes"},
		{"claims with a huge jti", check(func(r *treatyv1.CheckRequest) {
			r.Subject = &treatyv1.CheckRequest_Claims{Claims: &treatyv1.VerifiedClaims{Jti: strings.Repeat("j", 2000)}}
		}), codes.InvalidArgument, "claims.jti"},
		{"malformed source ip", check(func(r *treatyv1.CheckRequest) { r.Context = &treatyv1.RequestContext{SourceIp: "10.0.0.300"} }), codes.InvalidArgument, "context.source_ip"},
		{"source ip with a port", check(func(r *treatyv1.CheckRequest) { r.Context = &treatyv1.RequestContext{SourceIp: "10.0.0.1:443"} }), codes.InvalidArgument, "context.source_ip"},
		{"environment with a newline", check(func(r *treatyv1.CheckRequest) { r.Context = &treatyv1.RequestContext{Environment: "prod\n"} }), codes.InvalidArgument, "context.environment"},
		{"dpop too large", check(func(r *treatyv1.CheckRequest) {
			r.Proof = &treatyv1.Proof{Dpop: strings.Repeat("a", pdp.MaxTokenBytes+1)}
		}), codes.InvalidArgument, "proof.dpop"},
		{"http uri with a control character", check(func(r *treatyv1.CheckRequest) { r.Proof = &treatyv1.Proof{HttpUri: "https://x/\x00"} }), codes.InvalidArgument, "proof.http_uri"},
		{"empty batch", batch(func(r *treatyv1.CheckBatchRequest) { r.Checks = nil }), codes.InvalidArgument, "checks"},
		{"batch too large", batch(func(r *treatyv1.CheckBatchRequest) {
			r.Checks = make([]*treatyv1.CheckRequest, pdp.MaxBatch+1)
			for i := range r.Checks {
				r.Checks[i] = r.Checks[0]
			}
		}), codes.InvalidArgument, "checks"},
		{"unknown semantics", batch(func(r *treatyv1.CheckBatchRequest) { r.Semantics = 9 }), codes.InvalidArgument, "semantics"},
		{"bad check in a batch", batch(func(r *treatyv1.CheckBatchRequest) { r.Checks[1].Action = "" }), codes.InvalidArgument, "checks[1].action"},
		{"batch min_sequence beyond the head", batch(func(r *treatyv1.CheckBatchRequest) { r.MinSequence = e.log.Head() + 100 }), codes.Unavailable, ""},
		{"empty token", check(func(r *treatyv1.CheckRequest) { r.Subject = &treatyv1.CheckRequest_Token{} }), codes.InvalidArgument, "token"},
		{"token too large", check(func(r *treatyv1.CheckRequest) {
			r.Subject = &treatyv1.CheckRequest_Token{Token: strings.Repeat("a", pdp.MaxTokenBytes+1)}
		}), codes.InvalidArgument, "token"},
		{"no action", check(func(r *treatyv1.CheckRequest) { r.Action = "" }), codes.InvalidArgument, "action"},
		{"action with a space", check(func(r *treatyv1.CheckRequest) { r.Action = "read write" }), codes.InvalidArgument, "action"},
		{"action too long", check(func(r *treatyv1.CheckRequest) { r.Action = strings.Repeat("r", 257) }), codes.InvalidArgument, "action"},
		{"no resource", check(func(r *treatyv1.CheckRequest) { r.Resource = "" }), codes.InvalidArgument, "resource"},
		{"resource with a control character", check(func(r *treatyv1.CheckRequest) { r.Resource = "api\n" }), codes.InvalidArgument, "resource"},
		{"resource too long", check(func(r *treatyv1.CheckRequest) { r.Resource = strings.Repeat("a", 1025) }), codes.InvalidArgument, "resource"},
		{"min_sequence beyond the head", check(func(r *treatyv1.CheckRequest) { r.MinSequence = e.log.Head() + 100 }), codes.Unavailable, ""},

		{"no workload", issuance(func(r *treatyv1.CheckIssuanceRequest) { r.WorkloadId = "" }), codes.InvalidArgument, "workload_id"},
		{"bad workload id", issuance(func(r *treatyv1.CheckIssuanceRequest) { r.WorkloadId = "Acme Bot" }), codes.InvalidArgument, "workload_id"},
		{"no scopes", issuance(func(r *treatyv1.CheckIssuanceRequest) { r.Scopes = nil }), codes.InvalidArgument, "scopes"},
		{"empty scope", issuance(func(r *treatyv1.CheckIssuanceRequest) { r.Scopes = []string{"read", ""} }), codes.InvalidArgument, "scopes"},
		{"too many scopes", issuance(func(r *treatyv1.CheckIssuanceRequest) { r.Scopes = make([]string, 65) }), codes.InvalidArgument, "scopes"},
		{"no audience", issuance(func(r *treatyv1.CheckIssuanceRequest) { r.Audience = "" }), codes.InvalidArgument, "audience"},
		{"no kid", issuance(func(r *treatyv1.CheckIssuanceRequest) { r.Kid = "" }), codes.InvalidArgument, "kid"},
		{"kid with a space", issuance(func(r *treatyv1.CheckIssuanceRequest) { r.Kid = "k 1" }), codes.InvalidArgument, "kid"},
		{"issuance min_sequence beyond the head", issuance(func(r *treatyv1.CheckIssuanceRequest) { r.MinSequence = e.log.Head() + 100 }), codes.Unavailable, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("code = %v (%v), want %v", st.Code(), err, tc.code)
			}
			if strings.Contains(st.Message(), tok) {
				t.Error("the error message echoes the token")
			}
			if tc.field == "" {
				return
			}
			var fields []string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						fields = append(fields, v.GetField())
					}
				}
			}
			if !equal(fields, tc.field) {
				t.Errorf("field violations %v, want %s", fields, tc.field)
			}
		})
	}
}

// TestAuthorizer runs the issuer's Authorizer over gRPC and in process: the same answers.
func TestAuthorizer(t *testing.T) {
	for name, newAuth := range map[string]func(*env) issuer.Authorizer{
		"grpc":  func(e *env) issuer.Authorizer { return pdpsvc.NewAuthorizer(e.conn) },
		"local": func(e *env) issuer.Authorizer { return pdpsvc.NewLocalAuthorizer(e.pdp) },
	} {
		t.Run(name, func(t *testing.T) { testAuthorizer(t, newAuth) })
	}
}

func testAuthorizer(t *testing.T, newAuth func(*env) issuer.Authorizer) {
	e := newEnv(t)
	auth := newAuth(e)
	ctx := context.Background()
	req := issuer.IssuanceRequest{WorkloadID: "acme-bot", Scopes: []string{"read", "write"}, Audience: "api", Kid: "k1"}

	d, err := auth.AuthorizeIssuance(ctx, req)
	if err != nil {
		t.Fatalf("AuthorizeIssuance: %v", err)
	}
	if !d.Allow || !equal(d.Reasons, pdp.ReasonGranted) || d.Sequence != e.log.Head() || d.DecisionID == "" {
		t.Errorf("allowed issuance = %+v", d)
	}

	req.MinSequence = pdptest.Revoke(t, e.log, treatyv1.TargetKind_TARGET_KIND_PARTNER, "acme")
	d, err = auth.AuthorizeIssuance(ctx, req)
	if err != nil {
		t.Fatalf("AuthorizeIssuance after the block: %v", err)
	}
	if d.Allow || !equal(d.Reasons, pdp.ReasonPartnerBlocked) || d.Sequence != req.MinSequence {
		t.Errorf("denied issuance = %+v", d)
	}

	bad := req
	bad.WorkloadID = "Not An Id"
	if _, err := auth.AuthorizeIssuance(ctx, bad); fail.KindOf(err) != fail.Invalid {
		t.Errorf("malformed request: %v, want an Invalid error", err)
	}
	late := req
	late.MinSequence = e.log.Head() + 100
	if _, err := auth.AuthorizeIssuance(ctx, late); fail.KindOf(err) != fail.Unavailable {
		t.Errorf("min_sequence beyond the head: %v, want an Unavailable error", err)
	}
}

func equal(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
