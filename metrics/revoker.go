package metrics

import (
	"cmp"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/treaty-dev/treaty/services/revokersvc"
)

// SubscriberSource is what the revoker collector reads: *revokersvc.Service implements it.
type SubscriberSource interface {
	Subscribers() []revokersvc.SubscriberInfo
	SubscriberStats() revokersvc.SubscriberStats
}

// MaxSubscriberSeries bounds the subscribers the revoker collector reports one by one: the ones
// furthest behind. Ten thousand gateways would otherwise make ten thousand series per scrape; the
// maximum over all of them is reported besides.
const MaxSubscriberSeries = 50

var (
	revHead = prometheus.NewDesc(namespace+"_revoker_head_sequence",
		"The revoker's head: the last sequence in its feed.", nil, nil)
	revConnected = prometheus.NewDesc(namespace+"_revoker_subscribers",
		"Open feed subscriptions.", nil, nil)
	revCutOff = prometheus.NewDesc(namespace+"_revoker_subscribers_cut_off_total",
		"Subscriptions ended by the revoker, by reason: slow (fell behind the live feed, RESOURCE_EXHAUSTED) or out_of_range (asked for compacted events, OUT_OF_RANGE).",
		[]string{"reason"}, nil)
	revLag = prometheus.NewDesc(namespace+"_revoker_subscriber_lag_events",
		"Revocation propagation lag: the head minus what the subscriber has been sent, the largest over its streams; only the subscribers furthest behind are listed (at most 50).",
		[]string{"subscriber"}, nil)
	revStreams = prometheus.NewDesc(namespace+"_revoker_subscriber_streams",
		"Open streams of each subscriber listed in treaty_revoker_subscriber_lag_events.",
		[]string{"subscriber"}, nil)
	revLagMax = prometheus.NewDesc(namespace+"_revoker_subscriber_lag_max_events",
		"The largest revocation propagation lag over every open subscription (0 with none).", nil, nil)
)

// revokerCollector reads the revoker's subscriptions at each scrape.
type revokerCollector struct{ src SubscriberSource }

// Revoker returns a collector of the revoker's head, its open subscriptions, the ones it cut off,
// and each subscriber's propagation lag (head minus what its streams have been sent; the stream
// carries no acknowledgements). Subscribers are named by revokersvc.Config.Identify, else by IP
// address, and at most MaxSubscriberSeries of them (the furthest behind) get series of their own.
func Revoker(src SubscriberSource) prometheus.Collector { return revokerCollector{src} }

func (c revokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{revHead, revConnected, revCutOff, revLag, revStreams, revLagMax} {
		ch <- d
	}
}

func (c revokerCollector) Collect(ch chan<- prometheus.Metric) {
	subs := c.src.Subscribers()
	st := c.src.SubscriberStats() // after Subscribers: its head is at least as new as their positions
	ch <- prometheus.MustNewConstMetric(revHead, prometheus.GaugeValue, float64(st.Head))
	ch <- prometheus.MustNewConstMetric(revConnected, prometheus.GaugeValue, float64(st.Connected))
	ch <- prometheus.MustNewConstMetric(revCutOff, prometheus.CounterValue, float64(st.CutOff), "slow")
	ch <- prometheus.MustNewConstMetric(revCutOff, prometheus.CounterValue, float64(st.OutOfRange), "out_of_range")

	type named struct {
		name    string
		lag     uint64
		streams int
	}
	byName := map[string]*named{}
	var lagMax uint64
	for _, s := range subs {
		lag := uint64(0)
		if st.Head > s.Sent {
			lag = st.Head - s.Sent
		}
		lagMax = max(lagMax, lag)
		n := byName[s.Name]
		if n == nil {
			n = &named{name: s.Name}
			byName[s.Name] = n
		}
		n.lag, n.streams = max(n.lag, lag), n.streams+1
	}
	ch <- prometheus.MustNewConstMetric(revLagMax, prometheus.GaugeValue, float64(lagMax))
	list := make([]*named, 0, len(byName))
	for _, n := range byName {
		list = append(list, n)
	}
	slices.SortFunc(list, func(a, b *named) int {
		if c := cmp.Compare(b.lag, a.lag); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	for _, n := range list[:min(len(list), MaxSubscriberSeries)] {
		ch <- prometheus.MustNewConstMetric(revLag, prometheus.GaugeValue, float64(n.lag), n.name)
		ch <- prometheus.MustNewConstMetric(revStreams, prometheus.GaugeValue, float64(n.streams), n.name)
	}
}
