package ssfhttp_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/goleak"

	treatyfeed "github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/services/ssfhttp"
	"github.com/treaty-dev/treaty/ssf"
	"github.com/treaty-dev/treaty/ssf/ssftest"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const receiverToken = "test-receiver-token-0123456789"

// env is a transmitter served over HTTP on loopback, following a real revoker's feed.
type env struct {
	feed   *ssftest.Feed
	tr     *ssf.Transmitter
	issuer string
	client *http.Client
}

// newEnv starts a transmitter over st (a fresh store if nil) behind a real HTTP server whose
// address is the issuer.
func newEnv(t *testing.T, feed *ssftest.Feed, st store.Store) *env {
	t.Helper()
	return newEnvWith(t, feed, st, nil, nil)
}

// newEnvWith is newEnv following src instead of the feed's in-process source (if not nil), with
// edit (if not nil) changing the transmitter's configuration.
func newEnvWith(t *testing.T, feed *ssftest.Feed, st store.Store, src treatyfeed.Source, edit func(*ssf.Config)) *env {
	t.Helper()
	if feed == nil {
		feed = ssftest.NewFeed(t)
	}
	if st == nil {
		st = storetest.OpenBolt(t, ssf.Schema)
	}
	if src == nil {
		src = feed.Source
	}
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	cfg := ssf.Config{
		Issuer: issuer, TokenIssuer: "https://treaty.example.com", Source: src,
		PollWait: 2 * time.Second, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	tr := ssftest.Start(t, st, cfg)
	h, err := ssfhttp.New(ssfhttp.Config{Transmitter: tr, ReceiverToken: receiverToken})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{feed: feed, tr: tr, issuer: issuer, client: srv.Client()}
}

// call makes a request with the receiver token and decodes a JSON answer into out (if non-nil),
// returning the status.
func (e *env) call(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	return e.callAuth(t, "Bearer "+receiverToken, method, url, body, out)
}

func (e *env) callAuth(t *testing.T, auth, method, url string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: answer %s is not JSON: %v", method, url, raw, err)
		}
	}
	return resp.StatusCode
}

// discover fetches the metadata document and the JWKS it names, as a receiver does.
func (e *env) discover(t *testing.T) (ssf.Metadata, jose.JSONWebKeySet) {
	t.Helper()
	var md ssf.Metadata
	if code := e.callAuth(t, "", http.MethodGet, e.issuer+"/.well-known/ssf-configuration", nil, &md); code != http.StatusOK {
		t.Fatalf("GET metadata = %d", code)
	}
	if md.Issuer != e.issuer {
		t.Fatalf("metadata issuer = %q, want the URL it was fetched from %q", md.Issuer, e.issuer)
	}
	var jwks jose.JSONWebKeySet
	if code := e.callAuth(t, "", http.MethodGet, md.JWKSURI, nil, &jwks); code != http.StatusOK {
		t.Fatalf("GET jwks_uri = %d", code)
	}
	return md, jwks
}
