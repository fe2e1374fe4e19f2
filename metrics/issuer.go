package metrics

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LiveSource is what the issuer collector reads: *issuer.Issuer implements it.
type LiveSource interface {
	LivePerPartner() (live map[string]uint64, truncated bool, err error)
}

// MaxPartnerSeries bounds the partners the issuer collector reports one by one: the ones with the
// most live credentials. The total over every partner is reported besides.
const MaxPartnerSeries = 100

// DefaultLiveInterval is how long the issuer collector reuses a count: counting reads every
// credential issued within the maximum lifetime, too much to repeat at every scrape.
const DefaultLiveInterval = 30 * time.Second

var (
	issLive = prometheus.NewDesc(namespace+"_issuer_credentials_live",
		"Live credentials (unexpired, not revoked) of each partner; only the partners with the most are listed (at most 100).",
		[]string{"partner"}, nil)
	issLiveAll = prometheus.NewDesc(namespace+"_issuer_credentials_live_all",
		"Live credentials over every partner.", nil, nil)
	issPartners = prometheus.NewDesc(namespace+"_issuer_partners_with_live_credentials",
		"Partners with at least one live credential.", nil, nil)
	issTruncated = prometheus.NewDesc(namespace+"_issuer_credentials_live_truncated",
		"1 if the last count stopped at its bound (the counts are then lower bounds), else 0.", nil, nil)
	issAge = prometheus.NewDesc(namespace+"_issuer_credentials_live_age_seconds",
		"Seconds since the live credentials were counted (counts are reused for a while).", nil, nil)
)

// issuerCollector counts live credentials per partner, at most once per interval.
type issuerCollector struct {
	src      LiveSource
	interval time.Duration
	now      func() time.Time

	mu        sync.Mutex
	at        time.Time
	live      map[string]uint64
	truncated bool
}

// Issuer returns a collector of the live credentials per partner, from the issuer's inventory. A
// count is reused for interval (zero means DefaultLiveInterval); at most MaxPartnerSeries
// partners (those with the most) get series of their own.
func Issuer(src LiveSource, interval time.Duration) prometheus.Collector {
	if interval <= 0 {
		interval = DefaultLiveInterval
	}
	return &issuerCollector{src: src, interval: interval, now: time.Now}
}

func (c *issuerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{issLive, issLiveAll, issPartners, issTruncated, issAge} {
		ch <- d
	}
}

func (c *issuerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock() // one count at a time: concurrent scrapes wait for it and share it
	defer c.mu.Unlock()
	now := c.now()
	if c.live == nil || now.Sub(c.at) >= c.interval {
		live, truncated, err := c.src.LivePerPartner()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(issLive, err)
			return
		}
		c.live, c.truncated, c.at = live, truncated, now
	}
	type partner struct {
		id   string
		live uint64
	}
	list := make([]partner, 0, len(c.live))
	var all uint64
	for id, n := range c.live {
		list = append(list, partner{id, n})
		all += n
	}
	slices.SortFunc(list, func(a, b partner) int {
		if c := cmp.Compare(b.live, a.live); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	for _, p := range list[:min(len(list), MaxPartnerSeries)] {
		ch <- prometheus.MustNewConstMetric(issLive, prometheus.GaugeValue, float64(p.live), p.id)
	}
	ch <- prometheus.MustNewConstMetric(issLiveAll, prometheus.GaugeValue, float64(all))
	ch <- prometheus.MustNewConstMetric(issPartners, prometheus.GaugeValue, float64(len(list)))
	ch <- prometheus.MustNewConstMetric(issTruncated, prometheus.GaugeValue, boolValue(c.truncated))
	ch <- prometheus.MustNewConstMetric(issAge, prometheus.GaugeValue, now.Sub(c.at).Seconds())
}
