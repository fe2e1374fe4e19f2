package ssfhttp_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/ssf"
	"github.com/treaty-dev/treaty/ssf/ssftest"
)

// TestPollWithAcks: a stream created without delivery is polled (SSF 1.0 section 8.1.1.1);
// polled SETs stay until acknowledged, maxEvents bounds an answer, and a long poll returns as
// soon as a SET arrives.
func TestPollWithAcks(t *testing.T) {
	e := newEnv(t, nil, nil)
	md, jwks := e.discover(t)
	var cfg ssf.StreamConfig
	if code := e.call(t, http.MethodPost, md.ConfigurationEndpoint, map[string]any{}, &cfg); code != http.StatusCreated {
		t.Fatalf("create stream = %d", code)
	}
	if cfg.Delivery.Method != ssf.MethodPoll || cfg.Delivery.EndpointURL != e.issuer+"/ssf/poll/"+cfg.StreamID {
		t.Fatalf("delivery = %+v, want poll at the transmitter's endpoint", cfg.Delivery)
	}
	poll := func(req map[string]any) ssf.PollResponse {
		t.Helper()
		var resp ssf.PollResponse
		if code := e.call(t, http.MethodPost, cfg.Delivery.EndpointURL, req, &resp); code != http.StatusOK {
			t.Fatalf("poll = %d", code)
		}
		return resp
	}

	if got := poll(map[string]any{"returnImmediately": true}); len(got.Sets) != 0 || got.MoreAvailable {
		t.Fatalf("empty stream polled %+v", got)
	}
	for i := range 3 {
		e.feed.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, fmt.Sprintf("tok-%04d", i))
	}
	waitQueued(t, e.tr, cfg.StreamID, 3)

	first := poll(map[string]any{"maxEvents": 2, "returnImmediately": true})
	if len(first.Sets) != 2 || !first.MoreAvailable {
		t.Fatalf("poll maxEvents 2 = %d SETs, moreAvailable %v; want 2, true", len(first.Sets), first.MoreAvailable)
	}
	for jti, raw := range first.Sets {
		s := ssftest.Verify(t, raw, jwks)
		checkSET(t, s, e.issuer, cfg.Aud)
		if s.Claims["jti"] != jti {
			t.Fatalf("sets key %s holds the SET with jti %v", jti, s.Claims["jti"])
		}
	}
	// Unacknowledged SETs come back.
	again := poll(map[string]any{"maxEvents": 2, "returnImmediately": true})
	if !sameKeys(first.Sets, again.Sets) {
		t.Fatalf("unacknowledged SETs were not returned again")
	}
	rest := poll(map[string]any{"ack": keys(first.Sets), "returnImmediately": true})
	if len(rest.Sets) != 1 || rest.MoreAvailable {
		t.Fatalf("after acking 2 of 3, poll = %d SETs, moreAvailable %v", len(rest.Sets), rest.MoreAvailable)
	}
	// Acknowledge-only.
	if got := poll(map[string]any{"ack": keys(rest.Sets), "maxEvents": 0}); len(got.Sets) != 0 {
		t.Fatalf("ack-only poll returned %d SETs", len(got.Sets))
	}

	// A long poll waits for the next SET.
	done := make(chan ssf.PollResponse, 1)
	go func() {
		var resp ssf.PollResponse
		e.call(t, http.MethodPost, cfg.Delivery.EndpointURL, map[string]any{}, &resp)
		done <- resp
	}()
	time.Sleep(100 * time.Millisecond)
	e.feed.Revoke(t, treatyv1.TargetKind_TARGET_KIND_WORKLOAD, ssftest.Workload)
	var longPolled []string
	select {
	case got := <-done:
		if len(got.Sets) != 1 {
			t.Fatalf("long poll returned %d SETs, want 1", len(got.Sets))
		}
		for _, raw := range got.Sets {
			if typ, _ := ssftest.Verify(t, raw, jwks).EventType(t); typ != ssf.EventSessionRevoked {
				t.Fatalf("long poll SET is %s", typ)
			}
		}
		longPolled = keys(got.Sets)
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not return")
	}
	// With nothing left, a long poll ends at its bound (2 s here) with an empty answer; unknown
	// jtis in ack are ignored.
	start := time.Now()
	last := poll(map[string]any{"ack": append(longPolled, "unknown-jti"), "maxEvents": 5})
	if len(last.Sets) != 0 || last.MoreAvailable {
		t.Fatalf("bounded long poll on an empty stream = %+v", last)
	}
	if time.Since(start) < time.Second {
		t.Fatalf("long poll returned after %v, before its bound", time.Since(start))
	}
}

// TestPausedStreamHoldsEvents: a paused stream returns nothing but keeps its SETs; enabling it
// releases them. Disabling drops them.
func TestPausedStreamHoldsEvents(t *testing.T) {
	e := newEnv(t, nil, nil)
	var cfg ssf.StreamConfig
	e.call(t, http.MethodPost, e.issuer+"/ssf/stream", map[string]any{"delivery": map[string]string{"method": ssf.MethodPoll}}, &cfg)
	setStatus := func(status string) {
		t.Helper()
		var got ssf.StreamStatus
		if code := e.call(t, http.MethodPost, e.issuer+"/ssf/status", map[string]string{"stream_id": cfg.StreamID, "status": status, "reason": "test"}, &got); code != http.StatusOK || got.Status != status {
			t.Fatalf("set status %s = %d %+v", status, code, got)
		}
		var read ssf.StreamStatus
		if code := e.call(t, http.MethodGet, e.issuer+"/ssf/status?stream_id="+cfg.StreamID, nil, &read); code != http.StatusOK || read.Status != status {
			t.Fatalf("read status = %d %+v, want %s", code, read, status)
		}
	}
	pollNow := func() int {
		var resp ssf.PollResponse
		e.call(t, http.MethodPost, cfg.Delivery.EndpointURL, map[string]any{"returnImmediately": true}, &resp)
		return len(resp.Sets)
	}
	setStatus(ssf.StatusPaused)
	e.feed.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, "tok-paused")
	waitQueued(t, e.tr, cfg.StreamID, 1)
	if n := pollNow(); n != 0 {
		t.Fatalf("paused stream returned %d SETs", n)
	}
	setStatus(ssf.StatusEnabled)
	if n := pollNow(); n != 1 {
		t.Fatalf("re-enabled stream returned %d SETs, want the 1 held", n)
	}
	setStatus(ssf.StatusDisabled)
	if n, _ := e.tr.Queued(t.Context(), cfg.StreamID); n != 0 {
		t.Fatalf("disabled stream still holds %d SETs", n)
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sameKeys(a, b map[string]string) bool {
	ka, kb := keys(a), keys(b)
	if len(ka) != len(kb) {
		return false
	}
	for i := range ka {
		if ka[i] != kb[i] {
			return false
		}
	}
	return true
}

func sleepShort() { time.Sleep(25 * time.Millisecond) }

// canonical renders a decoded JSON value with sorted keys, for comparison.
func canonical(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
