package access

import "github.com/treaty-dev/treaty/fail"

// MaxNameLen bounds an identity's name in bytes. It leaves room, within the 256 bytes an audit
// record's actor may hold, for the caller's own account of who acts (see services/authn).
const MaxNameLen = 200

// ValidName reports whether name is a valid identity name. A name is one of:
//
//   - a plain name: lower-case ASCII letters, digits, '-', '.' and '_', starting with a letter or
//     digit (for example "admin", "pdp-eu-1", "gw.example.org"), the shape of a certificate's CN;
//   - a URI, the shape of a certificate's URI SAN such as a SPIFFE ID
//     ("spiffe://example.org/ns/prod/pdp"): a scheme (a lower-case letter, then lower-case
//     letters, digits, '+', '-' or '.'), "://", then at least one character of RFC 3986's
//     unreserved and sub-delims sets, ':', '@', '/' or '%' (no query or fragment, no spaces);
//
// in both cases at most MaxNameLen bytes.
func ValidName(name string) bool {
	if name == "" || len(name) > MaxNameLen {
		return false
	}
	if i := schemeEnd(name); i > 0 {
		rest := name[i+3:]
		if rest == "" {
			return false
		}
		for j := 0; j < len(rest); j++ {
			if !uriChar(rest[j]) {
				return false
			}
		}
		return true
	}
	if !lowerOrDigit(name[0]) {
		return false
	}
	for j := 1; j < len(name); j++ {
		c := name[j]
		if !lowerOrDigit(c) && c != '-' && c != '.' && c != '_' {
			return false
		}
	}
	return true
}

// schemeEnd returns the index of "://" after a valid scheme at the start of name, or -1.
func schemeEnd(name string) int {
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		return -1
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		switch {
		case lowerOrDigit(c) || c == '+' || c == '-' || c == '.':
		case c == ':' && len(name) >= i+3 && name[i+1] == '/' && name[i+2] == '/':
			return i
		default:
			return -1
		}
	}
	return -1
}

func lowerOrDigit(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// uriChar reports whether c may appear in a URI name after its scheme: RFC 3986's unreserved
// (ALPHA DIGIT - . _ ~) and sub-delims (! $ & ' ( ) * + , ; =), ':', '@', '/' and '%'.
func uriChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@', '/', '%':
		return true
	}
	return false
}

// CheckName returns an Invalid error naming field unless name is a valid identity name.
func CheckName(field, name string) error {
	if name == "" {
		return fail.Invalidf(field, "%s is required", field)
	}
	if !ValidName(name) {
		return fail.Invalidf(field, "%s %q is not a valid identity name: use up to %d bytes of lower-case letters, digits, '-', '.' and '_' starting with a letter or digit, or a URI such as spiffe://example.org/pdp", field, clip(name), MaxNameLen)
	}
	return nil
}

func invalidf(field, format string, args ...any) error { return fail.Invalidf(field, format, args...) }

func clip(s string) string { return fail.Clip(s) }
