package metrics_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/treaty-dev/treaty/decisionlog"
	"github.com/treaty-dev/treaty/metrics"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/services/revokersvc"
)

// The collectors here read fixed values through their small interfaces; the services tests scrape
// the real ones from a running server.

type pdpValues struct {
	stats  pdp.Stats
	counts []pdp.DecisionCount
}

func (p pdpValues) Stats() pdp.Stats                    { return p.stats }
func (p pdpValues) DecisionCounts() []pdp.DecisionCount { return p.counts }

func TestPDP(t *testing.T) {
	src := pdpValues{
		stats: pdp.Stats{Status: pdp.StatusReady, Applied: 7, Head: 10, Contacted: true, SinceContact: 1500 * time.Millisecond,
			Partners: 2, Integrations: 3, Workloads: 4, SigningKeys: 1, RevokedCredentials: 5, ShadowDisagreements: 6},
		counts: []pdp.DecisionCount{
			{Kind: pdp.KindCheck, Reason: pdp.ReasonGranted, Allow: true, Count: 9},
			{Kind: pdp.KindCheck, Reason: pdp.ReasonRevoked, Count: 2},
			{Kind: pdp.KindIssuance, Reason: pdp.ReasonPolicy, Count: 0},
		},
	}
	want := `
# HELP treaty_pdp_decisions_total Decisions made since the PDP started, by kind (check or issuance), result (allow or deny) and reason (a built-in reason, or policy for a partner policy's deny).
# TYPE treaty_pdp_decisions_total counter
treaty_pdp_decisions_total{kind="check",reason="granted",result="allow"} 9
treaty_pdp_decisions_total{kind="check",reason="revoked",result="deny"} 2
treaty_pdp_decisions_total{kind="issuance",reason="policy",result="deny"} 0
# HELP treaty_pdp_feed_lag_events How many events the PDP's state is behind the revoker's head it last heard of.
# TYPE treaty_pdp_feed_lag_events gauge
treaty_pdp_feed_lag_events 3
# HELP treaty_pdp_feed_last_contact_seconds Seconds since the revoker's feed last sent this PDP anything (event or heartbeat); absent before the first.
# TYPE treaty_pdp_feed_last_contact_seconds gauge
treaty_pdp_feed_last_contact_seconds 1.5
# HELP treaty_pdp_snapshot_records Records in the PDP's enforcement state, by kind (partners, integrations, workloads, signing_keys, revoked_credentials).
# TYPE treaty_pdp_snapshot_records gauge
treaty_pdp_snapshot_records{kind="integrations"} 3
treaty_pdp_snapshot_records{kind="partners"} 2
treaty_pdp_snapshot_records{kind="revoked_credentials"} 5
treaty_pdp_snapshot_records{kind="signing_keys"} 1
treaty_pdp_snapshot_records{kind="workloads"} 4
# HELP treaty_pdp_status 1 for the PDP's current sync status (syncing, ready, stale), 0 for the others: anything but ready denies every decision.
# TYPE treaty_pdp_status gauge
treaty_pdp_status{status="ready"} 1
treaty_pdp_status{status="stale"} 0
treaty_pdp_status{status="syncing"} 0
`
	c := metrics.PDP(src)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "treaty_pdp_decisions_total", "treaty_pdp_feed_lag_events",
		"treaty_pdp_feed_last_contact_seconds", "treaty_pdp_snapshot_records", "treaty_pdp_status"); err != nil {
		t.Error(err)
	}
	lint(t, c)
	// Before any contact the age is absent rather than a made-up value.
	src.stats.Contacted = false
	if n := testutil.CollectAndCount(metrics.PDP(src), "treaty_pdp_feed_last_contact_seconds"); n != 0 {
		t.Errorf("%d last-contact series before any contact", n)
	}
}

type decisionLogValues decisionlog.Stats

func (d decisionLogValues) Stats() decisionlog.Stats { return decisionlog.Stats(d) }

