package issuersvc

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
)

// maxMessage bounds an error message: whatever a request holds (gRPC admits 4 MB), the answer and
// the log line quote only a little of it.
const maxMessage = 1024

// FuzzTokenRequests decodes arbitrary wire bytes as IssueToken and ExchangeToken requests, as the
// gRPC server does, then validates and converts them: a refusal is Invalid on a named field, with
// a bounded message that never repeats the assertion or the subject token; an accepted request
// reaches the issuer unchanged.
func FuzzTokenRequests(f *testing.F) {
	for _, m := range []proto.Message{
		&treatyv1.IssueTokenRequest{ClientAssertionType: issuer.AssertionType, ClientAssertion: "a.b.c", Scopes: []string{"read"}, Audience: "api", Ttl: durationpb.New(60e9)},
		&treatyv1.IssueTokenRequest{ClientAssertion: "a.b.c", Scopes: []string{"a b"}, Audience: "api"},
		&treatyv1.IssueTokenRequest{ClientAssertion: "a.b.c", Scopes: []string{strings.Repeat("x", 5000)}, Audience: "api"},
		&treatyv1.IssueTokenRequest{ClientAssertion: "a.b.c", Scopes: []string{"read"}, Audience: "api", Ttl: &durationpb.Duration{Seconds: -1, Nanos: 5}},
		&treatyv1.ExchangeTokenRequest{Request: &treatyv1.IssueTokenRequest{ClientAssertion: "a.b.c", Audience: "down"}, SubjectToken: "s.t.u", SubjectTokenType: issuer.TokenTypeAccessToken, Resource: "down"},
	} {
		raw, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var is treatyv1.IssueTokenRequest
		if proto.Unmarshal(raw, &is) == nil {
			if err := validateIssueToken(&is); err != nil {
				wantInvalid(t, err, is.GetClientAssertion())
			} else if r := issueRequest(&is); r.Assertion != is.GetClientAssertion() || r.Audience != is.GetAudience() || len(r.Scopes) != len(is.GetScopes()) {
				t.Fatalf("converted %v into %+v", &is, r)
			}
		}
		var ex treatyv1.ExchangeTokenRequest
		if proto.Unmarshal(raw, &ex) == nil {
			if err := validateExchangeToken(&ex); err != nil {
				wantInvalid(t, err, ex.GetRequest().GetClientAssertion())
				wantInvalid(t, err, ex.GetSubjectToken())
			} else if r := exchangeRequest(&ex); r.SubjectToken != ex.GetSubjectToken() || r.Assertion != ex.GetRequest().GetClientAssertion() {
				t.Fatalf("converted %v into %+v", &ex, r)
			}
		}
	})
}

func wantInvalid(t *testing.T, err error, secret string) {
	t.Helper()
	var fe *fail.Error
	if !errors.As(err, &fe) || fe.Kind != fail.Invalid || fe.Field == "" {
		t.Fatalf("error %v is not Invalid on a field", err)
	}
	if len(fe.Msg) > maxMessage {
		t.Fatalf("error message of %d bytes on %s", len(fe.Msg), fe.Field)
	}
	// A "credential" equal to one of the protocol's public constants, which messages name on
	// purpose (the token type an exchange requires), is no secret.
	public := secret == issuer.TokenTypeAccessToken || secret == issuer.AssertionType
	if len(secret) >= 8 && !public && strings.Contains(fe.Msg, secret) {
		t.Fatalf("error %q repeats a credential", fe.Msg)
	}
}
