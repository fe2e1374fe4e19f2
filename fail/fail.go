// Package fail gives domain packages a small vocabulary of error kinds, so that they can say what
// went wrong without knowing gRPC. The service edge turns each kind into one status code; the message
// is written for the person who has to act on it.
package fail

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the caller can do about it.
type Kind int

// The kinds, each mapping to one gRPC status code at the service edge.
const (
	// Internal is a bug or an unexpected fault; its message is not shown to callers.
	Internal Kind = iota
	// Invalid means the request is malformed (INVALID_ARGUMENT).
	Invalid
	// NotFound means a named thing does not exist (NOT_FOUND).
	NotFound
	// AlreadyExists means a thing with that id exists already (ALREADY_EXISTS).
	AlreadyExists
	// Precondition means the request is well-formed but the current state forbids it
	// (FAILED_PRECONDITION).
	Precondition
	// Denied means the caller is not allowed to do this (PERMISSION_DENIED).
	Denied
	// Unauthenticated means the caller could not be authenticated (UNAUTHENTICATED).
	Unauthenticated
	// Unavailable means the answer cannot be given now; retrying later may work (UNAVAILABLE).
	Unavailable
	// OutOfRange means the request names a position past what is kept, such as a feed sequence
	// already compacted (OUT_OF_RANGE).
	OutOfRange
	// Aborted means the request lost a race with another change, such as an update carrying a
	// stale etag; read again and retry (ABORTED).
	Aborted
)

// Error is an error with a kind and a message meant for the caller.
type Error struct {
	Kind Kind
	// Field names the request field at fault, for Invalid errors.
	Field string
	Msg   string
	// Err is the underlying cause, kept for logs and errors.Is; never shown to callers.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func newf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// Invalidf reports a malformed request field. The message should name the field and say what is
// expected.
func Invalidf(field, format string, args ...any) *Error {
	e := newf(Invalid, format, args...)
	e.Field = field
	return e
}

// NotFoundf reports a missing thing.
func NotFoundf(format string, args ...any) *Error { return newf(NotFound, format, args...) }

// AlreadyExistsf reports a duplicate id.
func AlreadyExistsf(format string, args ...any) *Error { return newf(AlreadyExists, format, args...) }

// Preconditionf reports a request the current state forbids.
func Preconditionf(format string, args ...any) *Error { return newf(Precondition, format, args...) }

// Deniedf reports a refusal.
func Deniedf(format string, args ...any) *Error { return newf(Denied, format, args...) }

// Unauthenticatedf reports a caller that could not be authenticated. Keep the message free of
// secrets: it goes back to the caller.
func Unauthenticatedf(format string, args ...any) *Error {
	return newf(Unauthenticated, format, args...)
}

// Unavailablef reports that the answer cannot be given now, keeping the cause for logs.
func Unavailablef(cause error, format string, args ...any) *Error {
	e := newf(Unavailable, format, args...)
	e.Err = cause
	return e
}

// OutOfRangef reports a position outside what is kept.
func OutOfRangef(format string, args ...any) *Error { return newf(OutOfRange, format, args...) }

// Abortedf reports a lost race with a concurrent change, such as a stale etag.
func Abortedf(format string, args ...any) *Error { return newf(Aborted, format, args...) }

// KindOf returns the kind of err: the kind of the first *Error in its chain, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}
