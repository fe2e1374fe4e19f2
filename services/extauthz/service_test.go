package extauthz_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/extauthz"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/store/storetest"
	"github.com/treaty-dev/treaty/token"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// routesJSON is the route table the tests load from a file, as an operator would write it.
const routesJSON = `{"routes": [
	{"method": "GET", "prefix": "/v1/orders", "action": "read", "resource": "api"},
	{"method": "POST", "path": "/v1/orders", "action": "write", "resource": "api"},
	{"method": "GET", "path": "/v1/invoices/*", "action": "read", "resource": "billing"},
	{"prefix": "/v1/admin", "action": "admin", "resource": "api"}
]}`

// env is a real revoker log followed by a real PDP, behind the ext_authz service on a real gRPC
// server on loopback, with a client built from go-control-plane's types. The world: partner acme,
// its integration acme-api (scopes read and write; audiences api and billing), its workload
// acme-bot, and the issuer key k1.
type env struct {
	log    *revoker.Log
	key    *pdptest.Key
	client authv3.AuthorizationClient
}

func newEnv(t *testing.T) *env {
	t.Helper()
	log, err := revoker.Open(storetest.OpenBolt(t, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{log: log, key: pdptest.NewKey(t, "k1")}
	pdptest.Publish(t, log,
		pdptest.Partner("acme", treatyv1.PartnerState_PARTNER_STATE_ACTIVE, pdptest.ContractEnd),
		pdptest.Integration("acme-api", "acme", treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE, []string{"read", "write"}, []string{"api", "billing"}),
		pdptest.Workload("acme-bot", "acme-api", "acme", treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE),
		e.key.Published(t),
	)
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := pdptest.Start(t, pdp.Config{Store: storetest.OpenBolt(t, pdp.Schema), Source: pdptest.NewSource(log, 50*time.Millisecond), Logger: logger})
	pdptest.WaitReady(t, p)

	file := filepath.Join(t.TempDir(), "routes.json")
	if err := os.WriteFile(file, []byte(routesJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	routes, err := extauthz.LoadRoutes(file)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := extauthz.New(extauthz.Config{PDP: p, Routes: routes, Environment: "production", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.client = authv3.NewAuthorizationClient(grpctest.Serve(t, svc.Register))
	return e
}

// token mints a valid token for acme-bot (scopes read, audience api), changed by edit.
func (e *env) token(t *testing.T, edit func(*token.Claims)) string {
	c := pdptest.Claims("acme-bot", "acme-api", "acme", "read", "api", e.log.Epoch(), e.log.Head())
	if edit != nil {
		edit(&c)
	}
	return e.key.Mint(t, c)
}

// httpCheck is an ext_authz request as Envoy sends it for an HTTP request from 192.0.2.7.
func httpCheck(method, path string, headers map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "192.0.2.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "envoy-req-1", Method: method, Path: path, Host: "api.example.com", Scheme: "https", Headers: headers,
		}},
	}}
}

// answer is what a test checks of a CheckResponse.
type answer struct {
	code       codes.Code
	httpStatus typev3.StatusCode // of a denied response; 0 for OK
	reason     string
	decisionID bool // whether the decision id header is set
}

func answerOf(t *testing.T, res *authv3.CheckResponse) answer {
	t.Helper()
	a := answer{code: codes.Code(res.GetStatus().GetCode())}
	var headers []*corev3.HeaderValueOption
	switch r := res.GetHttpResponse().(type) {
	case *authv3.CheckResponse_OkResponse:
		headers = r.OkResponse.GetHeaders()
	case *authv3.CheckResponse_DeniedResponse:
		headers = r.DeniedResponse.GetHeaders()
		a.httpStatus = r.DeniedResponse.GetStatus().GetCode()
	default:
		t.Fatalf("response without an HTTP response: %v", res)
	}
	for _, h := range headers {
		switch h.GetHeader().GetKey() {
		case extauthz.HeaderReason:
			a.reason = h.GetHeader().GetValue()
		case extauthz.HeaderDecisionID:
			a.decisionID = h.GetHeader().GetValue() != ""
		}
	}
	return a
}

func TestCheck(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, nil)
	billing := e.token(t, func(c *token.Claims) { c.Audience = "billing" })
	expired := e.token(t, func(c *token.Claims) { c.IssuedAt -= 3600; c.Expiry = time.Now().Add(-time.Minute).Unix() })
	bearer := func(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

	allow := answer{code: codes.OK, reason: pdp.ReasonGranted, decisionID: true}
	tests := []struct {
		name string
		req  *authv3.CheckRequest
		want answer
	}{
		{"allow", httpCheck("GET", "/v1/orders/42", bearer(tok)), allow},
		{"allow at the prefix itself", httpCheck("GET", "/v1/orders", bearer(tok)), allow},
		{"scheme in any case", httpCheck("GET", "/v1/orders", map[string]string{"authorization": "bEaReR  " + tok}), allow},
		{"query ignored", httpCheck("GET", "/v1/invoices/7?format=pdf", bearer(billing)), allow},
		{
			"raw headers", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/v1/orders", HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "authorization", RawValue: []byte("Bearer " + tok)}}},
			}}}},
			allow,
		},
		{"scope missing", httpCheck("POST", "/v1/orders", bearer(tok)), answer{codes.PermissionDenied, typev3.StatusCode_Forbidden, pdp.ReasonScopeMissing, true}},
		{"audience mismatch", httpCheck("GET", "/v1/invoices/7", bearer(tok)), answer{codes.PermissionDenied, typev3.StatusCode_Forbidden, pdp.ReasonAudienceMismatch, true}},
		{"scope outside the ceiling", httpCheck("DELETE", "/v1/admin/users", bearer(e.token(t, func(c *token.Claims) { c.Scope = "admin" }))),
			answer{codes.PermissionDenied, typev3.StatusCode_Forbidden, pdp.ReasonScopeNotAllowed, true}},
		{"no route for the method", httpCheck("DELETE", "/v1/orders/42", bearer(tok)), answer{codes.PermissionDenied, typev3.StatusCode_Forbidden, extauthz.ReasonNoRoute, false}},
		{"no route for the path", httpCheck("GET", "/v1/ordersx", bearer(tok)), answer{codes.PermissionDenied, typev3.StatusCode_Forbidden, extauthz.ReasonNoRoute, false}},
		{"one segment only", httpCheck("GET", "/v1/invoices/7/lines", bearer(billing)), answer{codes.PermissionDenied, typev3.StatusCode_Forbidden, extauthz.ReasonNoRoute, false}},
		{"dot segments", httpCheck("GET", "/v1/orders/../admin/x", bearer(tok)), answer{codes.PermissionDenied, typev3.StatusCode_BadRequest, extauthz.ReasonPathNotNormalized, false}},
		{"encoded slash", httpCheck("GET", "/v1/orders%2F..%2Fadmin", bearer(tok)), answer{codes.PermissionDenied, typev3.StatusCode_BadRequest, extauthz.ReasonPathNotNormalized, false}},
		{"no authorization", httpCheck("GET", "/v1/orders", nil), answer{codes.PermissionDenied, typev3.StatusCode_Unauthorized, extauthz.ReasonTokenMissing, false}},
		{"basic scheme", httpCheck("GET", "/v1/orders", map[string]string{"authorization": "Basic YTpi"}), answer{codes.PermissionDenied, typev3.StatusCode_Unauthorized, extauthz.ReasonTokenMissing, false}},
		{"bearer without token", httpCheck("GET", "/v1/orders", map[string]string{"authorization": "Bearer "}), answer{codes.PermissionDenied, typev3.StatusCode_Unauthorized, extauthz.ReasonTokenMissing, false}},
		{"malformed token", httpCheck("GET", "/v1/orders", bearer("not-a-jwt")), answer{codes.PermissionDenied, typev3.StatusCode_Unauthorized, pdp.ReasonMalformedToken, true}},
		{"expired token", httpCheck("GET", "/v1/orders", bearer(expired)), answer{codes.PermissionDenied, typev3.StatusCode_Unauthorized, pdp.ReasonExpired, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := e.client.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got := answerOf(t, res); got != tt.want {
				t.Errorf("answer %+v, want %+v", got, tt.want)
			}
		})
	}
}

