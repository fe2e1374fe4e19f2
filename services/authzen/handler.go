// Package authzen serves the OpenID AuthZEN Authorization API 1.0 over HTTP in front of the
// policy decision point: access evaluation, batched evaluations with the three evaluation
// semantics, the subject, resource and action search APIs, and the PDP metadata document.
//
// Mapping. A subject is {"type": "workload", "id": WORKLOAD}; a credential may ride in
// subject.properties.token (then the PDP verifies that token, and the decision is a deny unless
// the token's subject is the workload named), with an optional subject.properties.proof object
// ({"dpop", "htm", "htu", "x5t#S256"}) for sender-constrained tokens. Without a token the PDP
// decides on the workload's current grants, which only a trusted caller (Config.Trusted) may ask.
// An action is {"name": SCOPE}; a resource is {"type": "api", "id": AUDIENCE}, whose properties
// reach policy conditions. The context's source_ip and environment reach policy conditions, and
// its min_sequence (a feed sequence, a JSON integer) makes the decision wait until the PDP has
// applied that sequence, or fail with 503 (in a batch, the highest of the evaluations' applies to
// the whole batch, which is decided on one state).
//
// Answers. A deny is HTTP 200 with "decision": false; every decision's context carries reasons
// (machine-readable, see pdp's Reason constants), decision_id and sequence. Errors are JSON
// objects {"error": {"status": N, "message": "..."}}: 400 for a malformed request, 403 for a
// search by an untrusted caller, 404, 405, 413 for a body over the bound, 415 for a body that is
// not application/json, 503 when the PDP cannot answer in time. X-Request-ID is echoed as it
// came and recorded with the decision, bounded and printable (requestid.Printable).
package authzen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/services/requestid"
)

// The API's paths (AuthZEN's default paths, section 11.1).
const (
	PathEvaluation     = "/access/v1/evaluation"
	PathEvaluations    = "/access/v1/evaluations"
	PathSearchSubject  = "/access/v1/search/subject"
	PathSearchResource = "/access/v1/search/resource"
	PathSearchAction   = "/access/v1/search/action"
	PathMetadata       = "/.well-known/authzen-configuration"
)

// DefaultMaxBodyBytes bounds a request body unless Config says otherwise: a full batch of
// evaluations carrying tokens fits several times over.
const DefaultMaxBodyBytes = 1 << 20

// HeaderRequestID is the request identification header the spec recommends.
const HeaderRequestID = "X-Request-ID"

// Config configures the Handler.
type Config struct {
	// PDP makes the decisions and holds the state searches answer from; required. The server
	// assembly runs its Run loop.
	PDP *pdp.PDP
	// BaseURL is the PDP identifier published in the metadata document (policy_decision_point),
	// and the prefix of every endpoint URL in it: an absolute http or https URL without query or
	// fragment, such as "https://pdp.example.com". Required.
	BaseURL string
	// Trusted reports whether a request comes from a caller allowed to ask about a workload
	// without a credential (evaluations without subject.properties.token) and to search. Nil
	// trusts nobody. The server assembly decides, for example from the client certificate.
	Trusted func(*http.Request) bool
	// MaxBodyBytes bounds a request body; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Now returns the current time, for the contract window searches check; default time.Now.
	Now func() time.Time
	// Logger receives internal errors and denies at debug level (never tokens or proofs);
	// defaults to slog.Default().
	Logger *slog.Logger
}

// Handler serves the AuthZEN API. It is an http.Handler, safe for concurrent use.
type Handler struct {
	pdp      *pdp.PDP
	base     string
	trusted  func(*http.Request) bool
	maxBody  int64
	now      func() time.Time
	log      *slog.Logger
	metadata []byte // the metadata document, built once

	subjects atomic.Pointer[workloadIndex] // the sorted workload ids of the last state searched
}

