// Package ssfhttp serves Treaty's Shared Signals Framework 1.0 transmitter over HTTP: the
// transmitter metadata at /.well-known/ssf-configuration, the signing keys at the jwks_uri, the
// stream configuration, status and verification endpoints, and the RFC 8936 poll endpoint.
//
// Authentication. The metadata and the JWKS are public. Every other endpoint requires the
// receiver token configured for the transmitter, sent as "Authorization: Bearer TOKEN" (RFC 6750
// section 2.1; never in the query). A missing or wrong token is 401 with a WWW-Authenticate
// challenge. Finer roles per receiver come later (issue 7); until then every receiver holding the
// token manages every stream.
//
// Errors are JSON objects {"err": CODE, "description": TEXT} in the RFC 8935/8936 error shape:
// 400 for a malformed request, 401, 404 for an unknown stream, 405, 409 for a request the stream's
// state refuses, 413 for a body over the bound, 415 for a body that is not JSON, 429 for a
// verification request inside the stream's min_verification_interval.
package ssfhttp

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strings"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/ssf"
)

// DefaultMaxBodyBytes bounds a request body unless Config says otherwise.
const DefaultMaxBodyBytes = 256 << 10

// Config configures the Handler.
type Config struct {
	// Transmitter is the SSF transmitter; required. The server assembly runs its Run loop.
	Transmitter *ssf.Transmitter
	// ReceiverToken is the bearer token receivers present to the management and poll endpoints;
	// required (at least 16 bytes), so the endpoints are never open by accident.
	ReceiverToken string
	// MaxBodyBytes bounds a request body; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives internal errors (never tokens or SETs); defaults to slog.Default().
	Logger *slog.Logger
}

// Handler serves the SSF API. It is an http.Handler, safe for concurrent use.
type Handler struct {
	tr       *ssf.Transmitter
	token    [32]byte // SHA-256 of the receiver token, compared in constant time
	maxBody  int64
	log      *slog.Logger
	paths    ssf.Endpoints
	metadata []byte
	jwks     []byte
}

// MinTokenBytes is the shortest receiver token accepted.
const MinTokenBytes = 16

// New returns the handler, or an error if cfg is incomplete.
func New(cfg Config) (*Handler, error) {
	if cfg.Transmitter == nil {
		return nil, errors.New("ssfhttp: Config.Transmitter is required")
	}
	if len(cfg.ReceiverToken) < MinTokenBytes {
		return nil, fmt.Errorf("ssfhttp: Config.ReceiverToken is required, at least %d bytes", MinTokenBytes)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{tr: cfg.Transmitter, token: sha256.Sum256([]byte(cfg.ReceiverToken)), maxBody: cfg.MaxBodyBytes,
		log: cfg.Logger.With("service", "ssf"), paths: cfg.Transmitter.Paths()}
	var err error
	if h.metadata, err = json.Marshal(cfg.Transmitter.Metadata()); err != nil {
		return nil, fmt.Errorf("ssfhttp: metadata: %w", err)
	}
	if h.jwks, err = json.Marshal(cfg.Transmitter.JWKS()); err != nil {
		return nil, fmt.Errorf("ssfhttp: jwks: %w", err)
	}
	return h, nil
}

// Register mounts the handler on mux at its paths, so it can share a server with other APIs.
func (h *Handler) Register(mux *http.ServeMux) {
	for _, p := range []string{h.paths.WellKnown, h.paths.JWKS, h.paths.Configuration, h.paths.Status, h.paths.Verification, h.paths.PollPrefix} {
		mux.Handle(p, h)
	}
}

// ServeHTTP routes a request to its endpoint.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == h.paths.WellKnown:
		h.public(w, r, h.metadata)
	case p == h.paths.JWKS:
		h.public(w, r, h.jwks)
	case p == h.paths.Configuration:
		if h.authorized(w, r) {
			h.configuration(w, r)
		}
	case p == h.paths.Status:
		if h.authorized(w, r) {
			h.status(w, r)
		}
	case p == h.paths.Verification:
		if h.authorized(w, r) && allow(w, r, http.MethodPost) {
			h.verify(w, r)
		}
	case strings.HasPrefix(p, h.paths.PollPrefix):
		if h.authorized(w, r) && allow(w, r, http.MethodPost) {
			h.poll(w, r, strings.TrimPrefix(p, h.paths.PollPrefix))
		}
	default:
		writeError(w, http.StatusNotFound, "not_found", "no SSF endpoint here: the endpoints are listed at "+h.paths.WellKnown)
	}
}

// public serves a fixed JSON document to anyone.
func (h *Handler) public(w http.ResponseWriter, r *http.Request, doc []byte) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "invalid_request", r.Method+" is not allowed here")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(doc)
	}
}

// authorized checks the receiver's bearer token, answering 401 when it is missing or wrong.
func (h *Handler) authorized(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ssf"`)
		writeError(w, http.StatusUnauthorized, "authentication_failed", "send the receiver token as Authorization: Bearer TOKEN")
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if subtle.ConstantTimeCompare(sum[:], h.token[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ssf", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "authentication_failed", "the bearer token is not valid")
		return false
	}
	return true
}

func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, "invalid_request", r.Method+" is not allowed here")
	return false
}

// body reads a bounded request body. A body must be JSON; an empty one is allowed where the
// caller accepts it.
func (h *Handler) body(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "invalid_request", "the request body must be JSON, sent with Content-Type: application/json")
			return nil, false
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", fmt.Sprintf("the request body is larger than %d bytes", h.maxBody))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid_request", "the request body could not be read")
		return nil, false
	}
	return b, true
}

// errorBody is the RFC 8935 section 2.3 / RFC 8936 error shape.
type errorBody struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, errorBody{Err: code, Description: desc})
}

// fault answers an error from the transmitter.
func (h *Handler) fault(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ssf.ErrTooFrequent) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "too_many_requests", "verification was requested too recently; see the stream's min_verification_interval")
		return
	}
	var fe *fail.Error
	if !errors.As(err, &fe) {
		h.log.Error("ssf: internal error", "err", err, "path", r.URL.Path)
		writeError(w, http.StatusInternalServerError, "internal_error", "internal error; the server log has the details")
		return
	}
	switch fe.Kind {
	case fail.Invalid:
		writeError(w, http.StatusBadRequest, "invalid_request", fe.Msg)
	case fail.NotFound:
		writeError(w, http.StatusNotFound, "not_found", fe.Msg)
	case fail.Precondition, fail.AlreadyExists:
		writeError(w, http.StatusConflict, "invalid_request", fe.Msg)
	case fail.Unavailable:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "unavailable", fe.Msg)
	default:
		h.log.Error("ssf: internal error", "err", err, "path", r.URL.Path)
		writeError(w, http.StatusInternalServerError, "internal_error", "internal error; the server log has the details")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"err":"internal_error","description":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// ReadToken reads the receiver token from a file, for a flag such as --ssf-receiver-token-file
// that keeps the secret off the command line: the file's content with surrounding whitespace
// removed. The error never includes the content.
func ReadToken(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("ssf receiver token: %w", err)
	}
	tok := strings.TrimSpace(string(raw))
	if len(tok) < MinTokenBytes || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("ssf receiver token in %s must be one line of at least %d bytes without spaces", path, MinTokenBytes)
	}
	return tok, nil
}
