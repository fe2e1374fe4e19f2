package token

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestHasScope(t *testing.T) {
	c := Claims{Scope: "read write:all admin"}
	for scope, want := range map[string]bool{"read": true, "write:all": true, "admin": true, "write": false, "": false, "read write:all": false} {
		if got := c.HasScope(scope); got != want {
			t.Errorf("HasScope(%q) = %v, want %v", scope, got, want)
		}
	}
	if got := c.Scopes(); len(got) != 3 {
		t.Errorf("Scopes() = %v", got)
	}
}

func TestValidScope(t *testing.T) {
	for scope, want := range map[string]bool{
		"read": true, "orders.read": true, "write:all": true, "a!#$%&'()*+,-./:;<=>?@[]^_`{|}~": true,
		"": false, "has space": false, `quo"te`: false, `back\slash`: false, "tab\t": false, "é": false,
		string(make([]byte, MaxScopeLen+1)): false,
	} {
		if got := ValidScope(scope); got != want {
			t.Errorf("ValidScope(%q) = %v, want %v", scope, got, want)
		}
	}
}

func TestExchangeClaims(t *testing.T) {
	plain := Claims{Subject: "a", Sequence: 9}
	if plain.Presenter() != "a" || plain.ActorDepth() != 0 || plain.ChainSequence() != 9 {
		t.Errorf("a token never exchanged: presenter %q, depth %d, chain sequence %d", plain.Presenter(), plain.ActorDepth(), plain.ChainSequence())
	}
	raw := `{"sub":"a","client_id":"c","tsq":12,"act":{"sub":"c","act":{"sub":"b"}},` +
		`"anc":[{"jti":"p","kid":"k2","tsq":10},{"jti":"g","kid":"k1","tsq":7}]}`
	var c Claims
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatal(err)
	}
	if c.Presenter() != "c" || c.ActorDepth() != 2 || c.ChainSequence() != 7 || c.Actor.Actor.Subject != "b" {
		t.Errorf("exchanged twice: presenter %q, depth %d, chain sequence %d", c.Presenter(), c.ActorDepth(), c.ChainSequence())
	}
	out, err := json.Marshal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), `"act"`) || strings.Contains(string(out), `"anc"`) {
		t.Errorf("a token never exchanged carries exchange claims: %s", out)
	}
}
