package fail

import (
	"errors"
	"strings"
	"testing"
)

// maxEcho bounds how much of a rejected id an error message may carry: a request can hold
// megabytes in an id field, and the message goes to the caller and to the logs.
const maxEcho = 512

// FuzzCheckID holds CheckID to a plain reading of the id rule (1-63 lower-case letters, digits and
// dashes, not starting with a dash), and every rejection to an Invalid error naming the field
// whose message stays small whatever the id.
func FuzzCheckID(f *testing.F) {
	for _, s := range []string{"", "a", "acme", "acme-corp-2", "0day", "-acme", "Acme", "acme_corp", "acmé",
		"acme\n", "acme\x00", strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("x", 4096), "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		want := len(id) >= 1 && len(id) <= 63 && id[0] != '-'
		for i := 0; want && i < len(id); i++ {
			c := id[i]
			want = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-'
		}
		if got := ValidID(id); got != want {
			t.Fatalf("ValidID(%q) = %v, want %v", id, got, want)
		}
		err := CheckID("partner.id", id)
		if (err == nil) != want {
			t.Fatalf("CheckID(%q) = %v, want valid=%v", id, err, want)
		}
		if err != nil {
			checkInvalid(t, err, "partner.id")
		}
	})
}

// FuzzCheckOpaqueID holds CheckOpaqueID to its rule: 1-MaxOpaqueID bytes, each printable ASCII
// other than space.
func FuzzCheckOpaqueID(f *testing.F) {
	for _, s := range []string{"", "jti-1", "a b", "a\tb", "é", "\x7f", "~!", strings.Repeat("k", MaxOpaqueID),
		strings.Repeat("k", MaxOpaqueID+1), "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		want := len(id) >= 1 && len(id) <= MaxOpaqueID
		for i := 0; want && i < len(id); i++ {
			want = id[i] > ' ' && id[i] <= '~'
		}
		err := CheckOpaqueID("jti", id)
		if (err == nil) != want {
			t.Fatalf("CheckOpaqueID(%q) = %v, want valid=%v", id, err, want)
		}
		if err != nil {
			checkInvalid(t, err, "jti")
		}
	})
}

func checkInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Kind != Invalid || e.Field != field {
		t.Fatalf("error %v is not Invalid on %s", err, field)
	}
	if len(e.Error()) > maxEcho {
		t.Fatalf("error message of %d bytes: a rejected id must not be echoed in full", len(e.Error()))
	}
}