// New returns the handler, or an error if cfg is incomplete.
func New(cfg Config) (*Handler, error) {
	if cfg.PDP == nil {
		return nil, errors.New("authzen: Config.PDP is required")
	}
	base, err := checkBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if cfg.Trusted == nil {
		cfg.Trusted = func(*http.Request) bool { return false }
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{pdp: cfg.PDP, base: base, trusted: cfg.Trusted, maxBody: cfg.MaxBodyBytes, now: cfg.Now,
		log: cfg.Logger.With("service", "authzen")}
	if h.metadata, err = json.Marshal(metadataDocument(base)); err != nil {
		return nil, fmt.Errorf("authzen: metadata document: %w", err)
	}
	return h, nil
}

// checkBaseURL validates the PDP identifier and returns it without a trailing slash, so that
// endpoint URLs join to it cleanly.
func checkBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return "", errors.New("authzen: Config.BaseURL is required: the URL clients reach this API at, such as https://pdp.example.com")
	case err != nil:
		return "", fmt.Errorf("authzen: Config.BaseURL: %w", err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return "", fmt.Errorf("authzen: Config.BaseURL %q must be an absolute https (or http) URL", raw)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("authzen: Config.BaseURL %q must have no query or fragment", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

// route is one endpoint: the method it answers and how.
type route struct {
	method string
	serve  func(h *Handler, w http.ResponseWriter, r *http.Request)
}

var routes = map[string]route{
	PathEvaluation:     {http.MethodPost, (*Handler).evaluation},
	PathEvaluations:    {http.MethodPost, (*Handler).evaluations},
	PathSearchSubject:  {http.MethodPost, (*Handler).searchSubject},
	PathSearchResource: {http.MethodPost, (*Handler).searchResource},
	PathSearchAction:   {http.MethodPost, (*Handler).searchAction},
	PathMetadata:       {http.MethodGet, (*Handler).serveMetadata},
}

// ServeHTTP routes a request to its endpoint, echoing X-Request-ID whatever the outcome.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id := r.Header.Get(HeaderRequestID); id != "" {
		// The spec requires the same identifier back, whatever it holds; what is recorded (the
		// decision log, log lines) is its bounded, printable form, from the request's context.
		w.Header().Set(HeaderRequestID, id)
		r = r.WithContext(requestid.NewContext(r.Context(), requestid.Printable(id)))
	}
	rt, ok := routes[r.URL.Path]
	if !ok {
		writeError(w, http.StatusNotFound, "no AuthZEN endpoint at %q: the endpoints are listed at %s", r.URL.Path, PathMetadata)
		return
	}
	if r.Method != rt.method && !(rt.method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", rt.method)
		writeError(w, http.StatusMethodNotAllowed, "%s accepts %s, not %s", r.URL.Path, rt.method, r.Method)
		return
	}
	rt.serve(h, w, r)
}

// httpError is an error answered with an HTTP status and a message for the caller.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

var errTrailing = errors.New("trailing data after the JSON object")

// decode reads the JSON object in r's body into v, bounded in size. Numbers in untyped values
// (properties) stay json.Number, for convert to tell integers from fractions.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, "the request body must be JSON, sent with Content-Type: application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, h.maxBody))
	dec.UseNumber()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errTrailing
	}
	if err == nil {
		return nil
	}
	var tooLarge *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &tooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "the request body is larger than %d bytes", h.maxBody)
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return errorf(http.StatusBadRequest, "the request body must be a JSON object, not a JSON %s", typeErr.Value)
	case errors.As(err, &typeErr):
		return errorf(http.StatusBadRequest, "%s must be %s, not a JSON %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return errorf(http.StatusBadRequest, "the request body is not valid JSON (at byte %d): %v", syntaxErr.Offset, syntaxErr)
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "the request body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "the request body is not valid JSON: it ends before the object does")
	case errors.Is(err, errTrailing):
		return errorf(http.StatusBadRequest, "the request body must hold one JSON object and nothing after it")
	}
	return errorf(http.StatusBadRequest, "the request body is not a valid JSON object: %v", err)
}

// jsonKind names the JSON type a Go kind is decoded from, for error messages.
func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "struct", "map", "ptr":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "a boolean"
	case "int", "int64", "uint64", "int32", "uint32", "float64":
		return "a number"
	}
	return "another type"
}

// errorBody is the JSON body of every error: the shape AuthZEN uses for errors in evaluations.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, errorBody{Error: errorDetail{Status: status, Message: fmt.Sprintf(format, args...)}})
}

// fault answers an error from decoding, validation or the PDP.
func (h *Handler) fault(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	var fe *fail.Error
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, "%s", he.msg)
	case errors.As(err, &fe) && fe.Kind == fail.Invalid:
		writeError(w, http.StatusBadRequest, "%s", fe.Msg)
	case errors.As(err, &fe) && fe.Kind == fail.Unavailable:
		h.log.Warn("decision unavailable", "err", err, "request_id", recordedID(r))
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "%s", fe.Msg)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "the request ended before the decision point answered")
	default:
		h.log.Error("internal error", "err", err, "request_id", recordedID(r))
		writeError(w, http.StatusInternalServerError, "internal error; the server log has the details")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Every value written here is built by this package from strings and numbers.
		status, body = http.StatusInternalServerError, []byte(`{"error":{"status":500,"message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// recordedID is the request's X-Request-ID as the decision log and log lines record it (see
// ServeHTTP), or "" if it had none.
func recordedID(r *http.Request) string {
	id, _ := requestid.FromContext(r.Context())
	return id
}