func TestDecisionLog(t *testing.T) {
	c := metrics.DecisionLog(decisionLogValues{Kept: 10, Written: 7, SampledOut: 5, Capped: 4, Shed: 3, Waited: 2, Unlogged: 1})
	want := `
# HELP treaty_decision_log_pending_decisions Decisions kept but not yet committed: at most the queue and a batch being written.
# TYPE treaty_decision_log_pending_decisions gauge
treaty_decision_log_pending_decisions 3
# HELP treaty_decision_log_decisions_total Decisions the PDP handed its decision log since it started, by outcome: kept (written, or queued to be), or left out: sampled_out, capped (allows past the per-second bound) and shed (allows while the writer was behind); unlogged (denies that waited the bound for a writer stuck on its disk); after_close and lost (at shutdown).
# TYPE treaty_decision_log_decisions_total counter
treaty_decision_log_decisions_total{outcome="after_close"} 0
treaty_decision_log_decisions_total{outcome="capped"} 4
treaty_decision_log_decisions_total{outcome="kept"} 10
treaty_decision_log_decisions_total{outcome="lost"} 0
treaty_decision_log_decisions_total{outcome="sampled_out"} 5
treaty_decision_log_decisions_total{outcome="shed"} 3
treaty_decision_log_decisions_total{outcome="unlogged"} 1
# HELP treaty_decision_log_denies_waited_total Denies whose answer waited for room in the log's full queue (the disk fell behind).
# TYPE treaty_decision_log_denies_waited_total counter
treaty_decision_log_denies_waited_total 2
# HELP treaty_decision_log_written_total Decisions committed to the decision log's store.
# TYPE treaty_decision_log_written_total counter
treaty_decision_log_written_total 7
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	lint(t, c)
	// Written may pass Kept by a decision not yet counted kept: pending is then zero, never negative.
	zero := `
# HELP treaty_decision_log_pending_decisions Decisions kept but not yet committed: at most the queue and a batch being written.
# TYPE treaty_decision_log_pending_decisions gauge
treaty_decision_log_pending_decisions 0
`
	if err := testutil.CollectAndCompare(metrics.DecisionLog(decisionLogValues{Kept: 5, Written: 6}), strings.NewReader(zero), "treaty_decision_log_pending_decisions"); err != nil {
		t.Error(err)
	}
}

type subscriberValues struct {
	subs  []revokersvc.SubscriberInfo
	stats revokersvc.SubscriberStats
}

func (s subscriberValues) Subscribers() []revokersvc.SubscriberInfo    { return s.subs }
func (s subscriberValues) SubscriberStats() revokersvc.SubscriberStats { return s.stats }

// Only the subscribers furthest behind get series of their own; a name's streams are folded into
// one series with the largest lag.
func TestRevokerBoundsSeries(t *testing.T) {
	src := subscriberValues{stats: revokersvc.SubscriberStats{Connected: 62, CutOff: 3, OutOfRange: 1, Head: 1000}}
	for i := range 60 {
		src.subs = append(src.subs, revokersvc.SubscriberInfo{Name: fmt.Sprintf("gw-%02d", i), Sent: uint64(1000 - i)})
	}
	src.subs = append(src.subs,
		revokersvc.SubscriberInfo{Name: "gw-00", Sent: 900},  // gw-00's other stream is 100 behind
		revokersvc.SubscriberInfo{Name: "gw-01", Sent: 1001}, // sent after the head was read: not negative
	)
	c := metrics.Revoker(src)
	if n := testutil.CollectAndCount(c, "treaty_revoker_subscriber_lag_events"); n != metrics.MaxSubscriberSeries {
		t.Errorf("%d lag series, want %d", n, metrics.MaxSubscriberSeries)
	}
	want := `
# HELP treaty_revoker_subscriber_lag_max_events The largest revocation propagation lag over every open subscription (0 with none).
# TYPE treaty_revoker_subscriber_lag_max_events gauge
treaty_revoker_subscriber_lag_max_events 100
# HELP treaty_revoker_subscribers Open feed subscriptions.
# TYPE treaty_revoker_subscribers gauge
treaty_revoker_subscribers 62
# HELP treaty_revoker_subscribers_cut_off_total Subscriptions ended by the revoker, by reason: slow (fell behind the live feed, RESOURCE_EXHAUSTED) or out_of_range (asked for compacted events, OUT_OF_RANGE).
# TYPE treaty_revoker_subscribers_cut_off_total counter
treaty_revoker_subscribers_cut_off_total{reason="out_of_range"} 1
treaty_revoker_subscribers_cut_off_total{reason="slow"} 3
# HELP treaty_revoker_head_sequence The revoker's head: the last sequence in its feed.
# TYPE treaty_revoker_head_sequence gauge
treaty_revoker_head_sequence 1000
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "treaty_revoker_subscriber_lag_max_events", "treaty_revoker_subscribers",
		"treaty_revoker_subscribers_cut_off_total", "treaty_revoker_head_sequence"); err != nil {
		t.Error(err)
	}
	out := scrape(t, c)
	for _, line := range []string{
		`treaty_revoker_subscriber_lag_events{subscriber="gw-00"} 100`,
		`treaty_revoker_subscriber_streams{subscriber="gw-00"} 2`,
		`treaty_revoker_subscriber_lag_events{subscriber="gw-59"} 59`,
		`treaty_revoker_subscriber_lag_events{subscriber="gw-11"} 11`,
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("missing %s", line)
		}
	}
	for _, absent := range []string{`subscriber="gw-01"`, `subscriber="gw-10"`} { // the least behind are left out
		if strings.Contains(out, absent) {
			t.Errorf("%s listed", absent)
		}
	}
	lint(t, c)
}

