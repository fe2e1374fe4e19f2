package opa

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store/storetest"
	"github.com/treaty-dev/treaty/token"
)

// The fixture: n partners, three integrations each, one workload per integration, one signing
// key, a valid token per workload, Cedar conditions on every tenth partner, and a little of
// everything a real deployment holds (suspended and blocked entities, restores, revoked
// credentials, an ended contract) so that both engines have deny paths to agree on.

// noon is the decision points' clock in the benchmarks: inside the business hours of the
// conditions.
var noon = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// condition is what the conditioned partners' policies require, written once and rendered as
// Cedar (for Treaty) and as data (for the Rego policy).
type condition struct {
	CIDR        string
	Environment string
	From, To    int // business hours, UTC: From <= hour < To
}

var businessHours = condition{CIDR: "10.0.0.0/8", Environment: "production", From: 8, To: 18}

// cedar renders the condition as partner's Cedar policy set: two forbids, either of which denies.
func (c condition) cedar(partner string) string {
	return fmt.Sprintf(`@id("network")
forbid (principal in Partner::%q, action, resource)
unless { context.source_ip.isInRange(ip(%q)) && context.environment == %q };

@id("business-hours")
forbid (principal in Partner::%q, action, resource)
unless { context.hour >= %d && context.hour < %d };
`, partner, c.CIDR, c.Environment, partner, c.From, c.To)
}

// data renders the condition as the Rego policy's data.conditions entry.
func (c condition) data() map[string]any {
	return map[string]any{
		"cidrs":        []any{c.CIDR},
		"environments": []any{c.Environment},
		"hours":        map[string]any{"from": int64(c.From), "to": int64(c.To)},
	}
}

func partnerID(i int) string        { return fmt.Sprintf("p%d", i) }
func integrationID(i, j int) string { return fmt.Sprintf("p%d-i%d", i, j) }
func workloadID(i, j int) string    { return fmt.Sprintf("p%d-i%d-w", i, j) }

// The fixture's variety, by partner index.
func conditioned(i int) bool       { return i%10 == 0 }
func suspended(i int) bool         { return i%97 == 5 }
func ended(i int) bool             { return i%89 == 11 }
func blocked(i int) bool           { return i%200 == 7 }
func restored(i int) bool          { return i%200 == 17 }
func integrationOff(i, j int) bool { return i%53 == 9 && j == 1 }
func workloadOff(i, j int) bool    { return i%71 == 3 && j == 0 }

// scopes and audiences are integration j's grants.
func scopes(j int) []string {
	return [][]string{{"read", "write"}, {"read"}, {"read", "write", "admin"}}[j]
}

func audiences(j int) []string {
	if j == 2 {
		return []string{"api", "billing"}
	}
	return []string{"api"}
}

// revokedJTIs is how many credentials the fixture revokes.
const revokedJTIs = 50

