package token

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

// FuzzClaimsJSON decodes arbitrary token payloads as Claims: whatever decodes encodes again and
// decodes to the same claims (the round trip the issuer's signing and the PDP's verifying make),
// and the two readings of the scope claim (Scopes and HasScope) agree on every non-empty scope.
func FuzzClaimsJSON(f *testing.F) {
	for _, s := range []string{
		`{"iss":"https://i","sub":"w","client_id":"w","partner":"p","integration":"i","scope":"read write","aud":"api","iat":1,"exp":2,"jti":"j","tsq":3,"tep":"e"}`,
		`{"cnf":{"jkt":"x","x5t#S256":"y"},"act":{"sub":"a","act":{"sub":"b"}},"anc":[{"jti":"p","kid":"k","tsq":1}]}`,
		`{"scope":"read  write\tadmin "}`, `{"scope":"\u00e9 a"}`, `{"tsq":-1}`, `{"exp":1e3}`, `{"act":null,"anc":[]}`,
		`{"SUB":"x","Sub":"y"}`, `null`, `[]`,
	} {
		f.Add([]byte(s), "read")
	}
	f.Fuzz(func(t *testing.T, payload []byte, scope string) {
		var c Claims
		if err := json.Unmarshal(payload, &c); err != nil {
			return
		}
		raw, err := json.Marshal(&c)
		if err != nil {
			t.Fatalf("claims %+v do not encode: %v", c, err)
		}
		var again Claims
		if err := json.Unmarshal(raw, &again); err != nil {
			t.Fatalf("encoded claims %s do not decode: %v", raw, err)
		}
		if len(again.Ancestors) == 0 && len(c.Ancestors) == 0 {
			again.Ancestors = c.Ancestors // nil and empty both encode as absent
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip changed %+v into %+v", c, again)
		}
		// The empty scope aside: every edge refuses an empty action before a claim is read.
		if scope != "" && c.HasScope(scope) != slices.Contains(c.Scopes(), scope) {
			t.Fatalf("scope claim %q: HasScope(%q) = %v, Scopes() = %q", c.Scope, scope, c.HasScope(scope), c.Scopes())
		}
		if c.ChainSequence() > c.Sequence {
			t.Fatalf("chain sequence %d above the token's %d", c.ChainSequence(), c.Sequence)
		}
	})
}
