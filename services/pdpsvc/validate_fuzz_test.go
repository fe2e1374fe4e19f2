package pdpsvc

import (
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
)

// FuzzCheckRequest decodes arbitrary wire bytes as a CheckRequest, as the gRPC server does, and
// validates and converts what decodes: a refusal is Invalid on a field of the request, and an
// accepted request converts to the property types the PDP documents, without panicking.
func FuzzCheckRequest(f *testing.F) {
	props, _ := structpb.NewStruct(map[string]any{"n": 3.0, "f": 0.5, "big": 1e300, "s": "x", "b": true, "l": []any{1.0, nil, map[string]any{"k": "v"}}})
	for _, m := range []*treatyv1.CheckRequest{
		{Subject: &treatyv1.CheckRequest_Token{Token: "a.b.c"}, Action: "read", Resource: "api", ResourceProperties: props,
			Context: &treatyv1.RequestContext{SourceIp: "192.0.2.1", Environment: "production"},
			Proof:   &treatyv1.Proof{Dpop: "x.y.z", HttpMethod: "GET", HttpUri: "https://api/x", ClientCertThumbprint: "t"}},
		{Subject: &treatyv1.CheckRequest_WorkloadId{WorkloadId: "acme-bot"}, Action: "read", Resource: "api"},
		{Subject: &treatyv1.CheckRequest_Claims{Claims: &treatyv1.VerifiedClaims{Iss: "i", Sub: "s", Scopes: []string{"a", "a b"}, Kid: "k"}}, Action: "read", Resource: "api"},
		{Action: "read"},
		{Subject: &treatyv1.CheckRequest_Token{Token: "t"}, Action: "a b", Resource: "\x00"},
	} {
		raw, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, trusted bool) {
		var req treatyv1.CheckRequest
		if proto.Unmarshal(raw, &req) != nil {
			return
		}
		if err := validateCheck("", &req); err != nil {
			var fe *fail.Error
			if !errors.As(err, &fe) || fe.Kind != fail.Invalid || fe.Field == "" {
				t.Fatalf("validateCheck error %v is not Invalid on a field", err)
			}
			if tok := req.GetToken(); len(tok) >= 8 && strings.Contains(fe.Msg, tok) {
				t.Fatalf("error %q repeats the token", fe.Msg)
			}
			return
		}
		c := checkRequest(&req, trusted, "r")
		if c.Trusted != trusted || c.Token != req.GetToken() || c.Action != req.GetAction() || c.Resource != req.GetResource() {
			t.Fatalf("converted %v into %+v", &req, c)
		}
		checkProperty(t, c.Properties)
		_ = pdp.CheckRequest(c)
	})
}

// checkProperty fails the test unless v holds only the types pdp.CheckRequest.Properties allows.
func checkProperty(t *testing.T, v any) {
	switch v := v.(type) {
	case nil, string, bool, int64:
	case float64:
		if v == math.Trunc(v) && math.Abs(v) <= 1<<53 {
			t.Fatalf("integral %v not converted to int64", v)
		}
	case []any:
		for _, e := range v {
			checkProperty(t, e)
		}
	case map[string]any:
		for _, e := range v {
			checkProperty(t, e)
		}
	default:
		t.Fatalf("property of type %T", v)
	}
}
