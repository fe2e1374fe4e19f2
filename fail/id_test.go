package fail

import (
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"a": true, "acme": true, "acme-corp-2": true, "0day": true, strings.Repeat("a", 63): true,
		"": false, "-acme": false, "Acme": false, "acme_corp": false, "acme corp": false, "acmé": false,
		strings.Repeat("a", 64): false, "acme\n": false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
	if err := CheckID("partner.id", ""); KindOf(err) != Invalid || !strings.Contains(err.Error(), "partner.id is required") {
		t.Errorf("CheckID empty = %v", err)
	}
	if err := CheckID("partner.id", "Bad"); KindOf(err) != Invalid || err.(*Error).Field != "partner.id" {
		t.Errorf("CheckID bad = %v", err)
	}
}
