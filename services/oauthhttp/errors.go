package oauthhttp

import (
	"errors"
	"net/http"
	"strings"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/issuer"
)

// The OAuth error codes (RFC 6749 §5.2, RFC 8707 §2, RFC 7009 §2.2.1).
const (
	errInvalidRequest       = "invalid_request"
	errInvalidClient        = "invalid_client"
	errUnauthorizedClient   = "unauthorized_client"
	errUnsupportedGrantType = "unsupported_grant_type"
	errInvalidScope         = "invalid_scope"
	errInvalidTarget        = "invalid_target"
	errInvalidDPoPProof     = "invalid_dpop_proof" // RFC 9449 §5
	errUnavailable          = "temporarily_unavailable"
	errServer               = "server_error"
)

// oauthError is an error response: status, code and a description for the client's developer.
type oauthError struct {
	status      int
	code        string
	description string
}

// toOAuth maps an issuer error to its OAuth error (see the package documentation for the
// reasoning). Descriptions are the issuer's messages, which never hold a secret; internal errors
// are described generically.
func toOAuth(err error) oauthError {
	msg := err.Error()
	var fe *fail.Error
	if errors.As(err, &fe) {
		msg = fe.Msg // never the cause: it may name peers and addresses
	}
	switch kind := fail.KindOf(err); {
	case errors.Is(err, issuer.ErrInvalidScope):
		return oauthError{http.StatusBadRequest, errInvalidScope, msg}
	case errors.Is(err, issuer.ErrInvalidTarget):
		return oauthError{http.StatusBadRequest, errInvalidTarget, msg}
	case errors.Is(err, issuer.ErrInvalidGrant):
		// RFC 8693 section 2.2.2: an invalid or unacceptable subject token is invalid_request.
		return oauthError{http.StatusBadRequest, errInvalidRequest, msg}
	case errors.Is(err, issuer.ErrInvalidDPoPProof):
		return oauthError{http.StatusBadRequest, errInvalidDPoPProof, msg}
	case errors.Is(err, issuer.ErrUnauthorizedClient):
		return oauthError{http.StatusBadRequest, errUnauthorizedClient, msg}
	case kind == fail.Unauthenticated:
		return oauthError{http.StatusUnauthorized, errInvalidClient, msg}
	case kind == fail.Invalid && fe.Field == "scopes":
		return oauthError{http.StatusBadRequest, errInvalidScope, msg}
	case kind == fail.Invalid && fe.Field == "audience":
		return oauthError{http.StatusBadRequest, errInvalidTarget, msg}
	case kind == fail.Invalid, kind == fail.OutOfRange:
		return oauthError{http.StatusBadRequest, errInvalidRequest, msg}
	case kind == fail.Denied, kind == fail.Precondition, kind == fail.NotFound:
		// The client authenticated; it may not obtain credentials now.
		return oauthError{http.StatusBadRequest, errUnauthorizedClient, msg}
	case kind == fail.Unavailable:
		return oauthError{http.StatusServiceUnavailable, errUnavailable, msg}
	}
	return oauthError{http.StatusInternalServerError, errServer, "the token could not be issued; the server logged why"}
}

// fail writes err as an OAuth error response, logging internal errors.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	oe := toOAuth(err)
	if oe.status == http.StatusInternalServerError {
		h.log.Error("oauth: internal error", "err", err)
	}
	if oe.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, oe.status, oe.code, oe.description)
}

// writeError writes an RFC 6749 §5.2 error response. A 401 carries a Basic challenge (RFC 6749
// requires one matching the scheme a client authenticated with; Basic is the only HTTP scheme a
// client uses here).
func writeError(w http.ResponseWriter, status int, code, description string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="treaty", charset="UTF-8"`)
	}
	body := map[string]string{"error": code}
	if description != "" {
		body["error_description"] = descriptionChars(description)
	}
	writeJSON(w, status, body)
}

// descriptionChars keeps a description inside the characters RFC 6749 allows in
// error_description (printable ASCII without double quotes and backslashes).
func descriptionChars(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\':
			return '/'
		case r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, s)
}
