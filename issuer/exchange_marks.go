package issuer

import (
	"errors"

	"github.com/treaty-dev/treaty/fail"
)

// MERGE NOTE: this file is a verbatim copy of the refusal marks the oauth branch defines in
// issuer/oauth.go, so that token exchange builds and is tested on its own branch with the same
// API. Delete this file when merging with the oauth branch (the compiler reports the duplicates).

// Marks on refusals, for callers that must tell them apart beyond their fail kind (the OAuth
// error codes): test with errors.Is. A marked error is still a *fail.Error of its kind.
var (
	// ErrInvalidScope marks a requested scope the integration's ceiling does not hold.
	ErrInvalidScope = errors.New("requested scope outside the ceiling")
	// ErrInvalidTarget marks a requested audience (resource) the integration does not list.
	ErrInvalidTarget = errors.New("requested audience not allowed")
	// ErrInvalidGrant marks a refused grant the client presented (a token exchange's subject or
	// actor token): for grant types that carry one.
	ErrInvalidGrant = errors.New("invalid grant")
)

// markedError is a fail error carrying a mark.
type markedError struct {
	err  *fail.Error
	mark error
}

func (e *markedError) Error() string   { return e.err.Error() }
func (e *markedError) Unwrap() []error { return []error{e.err, e.mark} }

// Mark returns err (a fail error, whose kind and message are kept) marked with mark, one of
// ErrInvalidScope, ErrInvalidTarget or ErrInvalidGrant.
func Mark(err *fail.Error, mark error) error { return &markedError{err: err, mark: mark} }
