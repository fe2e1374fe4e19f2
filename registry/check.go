package registry

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/token"
)

// Limits on free text and lists, so one request can never bloat a record or the feed.
const (
	maxNameRunes    = 200
	maxActor        = 256
	maxReason       = 1024
	maxListItems    = 256 // allowed scopes or audiences of one integration
	maxAudience     = 256
	maxPublicKeyPEM = 8 << 10
)

// CheckName validates a required name, such as a partner's display name or owner team: 1 to 200
// characters of valid UTF-8, without control characters and not only spaces.
func CheckName(field, s string) error { return checkText(field, s, maxNameRunes) }

// checkText validates a required human-readable field: 1 to maxRunes characters of valid UTF-8,
// without control characters and not only spaces.
func checkText(field, s string, maxRunes int) error {
	switch {
	case strings.TrimSpace(s) == "":
		return fail.Invalidf(field, "%s is required", field)
	case !utf8.ValidString(s):
		return fail.Invalidf(field, "%s must be valid UTF-8", field)
	case utf8.RuneCountInString(s) > maxRunes:
		return fail.Invalidf(field, "%s must be at most %d characters", field, maxRunes)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fail.Invalidf(field, "%s must not contain control characters", field)
	}
	return nil
}

// CheckActor validates the optional actor of a request, which is recorded in the audit trail and
// the feed.
func CheckActor(field, actor string) error {
	if actor == "" {
		return nil
	}
	if len(actor) > maxActor {
		return fail.Invalidf(field, "%s must be at most %d bytes", field, maxActor)
	}
	return checkText(field, actor, maxActor)
}

// CheckReason validates the required reason of a suspension or offboarding.
func CheckReason(field, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return fail.Invalidf(field, "%s is required: say why, for the audit trail", field)
	}
	if len(reason) > maxReason {
		return fail.Invalidf(field, "%s must be at most %d bytes", field, maxReason)
	}
	return checkText(field, reason, maxReason)
}

// CheckScopes validates an integration's scope ceiling: a non-empty list of distinct RFC 6749
// scope tokens (section 3.3: 1*( %x21 / %x23-5B / %x5D-7E )).
func CheckScopes(field string, scopes []string) error {
	return checkList(field, "scope", scopes, token.MaxScopeLen, token.ValidScope,
		"an RFC 6749 scope token: printable ASCII without spaces, '\"' or '\\'")
}

// CheckAudiences validates an integration's audiences: a non-empty list of distinct identifiers
// of printable ASCII without spaces.
func CheckAudiences(field string, audiences []string) error {
	return checkList(field, "audience", audiences, maxAudience, func(s string) bool {
		return strings.IndexFunc(s, func(r rune) bool { return r < 0x21 || r > 0x7e }) < 0
	}, "printable ASCII without spaces")
}

func checkList(field, what string, items []string, maxLen int, ok func(string) bool, want string) error {
	if len(items) == 0 {
		return fail.Invalidf(field, "%s needs at least one %s", field, what)
	}
	if len(items) > maxListItems {
		return fail.Invalidf(field, "%s has %d entries; at most %d are allowed", field, len(items), maxListItems)
	}
	seen := make(map[string]bool, len(items))
	for i, s := range items {
		switch {
		case s == "":
			return fail.Invalidf(field, "%s[%d] is empty", field, i)
		case len(s) > maxLen:
			return fail.Invalidf(field, "%s[%d] is longer than %d bytes", field, i, maxLen)
		case !ok(s):
			return fail.Invalidf(field, "%s[%d] %q must be %s", field, i, s, want)
		case seen[s]:
			return fail.Invalidf(field, "%s lists %q twice", field, s)
		}
		seen[s] = true
	}
	return nil
}

// optionalReason checks the reason given to a write that does not require one (by CheckReason's
// rules, naming the field "reason") and returns it, or def when none is given, so that every audit
// record says why.
func optionalReason(reason, def string) (string, error) {
	if strings.TrimSpace(reason) == "" {
		return def, nil
	}
	if err := CheckReason("reason", reason); err != nil {
		return "", err
	}
	return reason, nil
}

// checkOptionalReason checks a reason that may be empty, for writes whose default reason is only
// known inside their transaction.
func checkOptionalReason(reason string) error {
	_, err := optionalReason(reason, "")
	return err
}
