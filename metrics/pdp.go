package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/treaty-dev/treaty/pdp"
)

// PDPSource is what the PDP collector reads: *pdp.PDP implements it.
type PDPSource interface {
	Stats() pdp.Stats
	DecisionCounts() []pdp.DecisionCount
}

var (
	pdpDecisions = prometheus.NewDesc(namespace+"_pdp_decisions_total",
		"Decisions made since the PDP started, by kind (check or issuance), result (allow or deny) and reason (a built-in reason, or policy for a partner policy's deny).",
		[]string{"kind", "result", "reason"}, nil)
	pdpStatus = prometheus.NewDesc(namespace+"_pdp_status",
		"1 for the PDP's current sync status (syncing, ready, stale), 0 for the others: anything but ready denies every decision.",
		[]string{"status"}, nil)
	pdpApplied = prometheus.NewDesc(namespace+"_pdp_feed_applied_sequence",
		"The last feed sequence applied to the state decisions are made on.", nil, nil)
	pdpHead = prometheus.NewDesc(namespace+"_pdp_feed_head_sequence",
		"The feed head the revoker announced in its latest heartbeat to this PDP.", nil, nil)
	pdpLag = prometheus.NewDesc(namespace+"_pdp_feed_lag_events",
		"How many events the PDP's state is behind the revoker's head it last heard of.", nil, nil)
	pdpContact = prometheus.NewDesc(namespace+"_pdp_feed_last_contact_seconds",
		"Seconds since the revoker's feed last sent this PDP anything (event or heartbeat); absent before the first.", nil, nil)
	pdpSnapshot = prometheus.NewDesc(namespace+"_pdp_snapshot_records",
		"Records in the PDP's enforcement state, by kind (partners, integrations, workloads, signing_keys, revoked_credentials).",
		[]string{"kind"}, nil)
	pdpShadow = prometheus.NewDesc(namespace+"_pdp_shadow_policy_disagreements_total",
		"Decisions a partner's shadow policy set would have answered differently from its live set.", nil, nil)
)

// pdpCollector reads a PDP's counters and position at each scrape.
type pdpCollector struct{ src PDPSource }

// PDP returns a collector of the PDP's decisions by kind, result and reason, its sync status, its
// feed position and lag, the age of its last contact with the feed, and the size of its state.
// Decisions are counted by the PDP itself with atomics indexed by reason; this only reads them.
func PDP(src PDPSource) prometheus.Collector { return pdpCollector{src} }

func (c pdpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{pdpDecisions, pdpStatus, pdpApplied, pdpHead, pdpLag, pdpContact, pdpSnapshot, pdpShadow} {
		ch <- d
	}
}

func (c pdpCollector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range c.src.DecisionCounts() {
		result := "deny"
		if d.Allow {
			result = "allow"
		}
		ch <- prometheus.MustNewConstMetric(pdpDecisions, prometheus.CounterValue, float64(d.Count), d.Kind, result, d.Reason)
	}
	s := c.src.Stats()
	for _, st := range []pdp.Status{pdp.StatusSyncing, pdp.StatusReady, pdp.StatusStale} {
		ch <- prometheus.MustNewConstMetric(pdpStatus, prometheus.GaugeValue, boolValue(s.Status == st), st.String())
	}
	ch <- prometheus.MustNewConstMetric(pdpApplied, prometheus.GaugeValue, float64(s.Applied))
	ch <- prometheus.MustNewConstMetric(pdpHead, prometheus.GaugeValue, float64(s.Head))
	ch <- prometheus.MustNewConstMetric(pdpLag, prometheus.GaugeValue, float64(s.Lag()))
	if s.Contacted {
		ch <- prometheus.MustNewConstMetric(pdpContact, prometheus.GaugeValue, s.SinceContact.Seconds())
	}
	for _, n := range []struct {
		kind  string
		count int
	}{
		{"partners", s.Partners}, {"integrations", s.Integrations}, {"workloads", s.Workloads},
		{"signing_keys", s.SigningKeys}, {"revoked_credentials", s.RevokedCredentials},
	} {
		ch <- prometheus.MustNewConstMetric(pdpSnapshot, prometheus.GaugeValue, float64(n.count), n.kind)
	}
	ch <- prometheus.MustNewConstMetric(pdpShadow, prometheus.CounterValue, float64(s.ShadowDisagreements))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
