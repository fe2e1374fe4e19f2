package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// checkLog is what a steady load of checks saw: each call's start, decision, reasons or error.
type checkLog struct {
	mu    sync.Mutex
	calls []checkCall
}

type checkCall struct {
	start   time.Time
	allow   bool
	reasons []string
	err     error
}

func (l *checkLog) add(c checkCall) { l.mu.Lock(); l.calls = append(l.calls, c); l.mu.Unlock() }

func (l *checkLog) since(t time.Time) []checkCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []checkCall
	for _, c := range l.calls {
		if !c.start.Before(t) {
			out = append(out, c)
		}
	}
	return out
}

// TestPDPFailsClosedWhileRevokerDown runs the revoker alone in one process and the registry,
// issuer and PDP in another, each with its own data folder, and keeps four callers checking an
// allowed credential throughout. The revoker is killed with SIGKILL: once the staleness bound has
// passed every decision is a deny with reason stale (never an allow, never an RPC error). The
// revoker restarts on the same address and data, and the PDP recovers by itself: allows again,
// and a credential revoked after the recovery is denied.
func TestPDPFailsClosedWhileRevokerDown(t *testing.T) {
	t.Parallel()
	const bound = 2 * time.Second
	revAddr, pdpAddr := freeAddr(t), freeAddr(t)
	revoker := startServer(t, revAddr, "--data", filepath.Join(t.TempDir(), "revoker"), "--services", "revoker",
		"--issuer", pdpAddr, "--heartbeat", "200ms")
	startServer(t, pdpAddr, "--data", filepath.Join(t.TempDir(), "rest"), "--services", "registry,issuer,pdp",
		"--revoker", revAddr, "--staleness-bound", bound.String())
	o := &operator{t: t, d: deployment{env: []string{"TREATY_SERVER=" + pdpAddr, "TREATY_REVOKER=" + revAddr}}, dir: t.TempDir()}
	key := o.onboard("acme")
	tok := o.token("acme", key)
	o.wantReason(o.check(tok, "orders.read", "orders-api", true, 0), "granted")

	pdp := treatyv1.NewDecisionServiceClient(dial(t, pdpAddr))
	var log checkLog
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				c := checkCall{start: time.Now()}
				cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := pdp.Check(cctx, &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: tok},
					Action: "orders.read", Resource: "orders-api"})
				cancel()
				c.err, c.allow, c.reasons = err, resp.GetDecision() == treatyv1.Decision_DECISION_ALLOW, resp.GetReasons()
				log.add(c)
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	defer func() { stop(); wg.Wait() }()

	time.Sleep(time.Second)
	killed := time.Now()
	revoker.kill()
	// Past the bound (plus a margin for scheduling on a loaded machine), every decision is stale.
	staleFrom := killed.Add(bound + time.Second)
	time.Sleep(time.Until(staleFrom) + 3*time.Second)
	restarting := time.Now()
	revoker.start()

	// The PDP recovers by itself: allows again within a generous wait.
	var recovered time.Time
	for deadline := time.Now().Add(30 * time.Second); recovered.IsZero(); time.Sleep(50 * time.Millisecond) {
		for _, c := range log.since(restarting) {
			if c.allow {
				recovered = c.start
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the PDP did not allow again within 30s of the revoker's restart")
		}
	}
	time.Sleep(time.Second)
	stop()
	wg.Wait()

	var errs, allowsStale, stale int
	for _, c := range log.since(time.Time{}) {
		switch {
		case c.err != nil:
			errs++
			if errs == 1 {
				t.Errorf("check started %s after the kill failed: %v", c.start.Sub(killed), c.err)
			}
		case !c.start.Before(staleFrom) && c.start.Before(restarting) && (c.allow || !slices.Contains(c.reasons, "stale")):
			allowsStale++
			if allowsStale == 1 {
				t.Errorf("check started %s after the kill (bound %s): allow %v, reasons %v; want deny, stale", c.start.Sub(killed), bound, c.allow, c.reasons)
			}
		case !c.start.Before(staleFrom) && c.start.Before(restarting):
			stale++
		}
	}
	if errs > 0 || allowsStale > 0 {
		t.Fatalf("%d RPC errors, %d decisions in the stale window that were not deny/stale", errs, allowsStale)
	}
	if stale < 20 {
		t.Fatalf("only %d checks in the stale window; the test proves little", stale)
	}
	after := log.since(recovered.Add(500 * time.Millisecond))
	for _, c := range after {
		if !c.allow {
			t.Fatalf("check %s after the recovery: deny %v", c.start.Sub(recovered), c.reasons)
		}
	}
	t.Logf("%d checks; %d deny/stale after the bound; allowed again %s after the restart began",
		len(log.since(time.Time{})), stale, recovered.Sub(restarting).Round(time.Millisecond))

	// A credential revoked now is denied: the PDP follows the feed again.
	seq := sequenceOf(t, o.json(0, "revoke", "credential", "--reason", "after recovery", "--", jtiOf(t, tok))) // a jti may begin with '-'
	o.wantReason(o.check(tok, "orders.read", "orders-api", false, seq), "revoked")
}

// jtiOf returns the jti claim of a JWT.
func jtiOf(t *testing.T, jwt string) string {
	t.Helper()
	var claims struct {
		JTI string `json:"jti"`
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &claims); err != nil || claims.JTI == "" {
		t.Fatalf("token claims %s: %v", raw, err)
	}
	return claims.JTI
}
