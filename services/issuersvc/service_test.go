package issuersvc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/issuer/issuertest"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/services/issuersvc"
	"github.com/treaty-dev/treaty/token"
)

// wantCode fails the test unless err is a status with code want (and, for INVALID_ARGUMENT, a
// field violation naming field).
func wantCode(t *testing.T, err error, want codes.Code, field string) {
	t.Helper()
	st, ok := status.FromError(err)
	if err == nil || !ok {
		t.Fatalf("error %v, want status %s", err, want)
	}
	if st.Code() != want {
		t.Fatalf("status %s (%s), want %s", st.Code(), st.Message(), want)
	}
	if field == "" {
		return
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 && br.GetFieldViolations()[0].GetField() == field {
			return
		}
	}
	t.Fatalf("status %s (%s) names no field %q", st.Code(), st.Message(), field)
}

// signed signs claims with key under alg, as a client could.
func signed(t *testing.T, alg jose.SignatureAlgorithm, key any, c map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(sig).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIssueTokenStatus(t *testing.T) {
	e := newEnv(t)
	key := e.keys[workload]
	valid := func(edit func(c map[string]any)) func() string {
		return func() string {
			now := time.Now()
			c := map[string]any{"iss": workload, "sub": workload, "aud": issuerURL, "iat": now.Unix(),
				"exp": now.Add(time.Minute).Unix(), "jti": strings.Repeat("j", 8) + now.Format(time.RFC3339Nano)}
			edit(c)
			return signed(t, jose.EdDSA, key, c)
		}
	}
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	replayed := e.assertion(workload)
	e.issue(&treatyv1.IssueTokenRequest{ClientAssertion: replayed, Scopes: []string{"invoices:read"}, Audience: audience})
	tests := []struct {
		name      string
		assertion func() string
		edit      func(r *treatyv1.IssueTokenRequest)
		// setup changes the world and returns the workload to issue as (empty: the fixture
		// workload) and the feed sequence of its writes (the request's min_sequence). The world
		// is shared, so a setup that changes a partner onboards one of its own.
		setup func() (as string, minSeq uint64)
		want  codes.Code
		field string
		msg   string // if set, a substring of the status message: the refusal's reason
	}{
		{name: "bad signature", assertion: func() string {
			a := e.assertion(workload)
			parts := strings.Split(a, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			sig[0] ^= 0x80
			return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		}, want: codes.Unauthenticated},
		{name: "valid", assertion: valid(func(map[string]any) {}), want: codes.OK},
		{name: "stranger's key", assertion: func() string {
			a, _ := issuer.SignAssertion(workload, issuerURL, stranger, time.Now(), time.Minute)
			return a
		}, want: codes.Unauthenticated},
		{name: "wrong audience", assertion: valid(func(c map[string]any) { c["aud"] = "https://elsewhere.test" }), want: codes.Unauthenticated},
		{name: "expired", assertion: valid(func(c map[string]any) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }), want: codes.Unauthenticated},
		{name: "exp too far ahead", assertion: valid(func(c map[string]any) { c["exp"] = time.Now().Add(time.Hour).Unix() }), want: codes.Unauthenticated},
		{name: "iat in the future", assertion: valid(func(c map[string]any) { c["iat"] = time.Now().Add(3 * time.Minute).Unix() }), want: codes.Unauthenticated},
		{name: "missing jti", assertion: valid(func(c map[string]any) { delete(c, "jti") }), want: codes.Unauthenticated},
		{name: "replayed jti", assertion: func() string { return replayed }, want: codes.Unauthenticated},
		{name: "alg none", assertion: func() string {
			enc := base64.RawURLEncoding.EncodeToString
			return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`{"iss":"`+workload+`","sub":"`+workload+`"}`)) + "."
		}, want: codes.Unauthenticated},
		{name: "HS256 with the public key as secret", assertion: func() string {
			return signed(t, jose.HS256, []byte(key.Public().(ed25519.PublicKey)), map[string]any{
				"iss": workload, "sub": workload, "aud": issuerURL, "exp": time.Now().Add(time.Minute).Unix(), "jti": "hs"})
		}, want: codes.Unauthenticated},
		{name: "oversized assertion", assertion: valid(func(c map[string]any) { c["pad"] = strings.Repeat("x", 9000) }), want: codes.Unauthenticated},
		{name: "unknown workload", assertion: valid(func(c map[string]any) { c["iss"], c["sub"] = "nobody", "nobody" }), want: codes.Unauthenticated},
		{name: "iss differs from sub", assertion: valid(func(c map[string]any) { c["sub"] = sibling }), want: codes.Unauthenticated},
		{name: "wrong assertion type", edit: func(r *treatyv1.IssueTokenRequest) { r.ClientAssertionType = "urn:x" },
			want: codes.InvalidArgument, field: "client_assertion_type"},
		{name: "no assertion", edit: func(r *treatyv1.IssueTokenRequest) { r.ClientAssertion = "" }, want: codes.InvalidArgument, field: "client_assertion"},
		{name: "no scopes", edit: func(r *treatyv1.IssueTokenRequest) { r.Scopes = nil }, want: codes.InvalidArgument, field: "scopes"},
		{name: "scope with a space", edit: func(r *treatyv1.IssueTokenRequest) { r.Scopes = []string{"a b"} }, want: codes.InvalidArgument, field: "scopes"},
		{name: "no audience", edit: func(r *treatyv1.IssueTokenRequest) { r.Audience = "" }, want: codes.InvalidArgument, field: "audience"},
		{name: "negative ttl", edit: func(r *treatyv1.IssueTokenRequest) { r.Ttl = durationpb.New(-time.Minute) }, want: codes.InvalidArgument, field: "ttl"},
		{name: "malformed ttl", edit: func(r *treatyv1.IssueTokenRequest) { r.Ttl = &durationpb.Duration{Seconds: 1, Nanos: -1} }, want: codes.InvalidArgument, field: "ttl"},
		{name: "scope outside ceiling", edit: func(r *treatyv1.IssueTokenRequest) { r.Scopes = []string{"admin"} }, want: codes.PermissionDenied},
		{name: "audience not listed", edit: func(r *treatyv1.IssueTokenRequest) { r.Audience = "https://evil.test" }, want: codes.PermissionDenied},
		{name: "suspended partner", setup: func() (string, uint64) {
			id, _ := e.onboard("suspended", time.Now().Add(24*time.Hour))
			return id, e.world.SuspendPartner("suspended")
		}, want: codes.PermissionDenied, msg: `partner "suspended" is not active`},
		{name: "offboarded partner", setup: func() (string, uint64) {
			id, _ := e.onboard("offboarded", time.Now().Add(24*time.Hour))
			return id, e.world.OffboardPartner("offboarded")
		}, want: codes.PermissionDenied, msg: `partner "offboarded" is not active`},
		// The registry only takes contract ends in the future: the issuer's clock moves past a near
		// one (and back before the next case).
		{name: "contract ended", setup: func() (string, uint64) {
			id, seq := e.onboard("ended", time.Now().Add(time.Hour))
			e.clock.Advance(2 * time.Hour)
			return id, seq
		}, want: codes.PermissionDenied, msg: `the contract of partner "ended" ended`},
		{name: "decision point denies", setup: func() (string, uint64) {
			id, _ := e.onboard("blocked", time.Now().Add(24*time.Hour))
			return id, e.world.Revoke(treatyv1.TargetKind_TARGET_KIND_WORKLOAD, id)
		}, want: codes.PermissionDenied, msg: "issuance denied: workload_blocked"},
		// The PDP waits up to five seconds for a sequence it has not applied, then gives up.
		{name: "decision point catching up", edit: func(r *treatyv1.IssueTokenRequest) { r.MinSequence = 1 << 40 }, want: codes.Unavailable,
			msg: "the decision point could not decide"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Reset()
			as, minSeq := workload, uint64(0)
			if tc.setup != nil {
				as, minSeq = tc.setup()
			}
			req := e.requestAs(as)
			req.MinSequence = minSeq
			if tc.assertion != nil {
				req.ClientAssertion = tc.assertion()
			}
			if tc.edit != nil {
				tc.edit(req)
			}
			resp, err := e.client.IssueToken(context.Background(), req)
			if tc.want == codes.OK {
				if err != nil {
					t.Fatalf("IssueToken: %v", err)
				}
				if resp.GetTokenType() != "Bearer" {
					t.Fatalf("token_type = %q", resp.GetTokenType())
				}
				return
			}
			wantCode(t, err, tc.want, tc.field)
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.msg) {
				t.Fatalf("status message %q does not say %q", msg, tc.msg)
			}
			if a := req.GetClientAssertion(); a != "" && strings.Contains(status.Convert(err).Message(), a) {
				t.Fatal("status message repeats the assertion")
			}
		})
	}
	e.clock.Reset()
}

