package pdp_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
)

// memoized checks tok twice (the first decision verifies and caches it, the second grants on the
// full path and makes the grant memo for the current state), and fails unless the memo is there.
func memoized(t *testing.T, e *env, tok string) {
	t.Helper()
	for range 2 {
		if got := reason(t, e.check(t, tok, "read", "api")); got != pdp.ReasonGranted {
			t.Fatalf("before: %s", got)
		}
	}
	s, err := e.pdp.StateAt(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := pdp.MemoStateID(e.pdp, tok); got != s.ID() {
		t.Fatalf("memo made on state %d, the PDP's state is %d", got, s.ID())
	}
}

// A grant memo never outlives the state it was made on: after any change that denies, the very
// next decision on a token cached and memoized before the change denies, with the reason the full
// path gives.
func TestMemoDiesWithItsState(t *testing.T) {
	suspended := treatyv1.PartnerState_PARTNER_STATE_SUSPENDED
	cases := []struct {
		name   string
		change func(t *testing.T, e *env, tok string)
		action string
		want   string
	}{
		{name: "credential revoked", change: func(t *testing.T, e *env, tok string) { pdptest.Revoke(t, e.log, credentialK, jtiOf(t, e, tok)) }, want: pdp.ReasonRevoked},
		{name: "key revoked", change: func(t *testing.T, e *env, _ string) { pdptest.Revoke(t, e.log, keyK, "k1") }, want: pdp.ReasonKeyRevoked},
		{name: "partner blocked", change: func(t *testing.T, e *env, _ string) { pdptest.Revoke(t, e.log, partnerK, "acme") }, want: pdp.ReasonPartnerBlocked},
		{name: "integration blocked", change: func(t *testing.T, e *env, _ string) { pdptest.Revoke(t, e.log, integrationK, "acme-api") }, want: pdp.ReasonIntegrationBlocked},
		{name: "workload blocked", change: func(t *testing.T, e *env, _ string) { pdptest.Revoke(t, e.log, workloadK, "acme-bot") }, want: pdp.ReasonWorkloadBlocked},
		{name: "partner blocked and restored: the watermark", change: func(t *testing.T, e *env, _ string) {
			pdptest.Revoke(t, e.log, partnerK, "acme")
			pdptest.Restore(t, e.log, partnerK, "acme")
		}, want: pdp.ReasonPartnerRevoked},
		{name: "ceiling narrowed", change: func(t *testing.T, e *env, _ string) {
			pdptest.Publish(t, e.log, pdptest.Integration("acme-api", "acme", integrationActive, []string{"write"}, []string{"api"}))
		}, want: pdp.ReasonScopeNotAllowed},
		{name: "ceiling narrowed, the other scope still granted", change: func(t *testing.T, e *env, _ string) {
			pdptest.Publish(t, e.log, pdptest.Integration("acme-api", "acme", integrationActive, []string{"read"}, []string{"api"}))
		}, action: "write", want: pdp.ReasonScopeNotAllowed},
		{name: "audience withdrawn", change: func(t *testing.T, e *env, _ string) {
			pdptest.Publish(t, e.log, pdptest.Integration("acme-api", "acme", integrationActive, []string{"read", "write"}, []string{"other"}))
		}, want: pdp.ReasonAudienceNotAllowed},
		{name: "partner suspended", change: func(t *testing.T, e *env, _ string) {
			pdptest.Publish(t, e.log, pdptest.Partner("acme", suspended, pdptest.ContractEnd))
		}, want: pdp.ReasonPartnerSuspended},
		{name: "contract cut short", change: func(t *testing.T, e *env, _ string) {
			pdptest.Publish(t, e.log, pdptest.Partner("acme", partnerActive, time.Now().Add(-time.Minute)))
		}, want: pdp.ReasonContractEnded},
		{name: "integration suspended", change: func(t *testing.T, e *env, _ string) {
			pdptest.Publish(t, e.log, pdptest.Integration("acme-api", "acme", treatyv1.IntegrationState_INTEGRATION_STATE_SUSPENDED, []string{"read", "write"}, []string{"api"}))
		}, want: pdp.ReasonIntegrationInactive},
		{name: "workload retired", change: func(t *testing.T, e *env, _ string) {
			pdptest.Publish(t, e.log, pdptest.Workload("acme-bot", "acme-api", "acme", treatyv1.WorkloadState_WORKLOAD_STATE_RETIRED))
		}, want: pdp.ReasonWorkloadInactive},
		{name: "workload moved to another integration", change: func(t *testing.T, e *env, _ string) {
			pdptest.Publish(t, e.log,
				pdptest.Integration("acme-other", "acme", integrationActive, []string{"read", "write"}, []string{"api"}),
				pdptest.Workload("acme-bot", "acme-other", "acme", workloadActive))
		}, want: pdp.ReasonSubjectMismatch},
		{name: "a policy arrives", change: func(t *testing.T, e *env, _ string) {
			pdptest.Publish(t, e.log, policyEvent(liveMode, 1, `@id("no-reads") forbid(principal, action == Action::"read", resource);`))
		}, want: "policy_forbid:acme@1:no-reads"},
		{name: "an unrelated change keeps the grant", change: func(t *testing.T, e *env, _ string) {
			pdptest.Revoke(t, e.log, credentialK, "someone-else")
		}, want: pdp.ReasonGranted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, pdp.Config{})
			tok := e.token(t, nil)
			memoized(t, e, tok)
			c.change(t, e, tok)
			action := c.action
			if action == "" {
				action = "read"
			}
			if got := reason(t, e.check(t, tok, action, "api")); got != c.want {
				t.Errorf("after the change: %s, want %s", got, c.want)
			}
		})
	}
}

