package token

import "testing"

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
