package fail

import "regexp"

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
		return Invalidf(field, "%s %q is not a valid id: use 1-63 lower-case letters, digits and dashes, starting with a letter or digit", field, id)
	}
	return nil
}
