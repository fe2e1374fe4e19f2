package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/treaty-dev/treaty/decisionlog"
)

// DecisionLogSource is what the decision log collector reads: *decisionlog.Log implements it.
type DecisionLogSource interface {
	Stats() decisionlog.Stats
}

var (
	dlDecisions = prometheus.NewDesc(namespace+"_decision_log_decisions_total",
		"Decisions the PDP handed its decision log since it started, by outcome: kept (written, or queued to be), or left out: "+
			"sampled_out, capped (allows past the per-second bound) and shed (allows while the writer was behind); "+
			"unlogged (denies that waited the bound for a writer stuck on its disk); after_close and lost (at shutdown).",
		[]string{"outcome"}, nil)
	dlWritten = prometheus.NewDesc(namespace+"_decision_log_written_total",
		"Decisions committed to the decision log's store.", nil, nil)
	dlPending = prometheus.NewDesc(namespace+"_decision_log_pending_decisions",
		"Decisions kept but not yet committed: at most the queue and a batch being written.", nil, nil)
	dlWaited = prometheus.NewDesc(namespace+"_decision_log_denies_waited_total",
		"Denies whose answer waited for room in the log's full queue (the disk fell behind).", nil, nil)
)

// decisionLogCollector reads a decision log's counters at each scrape.
type decisionLogCollector struct{ src DecisionLogSource }

// DecisionLog returns a collector of what the decision log kept and left out, what it wrote, what
// is pending, and the denies that waited for it. The log counts with atomics; this only reads them.
func DecisionLog(src DecisionLogSource) prometheus.Collector { return decisionLogCollector{src} }

func (c decisionLogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dlDecisions, dlWritten, dlPending, dlWaited} {
		ch <- d
	}
}

func (c decisionLogCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	for _, o := range []struct {
		outcome string
		n       uint64
	}{
		{"kept", s.Kept}, {"sampled_out", s.SampledOut}, {"capped", s.Capped}, {"shed", s.Shed},
		{"unlogged", s.Unlogged}, {"after_close", s.AfterClose}, {"lost", s.Lost},
	} {
		ch <- prometheus.MustNewConstMetric(dlDecisions, prometheus.CounterValue, float64(o.n), o.outcome)
	}
	ch <- prometheus.MustNewConstMetric(dlWritten, prometheus.CounterValue, float64(s.Written))
	// Kept trails Written by a decision written before its Record counted it: never negative.
	ch <- prometheus.MustNewConstMetric(dlPending, prometheus.GaugeValue, float64(s.Kept-min(s.Written, s.Kept)))
	ch <- prometheus.MustNewConstMetric(dlWaited, prometheus.CounterValue, float64(s.Waited))
}
