// Package metrics defines Treaty's Prometheus metrics: the gRPC server's per-RPC counts and
// latencies (go-grpc-middleware's Prometheus provider), the Go runtime's and the process's, and a
// collector per domain object (the PDP, the revoker's subscriptions, the issuer's inventory) that
// reads what the object already keeps when it is scraped. Domain packages know nothing of
// Prometheus: they expose plain read-only accessors (pdp.(*PDP).Stats and DecisionCounts,
// revokersvc.(*Service).Subscribers and SubscriberStats, issuer.(*Issuer).LivePerPartner), and
// counting on a hot path stays an atomic add there.
//
// Every metric lives in a Registry of its own, never in Prometheus's global registry, so that two
// servers in one process (tests) never share or clash.
//
// Treaty's own metrics, by collector (labels in braces; every label's values are bounded):
//
//	PDP:     treaty_pdp_decisions_total{kind,result,reason}, treaty_pdp_status{status},
//	         treaty_pdp_feed_applied_sequence, treaty_pdp_feed_head_sequence,
//	         treaty_pdp_feed_lag_events, treaty_pdp_feed_last_contact_seconds,
//	         treaty_pdp_snapshot_records{kind}, treaty_pdp_shadow_policy_disagreements_total
//	Revoker: treaty_revoker_head_sequence, treaty_revoker_subscribers,
//	         treaty_revoker_subscribers_cut_off_total{reason},
//	         treaty_revoker_subscriber_lag_events{subscriber} (the 50 furthest behind),
//	         treaty_revoker_subscriber_streams{subscriber}, treaty_revoker_subscriber_lag_max_events
//	Issuer:  treaty_issuer_credentials_live{partner} (the 100 partners with the most),
//	         treaty_issuer_credentials_live_all, treaty_issuer_partners_with_live_credentials,
//	         treaty_issuer_credentials_live_truncated, treaty_issuer_credentials_live_age_seconds
package metrics

import (
	"context"
	"log/slog"
	"net/http"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
)

// namespace prefixes Treaty's own metrics.
const namespace = "treaty"

// rpcBuckets are the gRPC handling-time histogram's buckets, in seconds: decisions take well under
// a millisecond, so the default buckets (from 5 ms) would put them all in the first.
var rpcBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Registry holds one process's metrics.
type Registry struct {
	reg  *prometheus.Registry
	grpc *grpcprom.ServerMetrics
}

// New returns a registry holding the Go runtime's and the process's metrics and the gRPC server
// metrics (grpc_server_started_total, grpc_server_handled_total, grpc_server_msg_received_total,
// grpc_server_msg_sent_total and the grpc_server_handling_seconds histogram, labelled by
// grpc_type, grpc_service, grpc_method and, for handled, grpc_code).
func New() *Registry {
	r := &Registry{
		reg:  prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(rpcBuckets))),
	}
	r.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), r.grpc)
	return r
}

// UnaryServerInterceptor counts and times unary RPCs. On a nil Registry (metrics off) it passes
// calls through, so that a server's interceptor chain reads the same either way.
func (r *Registry) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	if r == nil {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(ctx, req)
		}
	}
	return r.grpc.UnaryServerInterceptor()
}

// StreamServerInterceptor counts and times streaming RPCs and their messages. On a nil Registry
// it passes calls through.
func (r *Registry) StreamServerInterceptor() grpc.StreamServerInterceptor {
	if r == nil {
		return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			return handler(srv, ss)
		}
	}
	return r.grpc.StreamServerInterceptor()
}

// InitializeGRPC creates the gRPC series of every method srv serves, at zero, so that rates exist
// before the first call. Call it once every service is registered.
func (r *Registry) InitializeGRPC(srv reflection.ServiceInfoProvider) { r.grpc.InitializeMetrics(srv) }

// MustRegister adds collectors (for example the ones PDP, Revoker and Issuer return); it panics
// if one clashes with a metric already registered, which is a programming error.
func (r *Registry) MustRegister(cs ...prometheus.Collector) { r.reg.MustRegister(cs...) }

// Handler serves the metrics in the Prometheus exposition formats. A collector that fails (say,
// the issuer's store) is logged to log and its metrics left out; the rest are still served.
func (r *Registry) Handler(log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4, // a scrape reads every collector: a few at once is plenty
		Registry:            r.reg,
	})
}
