package access_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/access"
	"github.com/treaty-dev/treaty/fail"
)

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"admin": true, "pdp-eu-1": true, "gw.example.org": true, "svc_1": true, "0day": true,
		"spiffe://example.org/ns/prod/sa/pdp": true, "spiffe://example.org": true, "urn+x://a": true,
		"https://Example.org/a:b@c~d%20": true,
		"":                               false, "Admin": false, "-x": false, ".x": false, "a b": false, "a/b": false, "a:b": false,
		"spiffe://": false, "spiffe:/x": false, "Spiffe://x": false, "spiffe://x?y": false, "spiffe://x#y": false,
		"spiffe://x y": false, "spiffe://é": false, "1x://y": false, "://x": false,
		strings.Repeat("a", access.MaxNameLen): true, strings.Repeat("a", access.MaxNameLen+1): false,
	} {
		if got := access.ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzName holds ValidName to a plain reading of the rule (see its doc), and every rejection to an
// Invalid error naming the field whose message stays small whatever the name.
func FuzzName(f *testing.F) {
	for _, s := range []string{"", "admin", "pdp-eu-1", "gw.example.org", "spiffe://example.org/pdp", "spiffe://",
		"Spiffe://x", "a://b?c", "x\x00", "\xff", "spiffe://" + strings.Repeat("a", 300), strings.Repeat("a", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		want := plainName(name) || uriName(name)
		if got := access.ValidName(name); got != want {
			t.Fatalf("ValidName(%q) = %v, want %v", name, got, want)
		}
		err := access.CheckName("name", name)
		if (err == nil) != want {
			t.Fatalf("CheckName(%q) = %v, want valid=%v", name, err, want)
		}
		if err != nil {
			var fe *fail.Error
			if fail.KindOf(err) != fail.Invalid || !errors.As(err, &fe) || fe.Field != "name" || len(err.Error()) > 600 {
				t.Fatalf("CheckName(%q) = %v: want a short Invalid error naming name", name, err)
			}
		}
	})
}

func plainName(s string) bool {
	if len(s) == 0 || len(s) > access.MaxNameLen {
		return false
	}
	for i, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && strings.IndexByte("-._", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

func uriName(s string) bool {
	if len(s) > access.MaxNameLen {
		return false
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || rest == "" || !(scheme[0] >= 'a' && scheme[0] <= 'z') {
		return false
	}
	for _, c := range []byte(scheme) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("+-.", c) >= 0) {
			return false
		}
	}
	for _, c := range []byte(rest) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~!$&'()*+,;=:@/%", c) >= 0) {
			return false
		}
	}
	return true
}