// An allow tells the upstream who was allowed; a 401 says how to authenticate.
func TestCheckHeaders(t *testing.T) {
	e := newEnv(t)
	res, err := e.client.Check(context.Background(), httpCheck("GET", "/v1/orders", map[string]string{"authorization": "Bearer " + e.token(t, nil)}))
	if err != nil {
		t.Fatal(err)
	}
	headers := map[string]string{}
	for _, h := range res.GetOkResponse().GetHeaders() {
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("header %s is appended, not set: a client could send its own", h.GetHeader().GetKey())
		}
		headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	if headers[extauthz.HeaderWorkload] != "acme-bot" {
		t.Errorf("ok headers %v, want %s acme-bot", headers, extauthz.HeaderWorkload)
	}

	res, err = e.client.Check(context.Background(), httpCheck("GET", "/v1/orders", map[string]string{"authorization": "DPoP not-a-jwt"}))
	if err != nil {
		t.Fatal(err)
	}
	denied := res.GetDeniedResponse()
	var challenge string
	for _, h := range denied.GetHeaders() {
		if h.GetHeader().GetKey() == "www-authenticate" {
			challenge = h.GetHeader().GetValue()
		}
	}
	if challenge != `DPoP realm="treaty", error="invalid_token"` || denied.GetBody() == "" {
		t.Errorf("401 challenge %q, body %q", challenge, denied.GetBody())
	}
}

// The DPoP scheme hands the token (with the dpop header as proof) to the PDP, which decides on it.
func TestCheckDPoPScheme(t *testing.T) {
	e := newEnv(t)
	res, err := e.client.Check(context.Background(), httpCheck("GET", "/v1/orders",
		map[string]string{"authorization": "DPoP " + e.token(t, nil), "dpop": "proof.jwt.here"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := answerOf(t, res); got.reason == extauthz.ReasonTokenMissing || got.reason == pdp.ReasonMalformedToken || !got.decisionID {
		t.Errorf("DPoP-scheme request: %+v, want a PDP decision on the token", got)
	}
}

func TestCheckWithoutHTTPAttributes(t *testing.T) {
	e := newEnv(t)
	_, err := e.client.Check(context.Background(), &authv3.CheckRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("Check without attributes: %v, want InvalidArgument", err)
	}
}