// jtiOf returns the jti the PDP read from tok.
func jtiOf(t *testing.T, e *env, tok string) string {
	t.Helper()
	return e.check(t, tok, "read", "api").TokenID
}

// What depends on the clock or the request is decided on every call, memo or not.
func TestMemoStillChecksClockAndRequest(t *testing.T) {
	var offset atomic.Int64 // added to the real clock
	e := newEnv(t, pdp.Config{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	tok := e.token(t, nil)
	memoized(t, e, tok)
	reqs := []struct {
		name string
		req  pdp.CheckRequest
		want string
	}{
		{name: "another granted scope", req: pdp.CheckRequest{Action: "write", Resource: "api"}, want: pdp.ReasonGranted},
		{name: "a scope the token lacks", req: pdp.CheckRequest{Action: "admin", Resource: "api"}, want: pdp.ReasonScopeMissing},
		{name: "empty action", req: pdp.CheckRequest{Resource: "api"}, want: pdp.ReasonScopeMissing},
		{name: "another resource", req: pdp.CheckRequest{Action: "read", Resource: "other"}, want: pdp.ReasonAudienceMismatch},
		{name: "another workload named", req: pdp.CheckRequest{Action: "read", Resource: "api", WorkloadID: "someone"}, want: pdp.ReasonSubjectMismatch},
		{name: "the token's workload named", req: pdp.CheckRequest{Action: "read", Resource: "api", WorkloadID: "acme-bot"}, want: pdp.ReasonGranted},
	}
	for _, r := range reqs {
		r.req.Token = tok
		d, err := e.pdp.Check(context.Background(), r.req)
		if err != nil {
			t.Fatal(err)
		}
		if got := reason(t, d); got != r.want {
			t.Errorf("%s: %s, want %s", r.name, got, r.want)
		}
	}
	offset.Store(int64(11 * time.Minute)) // the token lives 10 minutes
	if got := reason(t, e.check(t, tok, "read", "api")); got != pdp.ReasonExpired {
		t.Errorf("past exp: %s, want %s", got, pdp.ReasonExpired)
	}
	offset.Store(0)
	// The contract ends while the token lives: only the clock moves, so the memo stays in place.
	pdptest.Publish(t, e.log, pdptest.Partner("acme", partnerActive, time.Now().Add(5*time.Minute)))
	tok = e.token(t, nil)
	memoized(t, e, tok)
	offset.Store(int64(6 * time.Minute))
	if got := reason(t, e.check(t, tok, "read", "api")); got != pdp.ReasonContractEnded {
		t.Errorf("past the contract's end: %s, want %s", got, pdp.ReasonContractEnded)
	}
}

// Decisions racing with a block: every decision made on a state that holds the block denies,
// whoever made or replaced the memo meanwhile. Run with -race.
func TestMemoRacesWithBlock(t *testing.T) {
	e := newEnv(t, pdp.Config{})
	tok := e.token(t, nil)
	memoized(t, e, tok)
	var blockedAt atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d, err := e.pdp.Check(context.Background(), pdp.CheckRequest{Token: tok, Action: "read", Resource: "api"})
				if err != nil {
					t.Error(err)
					return
				}
				if at := blockedAt.Load(); at != 0 && d.Sequence >= at && d.Allow {
					t.Errorf("granted on state %d, which holds the block at %d", d.Sequence, at)
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	blockedAt.Store(pdptest.Revoke(t, e.log, workloadK, "acme-bot"))
	if got := reason(t, e.check(t, tok, "read", "api")); got != pdp.ReasonWorkloadBlocked {
		t.Errorf("after the block: %s", got)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
}
