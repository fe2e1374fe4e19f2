package issuer_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/token"
)

// FuzzExchangeRequestFromForm reads arbitrary token endpoint bodies as exchange requests: a
// refusal is Invalid on requested_token_type or audience, and an accepted request carries the
// form's values unchanged, its one target one the form named, and survives a round trip through
// a form of its own.
func FuzzExchangeRequestFromForm(f *testing.F) {
	for _, s := range []string{
		"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=a.b.c&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&scope=a+b&audience=https%3A%2F%2Fx",
		"audience=a&resource=a", "audience=a&resource=b", "audience=a&audience=b", "resource=",
		"requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token", "scope=%20%09a%0Ab", "actor_token=x&actor_token_type=y",
		"subject_token=%ff%fe", "a=%zz", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return // the endpoint refuses a body that is not a form before this
		}
		client := issuer.Request{ClientID: "c"}
		req, err := issuer.ExchangeRequestFromForm(client, form)
		if err != nil {
			var fe *fail.Error
			if !errors.As(err, &fe) || fe.Kind != fail.Invalid || (fe.Field != "requested_token_type" && fe.Field != "audience") {
				t.Fatalf("form %q: error %v is not Invalid on requested_token_type or audience", body, err)
			}
			if fe.Field == "audience" && !errors.Is(err, issuer.ErrInvalidTarget) {
				t.Fatalf("form %q: two targets not marked invalid_target", body)
			}
			return
		}
		targets := append(slices.Clone(form["audience"]), form["resource"]...)
		switch {
		case req.ClientID != "c":
			t.Fatal("the client's request was not kept")
		case req.SubjectToken != form.Get("subject_token"), req.SubjectTokenType != form.Get("subject_token_type"),
			req.ActorToken != form.Get("actor_token"), req.ActorTokenType != form.Get("actor_token_type"):
			t.Fatalf("form %q: token parameters changed: %+v", body, req)
		case req.Audience != "" && !slices.Contains(targets, req.Audience), req.Audience == "" && len(targets) > 0 && slices.ContainsFunc(targets, func(s string) bool { return s != "" }):
			t.Fatalf("form %q: audience %q, targets %q", body, req.Audience, targets)
		case !slices.Equal(req.Scopes, strings.Fields(form.Get("scope"))) && !(len(req.Scopes) == 0 && len(strings.Fields(form.Get("scope"))) == 0):
			t.Fatalf("form %q: scopes %q", body, req.Scopes)
		}
		for _, s := range req.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\n\r\v\f") {
				t.Fatalf("form %q: scope %q", body, s)
			}
		}
		// Round trip: the request written back as a form reads as the same request.
		back := url.Values{}
		for k, v := range map[string]string{"subject_token": req.SubjectToken, "subject_token_type": req.SubjectTokenType,
			"actor_token": req.ActorToken, "actor_token_type": req.ActorTokenType, "audience": req.Audience,
			"scope": strings.Join(req.Scopes, " ")} {
			if v != "" {
				back.Set(k, v)
			}
		}
		again, err := issuer.ExchangeRequestFromForm(client, back)
		if err != nil {
			t.Fatalf("form %q: round trip %q refused: %v", body, back.Encode(), err)
		}
		if again.SubjectToken != req.SubjectToken || again.Audience != req.Audience || !slices.Equal(again.Scopes, req.Scopes) ||
			again.ActorToken != req.ActorToken || again.SubjectTokenType != req.SubjectTokenType || again.ActorTokenType != req.ActorTokenType {
			t.Fatalf("form %q: round trip changed %+v into %+v", body, req, again)
		}
	})
}

// FuzzExchangeSubject signs fuzzed claims with the issuer's own active key and offers them as a
// subject token: whatever they say, the exchange is refused as Invalid, Unauthenticated or Denied
// (never an internal error), or mints a child of the acme integration that narrows its parent.
func FuzzExchangeSubject(f *testing.F) {
	e := newEnv(f)
	now := time.Now()
	valid := token.Claims{
		Issuer: issuerURL, Subject: workload, ClientID: workload, Partner: partner, Integration: integration,
		Scope: "invoices:read invoices:write", Audience: audience, IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(),
		ID: "parent-1", Sequence: 1,
	}
	seed := func(edit func(*token.Claims)) []byte {
		c := valid
		if edit != nil {
			edit(&c)
		}
		raw, _ := json.Marshal(c)
		return raw
	}
	f.Add(seed(nil))
	f.Add(seed(func(c *token.Claims) { c.Partner = "globex" }))
	f.Add(seed(func(c *token.Claims) { c.Confirmation = &token.Confirmation{JKT: "x"} }))
	f.Add(seed(func(c *token.Claims) {
		c.Actor = &token.Actor{Subject: sibling}
		c.Ancestors = []token.Ancestor{{ID: "g", KeyID: "k", Sequence: 1}}
	}))
	f.Add(seed(func(c *token.Claims) { c.Ancestors = make([]token.Ancestor, 9) }))
	f.Add(seed(func(c *token.Claims) { c.Scope = "" }))
	f.Add([]byte(`{"iss":"https://treaty.test","exp":9223372036854775807,"iat":-9223372036854775808}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		var c token.Claims
		if json.Unmarshal(payload, &c) != nil {
			return
		}
		subject, err := issuer.SignClaims(e.iss, c)
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		a, err := issuer.SignAssertion(sibling, issuerURL, e.keys[sibling], e.clock.Now(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		out, err := e.iss.Exchange(context.Background(), issuer.ExchangeRequest{
			Request:      issuer.Request{Assertion: a, Scopes: []string{"invoices:read"}, Audience: downstream},
			SubjectToken: subject, SubjectTokenType: issuer.TokenTypeAccessToken,
		})
		if err != nil {
			switch fail.KindOf(err) {
			case fail.Invalid, fail.Unauthenticated, fail.Denied:
			default:
				t.Fatalf("claims %s: exchange failed with %v (kind %v)", payload, err, fail.KindOf(err))
			}
			if strings.Contains(err.Error(), subject) {
				t.Fatalf("error %q repeats the subject token", err)
			}
			return
		}
		if out.Credential.ParentID != c.ID || out.Credential.PartnerID != partner || c.Partner != partner ||
			c.Integration != integration || !c.HasScope("invoices:read") || c.Confirmation != nil || c.Expiry <= time.Now().Unix()-5 {
			t.Fatalf("exchanged %s into %+v", payload, out.Credential)
		}
	})
}
