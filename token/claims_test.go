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