type liveValues struct {
	calls *int
	live  map[string]uint64
	err   error
}

func (l liveValues) LivePerPartner() (map[string]uint64, bool, error) {
	*l.calls++
	return l.live, false, l.err
}

// The issuer's count is reused for its interval and bounded to the partners with the most.
func TestIssuerCachesAndBounds(t *testing.T) {
	calls := 0
	src := liveValues{calls: &calls, live: map[string]uint64{}}
	var all uint64
	for i := range 120 {
		src.live[fmt.Sprintf("p%03d", i)] = uint64(i + 1)
		all += uint64(i + 1)
	}
	c := metrics.Issuer(src, time.Hour)
	if n := testutil.CollectAndCount(c, "treaty_issuer_credentials_live"); n != metrics.MaxPartnerSeries {
		t.Errorf("%d partner series, want %d", n, metrics.MaxPartnerSeries)
	}
	out := scrape(t, c)
	for _, line := range []string{
		`treaty_issuer_credentials_live{partner="p119"} 120`,
		`treaty_issuer_credentials_live{partner="p020"} 21`,
		fmt.Sprintf("treaty_issuer_credentials_live_all %d", all),
		`treaty_issuer_partners_with_live_credentials 120`,
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("missing %s in\n%s", line, out)
		}
	}
	if strings.Contains(out, `partner="p019"`) {
		t.Error("p019, among the fewest, is listed")
	}
	lint(t, c)
	if calls != 1 {
		t.Errorf("counted %d times in one interval, want once", calls)
	}
	// With a zero interval every scrape counts afresh; an error fails only this collector.
	failing := metrics.Issuer(liveValues{calls: &calls, err: errors.New("store closed")}, time.Nanosecond)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(failing)
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "store closed") {
		t.Errorf("Gather with a failing count: %v", err)
	}
}

// scrape returns what Prometheus reads of c, in the text format.
func scrape(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// lint checks the metrics' names, units and help against Prometheus's conventions, and the
// collector's descriptions against what it collects.
func lint(t *testing.T, c prometheus.Collector) {
	t.Helper()
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Error(err)
	}
}