// TestIssueTokenPeersDown checks that a registry or decision point nobody can reach makes
// IssueToken UNAVAILABLE, so the client retries, rather than a refusal or an internal error, and
// that it says so in the issuer's words, without the peer's error chain (transport details,
// internal addresses), which must not reach a partner's workload. (edge.Status once passed through
// any error wrapping a gRPC status.)
func TestIssueTokenPeersDown(t *testing.T) {
	tests := []struct {
		name string
		edit func(t *testing.T, c *issuer.Config)
	}{
		{"registry down", func(t *testing.T, c *issuer.Config) { c.Directory = issuertest.UnreachableDirectory(t) }},
		{"decision point down", func(t *testing.T, c *issuer.Config) { c.Authorizer = issuertest.UnreachableAuthorizer(t) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *issuer.Config) { tc.edit(t, c) })
			_, err := e.client.IssueToken(context.Background(), e.request())
			wantCode(t, err, codes.Unavailable, "")
			if msg := status.Convert(err).Message(); strings.Contains(msg, "rpc error") || strings.Contains(msg, "127.0.0.1") {
				t.Fatalf("status message leaks the peer's error: %q", msg)
			}
		})
	}
}

func TestIssueToken(t *testing.T) {
	e := newEnv(t)
	req := e.request()
	req.Scopes = []string{"invoices:write", "invoices:read", "invoices:write"}
	req.Ttl = durationpb.New(2 * time.Minute)
	req.ClientAssertionType = issuer.AssertionType
	resp := e.issue(req)
	if resp.GetTokenType() != "Bearer" {
		t.Fatalf("token_type = %q, want Bearer", resp.GetTokenType())
	}
	c := resp.GetCredential()
	if c.GetExpireTime().AsTime().Sub(c.GetIssueTime().AsTime()) != 2*time.Minute {
		t.Fatalf("lifetime = %s", c.GetExpireTime().AsTime().Sub(c.GetIssueTime().AsTime()))
	}

	// The token verifies with the key ListSigningKeys shows, and matches its inventory record.
	keys, err := e.client.ListSigningKeys(context.Background(), &treatyv1.ListSigningKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.GetKeys()) != 1 || !keys.GetKeys()[0].GetActive() || keys.GetKeys()[0].GetKid() != c.GetKid() ||
		keys.GetKeys()[0].GetPublishedSequence() == 0 || keys.GetKeys()[0].GetAlgorithm() != "EdDSA" {
		t.Fatalf("keys = %v", keys)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(keys.GetKeys()[0].GetPublicJwk()); err != nil || !jwk.IsPublic() {
		t.Fatalf("public_jwk is not a public key: %v", err)
	}
	tok, err := jwt.ParseSigned(resp.GetAccessToken(), []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var claims token.Claims
	if err := tok.Claims(jwk.Key, &claims); err != nil {
		t.Fatal(err)
	}
	want := &treatyv1.Credential{
		Id: claims.ID, WorkloadId: workload, IntegrationId: integration, PartnerId: partner,
		Scopes: []string{"invoices:write", "invoices:read"}, Audience: audience,
		IssueTime: c.GetIssueTime(), ExpireTime: c.GetExpireTime(), Kid: tok.Headers[0].KeyID, Sequence: claims.Sequence,
		AuthMethod: issuer.MethodPrivateKeyJWT, Binding: issuer.BindingNone,
	}
	if diff := cmp.Diff(want, c, protocmp.Transform()); diff != "" {
		t.Fatalf("credential (-want +got):\n%s", diff)
	}
	got, err := e.client.GetCredential(context.Background(), &treatyv1.GetCredentialRequest{Id: c.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got.GetCredential(), protocmp.Transform()); diff != "" {
		t.Fatalf("GetCredential (-issued +stored):\n%s", diff)
	}
}

func TestGetIssuer(t *testing.T) {
	e := newEnv(t)
	got, err := e.client.GetIssuer(context.Background(), &treatyv1.GetIssuerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := &treatyv1.GetIssuerResponse{Issuer: issuerURL, MaxCredentialTtl: durationpb.New(token.DefaultMaxLifetime)}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Fatalf("GetIssuer (-want +got):\n%s", diff)
	}
}

func TestCredentials(t *testing.T) {
	e := newEnv(t)
	var issued []string // oldest first
	for _, id := range []string{workload, sibling, workload} {
		req := e.request()
		req.ClientAssertion = e.assertion(id)
		issued = append(issued, e.issue(req).GetCredential().GetId())
	}
	list := func(req *treatyv1.ListCredentialsRequest) []string {
		t.Helper()
		var ids []string
		for {
			resp, err := e.client.ListCredentials(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range resp.GetCredentials() {
				ids = append(ids, c.GetId())
			}
			if resp.GetNextPageToken() == "" {
				return ids
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
	if diff := cmp.Diff([]string{issued[2], issued[1], issued[0]}, list(&treatyv1.ListCredentialsRequest{PartnerId: partner, PageSize: 1})); diff != "" {
		t.Fatalf("by partner (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{issued[2], issued[0]}, list(&treatyv1.ListCredentialsRequest{WorkloadId: workload, LiveOnly: true})); diff != "" {
		t.Fatalf("by workload (-want +got):\n%s", diff)
	}
	if got := list(&treatyv1.ListCredentialsRequest{PartnerId: "globex"}); len(got) != 0 {
		t.Fatalf("another partner's listing = %v", got)
	}
	if diff := cmp.Diff([]string{issued[2], issued[1], issued[0]}, list(&treatyv1.ListCredentialsRequest{IntegrationId: integration, LiveOnly: true})); diff != "" {
		t.Fatalf("by integration (-want +got):\n%s", diff)
	}
	if got := list(&treatyv1.ListCredentialsRequest{IntegrationId: integration, ExpiredOnly: true}); len(got) != 0 {
		t.Fatalf("expired: %v, want none", got)
	}
	counts, err := e.client.CountLiveCredentialsByPartner(context.Background(), &treatyv1.CountLiveCredentialsByPartnerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&treatyv1.CountLiveCredentialsByPartnerResponse{Counts: []*treatyv1.PartnerCredentialCount{{PartnerId: partner, LiveCount: 3}}},
		counts, protocmp.Transform()); diff != "" {
		t.Fatalf("counts (-want +got):\n%s", diff)
	}

	// A PDP's usage report, through the client adapter the PDP's reporter uses, sets last seen.
	seen := time.Now().Add(-time.Minute).Truncate(time.Second)
	if err := issuersvc.NewUsageSink(e.conn).ReportUsage(context.Background(), []pdp.Usage{{CredentialID: issued[0], LastSeen: seen}}); err != nil {
		t.Fatal(err)
	}
	got, err := e.client.GetCredential(context.Background(), &treatyv1.GetCredentialRequest{Id: issued[0]})
	if err != nil {
		t.Fatal(err)
	}
	if c := got.GetCredential(); !c.GetLastSeenTime().AsTime().Equal(seen) || c.GetAuthMethod() != issuer.MethodPrivateKeyJWT || c.GetBinding() != issuer.BindingNone {
		t.Fatalf("credential after a usage report: last seen %v (want %v), auth method %q, binding %q", c.GetLastSeenTime().AsTime(), seen, c.GetAuthMethod(), c.GetBinding())
	}

	for _, tc := range []struct {
		name  string
		call  func() error
		want  codes.Code
		field string
	}{
		{"unknown credential", func() error {
			_, err := e.client.GetCredential(context.Background(), &treatyv1.GetCredentialRequest{Id: "nope"})
			return err
		}, codes.NotFound, ""},
		{"no credential id", func() error {
			_, err := e.client.GetCredential(context.Background(), &treatyv1.GetCredentialRequest{})
			return err
		}, codes.InvalidArgument, "id"},
		{"credential id with a space", func() error {
			_, err := e.client.GetCredential(context.Background(), &treatyv1.GetCredentialRequest{Id: "a b"})
			return err
		}, codes.InvalidArgument, "id"},
		{"bad partner id", func() error {
			_, err := e.client.ListCredentials(context.Background(), &treatyv1.ListCredentialsRequest{PartnerId: "Acme!"})
			return err
		}, codes.InvalidArgument, "partner_id"},
		{"bad workload id", func() error {
			_, err := e.client.ListCredentials(context.Background(), &treatyv1.ListCredentialsRequest{WorkloadId: "-"})
			return err
		}, codes.InvalidArgument, "workload_id"},
		{"negative page size", func() error {
			_, err := e.client.ListCredentials(context.Background(), &treatyv1.ListCredentialsRequest{PageSize: -1})
			return err
		}, codes.InvalidArgument, "page_size"},
		{"bad page token", func() error {
			_, err := e.client.ListCredentials(context.Background(), &treatyv1.ListCredentialsRequest{PageToken: "garbage"})
			return err
		}, codes.InvalidArgument, "page_token"},
		{"bad integration id", func() error {
			_, err := e.client.ListCredentials(context.Background(), &treatyv1.ListCredentialsRequest{IntegrationId: "a b"})
			return err
		}, codes.InvalidArgument, "integration_id"},
		{"live and expired only", func() error {
			_, err := e.client.ListCredentials(context.Background(), &treatyv1.ListCredentialsRequest{LiveOnly: true, ExpiredOnly: true})
			return err
		}, codes.InvalidArgument, "expired_only"},
		{"usage without credential id", func() error {
			_, err := e.client.ReportUsage(context.Background(), &treatyv1.ReportUsageRequest{Usages: []*treatyv1.CredentialUsage{{LastSeenTime: timestamppb.Now()}}})
			return err
		}, codes.InvalidArgument, "usages[0].credential_id"},
		{"usage without time", func() error {
			_, err := e.client.ReportUsage(context.Background(), &treatyv1.ReportUsageRequest{Usages: []*treatyv1.CredentialUsage{{CredentialId: "x"}}})
			return err
		}, codes.InvalidArgument, "usages[0].last_seen_time"},
		{"usage report too large", func() error {
			_, err := e.client.ReportUsage(context.Background(), &treatyv1.ReportUsageRequest{Usages: make([]*treatyv1.CredentialUsage, issuer.MaxUsageReport+1)})
			return err
		}, codes.InvalidArgument, "usages"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), tc.want, tc.field) })
	}
}
