package pdp_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
)

// envIntegration publishes acme-api again with an environment and source ranges.
func envIntegration(t *testing.T, e *env, environment string, ranges ...string) {
	t.Helper()
	ev := pdptest.Integration("acme-api", "acme", integrationActive, []string{"read", "write"}, []string{"api"})
	ev.GetIntegrationChanged().Environment, ev.GetIntegrationChanged().SourceRanges = environment, ranges
	pdptest.Publish(t, e.log, ev)
}

func checkIn(t *testing.T, e *env, tok string, rc pdp.RequestContext) string {
	t.Helper()
	d, err := e.pdp.Check(context.Background(), pdp.CheckRequest{Token: tok, Action: "read", Resource: "api", Context: rc, MinSequence: e.log.Head()})
	if err != nil {
		t.Fatal(err)
	}
	return reason(t, d)
}

// The grant memo never lets a request through that the environment or source ranges would deny:
// a token memoized in one environment (or from one address) is still checked per request.
func TestMemoKeepsEnvironmentAndSourcePerRequest(t *testing.T) {
	t.Run("environment from the request", func(t *testing.T) {
		e := newEnv(t, pdp.Config{})
		envIntegration(t, e, "test")
		tok := e.token(t, nil)
		for range 3 { // verify, memoize, grant on the memo
			if got := checkIn(t, e, tok, pdp.RequestContext{Environment: "test"}); got != pdp.ReasonGranted {
				t.Fatalf("in test: %s", got)
			}
		}
		if got := checkIn(t, e, tok, pdp.RequestContext{}); got != pdp.ReasonGranted {
			t.Fatalf("without an environment: %s", got)
		}
		if got := checkIn(t, e, tok, pdp.RequestContext{Environment: "production"}); got != pdp.ReasonEnvironmentMismatch {
			t.Fatalf("in production after the memo: %s, want %s", got, pdp.ReasonEnvironmentMismatch)
		}
	})
	t.Run("environment of the PDP", func(t *testing.T) {
		e := newEnv(t, pdp.Config{Environment: "production"})
		envIntegration(t, e, "production")
		tok := e.token(t, nil)
		memoized(t, e, tok) // configured and matching: the memo grants
		envIntegration(t, e, "test")
		if got := checkIn(t, e, tok, pdp.RequestContext{Environment: "test"}); got != pdp.ReasonEnvironmentMismatch {
			t.Fatalf("after the integration moved to test: %s", got)
		}
	})
	t.Run("source ranges", func(t *testing.T) {
		e := newEnv(t, pdp.Config{})
		envIntegration(t, e, "", "10.0.0.0/8")
		tok := e.token(t, nil)
		inside := pdp.RequestContext{SourceIP: netip.MustParseAddr("10.1.2.3")}
		for range 3 {
			if got := checkIn(t, e, tok, inside); got != pdp.ReasonGranted {
				t.Fatalf("inside: %s", got)
			}
		}
		outside := pdp.RequestContext{SourceIP: netip.MustParseAddr("192.0.2.1")}
		if got := checkIn(t, e, tok, outside); got != pdp.ReasonSourceIPNotAllowed {
			t.Fatalf("outside after grants: %s, want %s", got, pdp.ReasonSourceIPNotAllowed)
		}
	})
}

// A PDP configured for an environment refuses issuance for an integration of another; without a
// configured environment, issuance does not look (the issuance request has no request context).
func TestIssuanceEnvironment(t *testing.T) {
	for _, tc := range []struct {
		pdpEnv, integrationEnv, want string
	}{
		{"production", "test", pdp.ReasonEnvironmentMismatch},
		{"production", "production", pdp.ReasonGranted},
		{"production", "", pdp.ReasonGranted},
		{"", "test", pdp.ReasonGranted},
	} {
		e := newEnv(t, pdp.Config{Environment: tc.pdpEnv})
		envIntegration(t, e, tc.integrationEnv)
		d, err := e.pdp.CheckIssuance(context.Background(), pdp.IssuanceRequest{
			WorkloadID: "acme-bot", Scopes: []string{"read"}, Audience: "api", Kid: "k1", MinSequence: e.log.Head(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := reason(t, d); got != tc.want {
			t.Errorf("PDP %q, integration %q: %s, want %s", tc.pdpEnv, tc.integrationEnv, got, tc.want)
		}
	}
}

// Environment checks keep the decision path allocation-free, on the memo and off it.
func TestEnvironmentCheckDoesNotAllocate(t *testing.T) {
	e := newEnv(t, pdp.Config{Environment: "production"})
	envIntegration(t, e, "production", "10.0.0.0/8")
	tok := e.token(t, nil)
	req := pdp.CheckRequest{Token: tok, Action: "read", Resource: "api", Context: pdp.RequestContext{SourceIP: netip.MustParseAddr("10.0.0.1")}}
	ctx := context.Background()
	if d, err := e.pdp.Check(ctx, req); err != nil || !d.Allow {
		t.Fatalf("Check = %+v, %v", d, err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = e.pdp.Check(ctx, req) }); n != 0 {
		t.Errorf("Check allocates %v times per decision, want 0", n)
	}
}
