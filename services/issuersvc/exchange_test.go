package issuersvc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
)

// exchangeRequest asks, as workload id, to exchange parent for scopes on the fixture audience.
func (e *env) exchangeRequest(id, parent string, scopes ...string) *treatyv1.ExchangeTokenRequest {
	return &treatyv1.ExchangeTokenRequest{
		Request:      &treatyv1.IssueTokenRequest{ClientAssertion: e.assertion(id), Scopes: scopes, Audience: audience},
		SubjectToken: parent, SubjectTokenType: issuer.TokenTypeAccessToken,
	}
}

func TestExchangeToken(t *testing.T) {
	e := newEnv(t)
	preq := e.request()
	preq.Scopes, preq.Ttl = []string{"invoices:read", "invoices:write"}, durationpb.New(10*time.Minute)
	parent := e.issue(preq)

	resp, err := e.client.ExchangeToken(context.Background(), e.exchangeRequest(sibling, parent.GetAccessToken(), "invoices:read"))
	if err != nil {
		t.Fatalf("ExchangeToken: %v", err)
	}
	c := resp.GetCredential()
	switch {
	case resp.GetIssuedTokenType() != issuer.TokenTypeAccessToken || resp.GetTokenType() != "Bearer":
		t.Errorf("issued_token_type %q, token_type %q", resp.GetIssuedTokenType(), resp.GetTokenType())
	case c.GetParentId() != parent.GetCredential().GetId() || c.GetWorkloadId() != sibling || strings.Join(c.GetScopes(), " ") != "invoices:read":
		t.Errorf("credential %v: want parent %s, workload %s, scope invoices:read", c, parent.GetCredential().GetId(), sibling)
	case c.GetExpireTime().AsTime().After(parent.GetCredential().GetExpireTime().AsTime()):
		t.Errorf("the child expires at %s, after its parent (%s)", c.GetExpireTime().AsTime(), parent.GetCredential().GetExpireTime().AsTime())
	}
	got, err := e.client.GetCredential(context.Background(), &treatyv1.GetCredentialRequest{Id: c.GetId()})
	if err != nil || got.GetCredential().GetParentId() != parent.GetCredential().GetId() {
		t.Errorf("GetCredential = %v, %v; want the parent recorded", got, err)
	}
	for action, want := range map[string]string{"invoices:read": "granted", "invoices:write": "scope_missing"} {
		if r := e.world.Check(resp.GetAccessToken(), action, audience, c.GetSequence()); r != want {
			t.Errorf("child %s: %s, want %s", action, r, want)
		}
	}

	// The audience may come as resource instead, and no scope asks for the parent's.
	req := e.exchangeRequest(workload, parent.GetAccessToken())
	req.Resource, req.Request.Audience = audience, ""
	resp, err = e.client.ExchangeToken(context.Background(), req)
	if err != nil || strings.Join(resp.GetCredential().GetScopes(), " ") != "invoices:read invoices:write" {
		t.Errorf("ExchangeToken with resource and no scopes = %v, %v", resp, err)
	}
}

func TestExchangeTokenStatus(t *testing.T) {
	e := newEnv(t)
	preq := e.request()
	preq.Scopes = []string{"invoices:read"}
	parent := e.issue(preq).GetAccessToken()
	tests := []struct {
		name  string
		edit  func(r *treatyv1.ExchangeTokenRequest)
		want  codes.Code
		field string
	}{
		{name: "valid", edit: func(*treatyv1.ExchangeTokenRequest) {}, want: codes.OK},
		{name: "no request", edit: func(r *treatyv1.ExchangeTokenRequest) { r.Request = nil }, want: codes.InvalidArgument, field: "request"},
		{name: "no subject token", edit: func(r *treatyv1.ExchangeTokenRequest) { r.SubjectToken = "" }, want: codes.InvalidArgument, field: "subject_token"},
		{name: "wrong subject token type", edit: func(r *treatyv1.ExchangeTokenRequest) {
			r.SubjectTokenType = "urn:ietf:params:oauth:token-type:jwt"
		}, want: codes.InvalidArgument, field: "subject_token_type"},
		{name: "actor token", edit: func(r *treatyv1.ExchangeTokenRequest) { r.ActorToken = parent }, want: codes.InvalidArgument, field: "actor_token"},
		{name: "resource differs from audience", edit: func(r *treatyv1.ExchangeTokenRequest) { r.Resource = "https://elsewhere.test" },
			want: codes.InvalidArgument, field: "resource"},
		{name: "no audience nor resource", edit: func(r *treatyv1.ExchangeTokenRequest) { r.Request.Audience = "" },
			want: codes.InvalidArgument, field: "request.audience"},
		{name: "no client assertion", edit: func(r *treatyv1.ExchangeTokenRequest) { r.Request.ClientAssertion = "" },
			want: codes.InvalidArgument, field: "request.client_assertion"},
		{name: "malformed scope", edit: func(r *treatyv1.ExchangeTokenRequest) { r.Request.Scopes = []string{"a b"} },
			want: codes.InvalidArgument, field: "request.scopes"},
		{name: "negative ttl", edit: func(r *treatyv1.ExchangeTokenRequest) { r.Request.Ttl = durationpb.New(-time.Second) },
			want: codes.InvalidArgument, field: "request.ttl"},
		{name: "bad client assertion", edit: func(r *treatyv1.ExchangeTokenRequest) { r.Request.ClientAssertion = "x.y.z" }, want: codes.Unauthenticated},
		{name: "subject token not ours", edit: func(r *treatyv1.ExchangeTokenRequest) { r.SubjectToken = parent[:len(parent)-4] + "AAAA" },
			want: codes.InvalidArgument, field: "subject_token"},
		{name: "scope escalation", edit: func(r *treatyv1.ExchangeTokenRequest) { r.Request.Scopes = []string{"invoices:write"} },
			want: codes.PermissionDenied},
		{name: "audience not listed", edit: func(r *treatyv1.ExchangeTokenRequest) { r.Request.Audience = "https://evil.test" },
			want: codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := e.exchangeRequest(sibling, parent, "invoices:read")
			tt.edit(req)
			_, err := e.client.ExchangeToken(context.Background(), req)
			if tt.want == codes.OK {
				if err != nil {
					t.Fatalf("ExchangeToken: %v", err)
				}
				return
			}
			wantCode(t, err, tt.want, tt.field)
		})
	}
}