// clock is the PDP's clock, settable by tests.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time   { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Set(t time.Time)  { c.ns.Store(t.UnixNano()) }
func newClock(t time.Time) *clock { c := &clock{}; c.Set(t); return c }
func quiet() *slog.Logger         { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// world is one fixture, as Treaty's state (a real revoker log followed by a real PDP) and as
// OPA's data (read back out of that same state), so both engines decide on the same facts.
type world struct {
	n     int
	log   *revoker.Log
	key   *pdptest.Key
	clock *clock
	pdp   *pdp.PDP
	// tokens holds a valid token per workload, minted at the feed's head.
	tokens map[string]string
	opa    *opaEngine
}

// build publishes the fixture into a real revoker log in large batches, starts a real PDP on it
// and waits until the PDP has applied all of it, then prepares the Rego query on the same state.
func build(tb testing.TB, n int) *world {
	tb.Helper()
	log, err := revoker.Open(storetest.OpenBolt(tb, revoker.Schema), revoker.Config{Logger: quiet()})
	if err != nil {
		tb.Fatal(err)
	}
	w := &world{n: n, log: log, key: pdptest.NewKey(tb, "k1"), clock: newClock(noon)}

	const batch = 4096
	events := []*treatyv1.Event{w.key.Published(tb)}
	flush := func(force bool) {
		if len(events) >= batch || (force && len(events) > 0) {
			pdptest.Publish(tb, log, events...)
			events = events[:0]
		}
	}
	for i := range n {
		state, end := treatyv1.PartnerState_PARTNER_STATE_ACTIVE, pdptest.ContractEnd
		if suspended(i) {
			state = treatyv1.PartnerState_PARTNER_STATE_SUSPENDED
		}
		if ended(i) {
			end = noon.Add(-24 * time.Hour)
		}
		events = append(events, pdptest.Partner(partnerID(i), state, end))
		for j := range 3 {
			is := treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE
			if integrationOff(i, j) {
				is = treatyv1.IntegrationState_INTEGRATION_STATE_SUSPENDED
			}
			ws := treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE
			if workloadOff(i, j) {
				ws = treatyv1.WorkloadState_WORKLOAD_STATE_SUSPENDED
			}
			events = append(events,
				pdptest.Integration(integrationID(i, j), partnerID(i), is, scopes(j), audiences(j)),
				pdptest.Workload(workloadID(i, j), integrationID(i, j), partnerID(i), ws))
		}
		flush(false)
	}
	flush(true)

	// Policies go in their own batches, so that a revoker without policy support refuses only
	// them.
	var policies []*treatyv1.Event
	for i := range n {
		if conditioned(i) {
			p := partnerID(i)
			policies = append(policies, &treatyv1.Event{Change: &treatyv1.Event_PolicyChanged{PolicyChanged: &treatyv1.PolicyChanged{
				PartnerId: p, Mode: treatyv1.PolicyMode_POLICY_MODE_LIVE, Version: 1,
				Text: businessHours.cedar(p), PolicyId: p + "@1",
			}}})
		}
	}
	for chunk := range slices.Chunk(policies, batch) {
		pdptest.Publish(tb, log, chunk...)
	}

	for i := range n {
		if blocked(i) || restored(i) {
			pdptest.Revoke(tb, log, treatyv1.TargetKind_TARGET_KIND_PARTNER, partnerID(i))
		}
		if restored(i) {
			pdptest.Restore(tb, log, treatyv1.TargetKind_TARGET_KIND_PARTNER, partnerID(i))
		}
	}
	for k := range revokedJTIs {
		pdptest.Revoke(tb, log, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, revokedJTI(k))
	}

	w.tokens = make(map[string]string, 3*n)
	for i := range n {
		for j := range 3 {
			w.tokens[workloadID(i, j)] = w.key.Mint(tb, w.claims(i, j, noon))
		}
	}

	// The staleness bound and the wait are generous: catching up on 70,000 events on a busy
	// machine can take a while, and neither is what this module measures.
	w.pdp = pdptest.Start(tb, pdp.Config{
		Store: storetest.OpenBolt(tb, pdp.Schema), Source: pdptest.NewSource(log, time.Second),
		Now: w.clock.Now, Logger: quiet(), StalenessBound: time.Minute,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for w.pdp.Applied() < log.Head() && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if err := w.pdp.WaitReady(ctx); err != nil || w.pdp.Applied() < log.Head() {
		tb.Fatalf("the PDP did not catch up in 2 minutes (status %s, applied %d of %d): %v", w.pdp.Status(), w.pdp.Applied(), log.Head(), err)
	}
	w.opa = newOPA(tb, w.data(log.State()))
	return w
}

func revokedJTI(k int) string { return fmt.Sprintf("jti-revoked-%d", k) }

// claims are the claims of a valid token for workload (i, j), issued at now at the feed's head
// with all the integration's scopes and the audience api.
func (w *world) claims(i, j int, now time.Time) token.Claims {
	c := pdptest.Claims(workloadID(i, j), integrationID(i, j), partnerID(i), strings.Join(scopes(j), " "), "api", w.log.Epoch(), w.log.Head())
	c.IssuedAt, c.Expiry = now.Add(-time.Minute).Unix(), now.Add(10*time.Minute).Unix()
	c.ID = fmt.Sprintf("jti-%s", workloadID(i, j))
	return c
}

// warm makes Treaty see every workload's token once, so that its verified-token cache holds the
// fixture's 3n tokens as a busy PDP's would.
func (w *world) warm(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	for wl, tok := range w.tokens {
		d, err := w.pdp.Check(ctx, pdp.CheckRequest{Token: tok, Action: "read", Resource: "api"})
		if err != nil {
			tb.Fatalf("warm %s: %v", wl, err)
		}
		_ = d // conditioned and suspended partners deny; only the cache's warmth matters here
	}
}

// pick returns the first partner from the middle of the fixture that is active and clean (no
// block, restore or suspension) and has conditions or not as asked.
func (w *world) pick(withConditions bool) int {
	for i := w.n / 2; i < w.n; i++ {
		if conditioned(i) == withConditions && !suspended(i) && !ended(i) && !blocked(i) && !restored(i) &&
			!integrationOff(i, 0) && !workloadOff(i, 0) {
			return i
		}
	}
	panic("no partner fits")
}

// data reads OPA's data out of Treaty's state s.
func (w *world) data(s *feed.State) map[string]any {
	partners := make(map[string]any, w.n)
	integrations := make(map[string]any, 3*w.n)
	workloads := make(map[string]any, 3*w.n)
	conditions := map[string]any{}
	for i := range w.n {
		p, _ := s.Partner(partnerID(i))
		partners[p.ID] = map[string]any{
			"state":        lifecycle(p.State.String()),
			"contract_end": p.ContractEnd.Unix(),
			"blocked":      p.Block != nil,
			"watermark":    int64(p.Watermark),
		}
		if conditioned(i) {
			conditions[p.ID] = businessHours.data()
		}
		for j := range 3 {
			in, _ := s.Integration(integrationID(i, j))
			integrations[in.ID] = map[string]any{
				"partner":   in.PartnerID,
				"state":     lifecycle(in.State.String()),
				"scopes":    strings_(in.AllowedScopes),
				"audiences": strings_(in.Audiences),
				"blocked":   in.Block != nil,
				"watermark": int64(in.Watermark),
			}
			wl, _ := s.Workload(workloadID(i, j))
			workloads[wl.ID] = map[string]any{
				"partner":     wl.PartnerID,
				"integration": wl.IntegrationID,
				"state":       lifecycle(wl.State.String()),
				"blocked":     wl.Block != nil,
				"watermark":   int64(wl.Watermark),
			}
		}
	}
	revoked := map[string]any{}
	for k := range revokedJTIs {
		if _, ok := s.RevokedCredential(revokedJTI(k)); ok {
			revoked[revokedJTI(k)] = true
		}
	}
	return map[string]any{
		"sequence":     int64(s.Sequence()),
		"partners":     partners,
		"integrations": integrations,
		"workloads":    workloads,
		"revoked":      revoked,
		"conditions":   conditions,
	}
}

// lifecycle turns a state enum's name (PARTNER_STATE_ACTIVE) into the Rego data's (active).
func lifecycle(name string) string {
	_, rest, _ := strings.Cut(name, "_STATE_")
	return strings.ToLower(rest)
}

func strings_(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
