package fail

import (
	"regexp"
	"strings"
)

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidID reports whether id is a valid Treaty id: lower-case letters, digits and dashes, starting
// with a letter or digit, at most 63 characters.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// CheckID returns an Invalid error naming field unless id is a valid Treaty id.
func CheckID(field, id string) error {
	if id == "" {
		return Invalidf(field, "%s is required", field)
	}
	if !ValidID(id) {
		return Invalidf(field, "%s %q is not a valid id: use 1-63 lower-case letters, digits and dashes, starting with a letter or digit", field, Clip(id))
	}
	return nil
}

// maxQuoted bounds how much of a rejected value an error quotes: enough to recognize it, while a
// request's megabyte-long field does not end up in full in the answer and in every log line.
const maxQuoted = 64

// Clip returns s cut to 64 bytes, marked as cut, for quoting a rejected value in an error.
func Clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	return s[:maxQuoted] + "..."
}

// MaxOpaqueID bounds ids Treaty does not choose itself: credential ids (jti) and key ids (kid).
const MaxOpaqueID = 256

// CheckOpaqueID returns an Invalid error naming field unless id is 1-MaxOpaqueID printable ASCII
// characters without spaces, the shape every credential and key id Treaty accepts has.
func CheckOpaqueID(field, id string) error {
	if id == "" {
		return Invalidf(field, "%s is required", field)
	}
	if len(id) > MaxOpaqueID || strings.IndexFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return Invalidf(field, "%s must be 1-%d printable ASCII characters without spaces", field, MaxOpaqueID)
	}
	return nil
}
