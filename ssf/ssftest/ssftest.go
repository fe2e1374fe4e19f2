// Package ssftest helps tests run the SSF transmitter against real parts: a real revoker log
// with a partner, integration, workload and signing key in its feed; an in-process feed source
// over it; and a push receiver on a loopback HTTP server that records SETs and verifies their
// signatures against the transmitter's JWKS.
package ssftest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/ssf"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// The entities NewFeed publishes.
const (
	Partner     = "acme"
	Integration = "acme-crm"
	Workload    = "acme-crm-sync"
	KeyID       = "key-1"
)

// Feed is a real revoker log and an in-process feed.Source over it.
type Feed struct {
	Log    *revoker.Log
	Source *pdptest.Source
	path   string
}

// NewFeed opens a revoker log in t's temp folder and publishes an active partner, integration,
// workload and a signing key, so each kind can be revoked.
func NewFeed(t testing.TB) *Feed {
	t.Helper()
	return NewFeedAt(t, filepath.Join(t.TempDir(), "revoker.db"))
}

// NewFeedAt is NewFeed with the log's store at path, so a test can copy it.
func NewFeedAt(t testing.TB, path string) *Feed {
	t.Helper()
	f := OpenFeedAt(t, path)
	pdptest.Publish(t, f.Log,
		pdptest.Partner(Partner, treatyv1.PartnerState_PARTNER_STATE_ACTIVE, pdptest.ContractEnd),
		pdptest.Integration(Integration, Partner, treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE, []string{"crm.read"}, []string{"https://api.example.com"}),
		pdptest.Workload(Workload, Integration, Partner, treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE),
		pdptest.NewKey(t, KeyID).Published(t),
	)
	return f
}

// OpenFeedAt opens the revoker log stored at path as it is.
func OpenFeedAt(t testing.TB, path string) *Feed {
	t.Helper()
	st := storetest.OpenBoltAt(t, path, revoker.Schema)
	log, err := revoker.Open(st, revoker.Config{})
	if err != nil {
		t.Fatalf("open revoker: %v", err)
	}
	return &Feed{Log: log, Source: pdptest.NewSource(log, 50*time.Millisecond), path: path}
}

// CopyStore copies the feed's store file to path, as a backup would. The file is consistent
// between appends (each is one committed transaction), so the caller must not append meanwhile.
func CopyStore(t testing.TB, f *Feed, path string) {
	t.Helper()
	raw, err := os.ReadFile(f.path)
	if err == nil {
		err = os.WriteFile(path, raw, 0o600)
	}
	if err != nil {
		t.Fatalf("copy revoker store: %v", err)
	}
}

// Revoke applies a kill-switch request with a reason and returns its sequence.
func (f *Feed) Revoke(t testing.TB, kind treatyv1.TargetKind, target string) uint64 {
	t.Helper()
	return pdptest.Revoke(t, f.Log, kind, target)
}

// Start opens a transmitter over st with cfg (Source defaulting to the feed's), runs it, and
// closes it at cleanup (before st, which the caller opened earlier).
func Start(t testing.TB, st store.Store, cfg ssf.Config) *ssf.Transmitter {
	t.Helper()
	tr, err := ssf.Open(st, cfg)
	if err != nil {
		t.Fatalf("ssf.Open: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := tr.Run(context.Background()); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { tr.Close(); <-done })
	return tr
}

// Receiver is a push endpoint (RFC 8935) on a loopback HTTP server. It answers 503 to the first
// FailFirst deliveries, then 202, and records every SET it accepted, in order.
type Receiver struct {
	URL string

	mu        sync.Mutex
	failLeft  int
	attempts  int
	sets      []string
	auth      []string
	arrived   chan struct{}
	wrongType int
}

// NewReceiver starts a receiver that fails its first failFirst deliveries.
func NewReceiver(t testing.TB, failFirst int) *Receiver {
	t.Helper()
	r := &Receiver{failLeft: failFirst, arrived: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/events"
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if req.Header.Get("Content-Type") != "application/secevent+jwt" {
		r.wrongType++
	}
	if r.failLeft > 0 {
		r.failLeft--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	r.sets = append(r.sets, string(body))
	r.auth = append(r.auth, req.Header.Get("Authorization"))
	w.WriteHeader(http.StatusAccepted)
	select {
	case r.arrived <- struct{}{}:
	default:
	}
}

// Attempts returns how many deliveries were tried, failed ones included.
func (r *Receiver) Attempts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts
}

// Authorization returns the Authorization headers of the accepted deliveries.
func (r *Receiver) Authorization() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auth...)
}

// WrongContentType counts deliveries without Content-Type application/secevent+jwt.
func (r *Receiver) WrongContentType() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wrongType
}

// WaitSETs waits (up to 20 s) until n SETs were accepted, and returns them in arrival order.
func (r *Receiver) WaitSETs(t testing.TB, n int) []string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		got := append([]string(nil), r.sets...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.arrived:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("receiver got %d SETs, want %d", len(got), n)
		}
	}
}

// SET is a verified SET.
type SET struct {
	Type   string // the typ header
	KeyID  string
	Claims map[string]any
}

// EventType returns the SET's only event type and its object; it fails the test unless there
// is exactly one.
func (s SET) EventType(t testing.TB) (string, map[string]any) {
	t.Helper()
	events, _ := s.Claims["events"].(map[string]any)
	if len(events) != 1 {
		t.Fatalf("events claim has %d events, want exactly 1: %v", len(events), s.Claims["events"])
	}
	for k, v := range events {
		obj, _ := v.(map[string]any)
		return k, obj
	}
	return "", nil
}

// Verify checks a compact SET's RS256 signature against jwks (by kid) and returns its header
// and claims. It fails the test on any defect.
func Verify(t testing.TB, compact string, jwks jose.JSONWebKeySet) SET {
	t.Helper()
	jws, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse SET: %v", err)
	}
	if len(jws.Signatures) != 1 {
		t.Fatalf("SET has %d signatures", len(jws.Signatures))
	}
	h := jws.Signatures[0].Header
	keys := jwks.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("SET kid %q matches %d keys of the JWKS", h.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("SET signature does not verify against the JWKS: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("SET payload: %v", err)
	}
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	return SET{Type: typ, KeyID: h.KeyID, Claims: claims}
}
