package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/treaty-dev/treaty/access"
	"github.com/treaty-dev/treaty/metrics"
)

// observability is the metrics side of a Server: the registry the interceptors count into and the
// /metrics HTTP server on its own listener (--metrics-listen), apart from the API listeners so
// that scrapers and firewalls treat it separately.
type observability struct {
	metrics *metrics.Registry // nil without MetricsListen: no metrics interceptor either
	lis     net.Listener
	http    *http.Server
}

// listenMetrics opens the metrics listener and creates the registry, when MetricsListen is set.
// It runs before the gRPC server is built, whose interceptors count into the registry.
func (s *Server) listenMetrics() error {
	if s.cfg.MetricsListen == "" {
		return nil
	}
	lis, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("listen on %s (--metrics-listen): %w", s.cfg.MetricsListen, err)
	}
	s.obs.lis, s.obs.metrics = lis, metrics.New()
	return nil
}

// serveMetrics registers the collectors of the domain objects this process runs and starts
// serving /metrics. It runs once every service is registered.
func (s *Server) serveMetrics() {
	m := s.obs.metrics
	if m == nil {
		return
	}
	// The gRPC series are not created at zero for every method (InitializeGRPC): 70 methods times
	// 17 codes and 17 buckets would be some 2,400 idle series. They appear at a method's first call.
	if s.pdp != nil {
		m.MustRegister(metrics.PDP(s.pdp))
	}
	if s.decisions != nil {
		m.MustRegister(metrics.DecisionLog(s.decisions))
	}
	if s.revokerSvc != nil {
		m.MustRegister(metrics.Revoker(s.revokerSvc))
	}
	if s.issuer != nil {
		m.MustRegister(metrics.Issuer(s.issuer, metrics.DefaultLiveInterval))
	}
	mux := http.NewServeMux()
	// Metrics name partners and subscribers: a scraper authenticates like any caller (Prometheus
	// sends a bearer token from its credentials_file, or a client certificate) as an auditor.
	mux.Handle("GET /metrics", s.authn.HTTP(m.Handler(s.log), access.RoleAuditor, access.RoleOperator))
	s.obs.http = &http.Server{
		Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv, lis := s.obs.http, s.obs.lis
	serve := srv.Serve
	if s.tls != nil {
		srv.TLSConfig = s.tls.ServerConfig()
		serve = func(l net.Listener) error { return srv.ServeTLS(l, "", "") }
	}
	go func() {
		if err := serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics server stopped", "err", err)
		}
	}()
}

// stopMetrics stops the metrics server, waiting at most the grace period for scrapes in flight.
func (s *Server) stopMetrics() {
	if s.obs.http == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	if err := s.obs.http.Shutdown(ctx); err != nil {
		s.obs.http.Close()
	}
}

// closeMetricsListener closes the metrics listener after a failed Start (Shutdown closes it with
// the server).
func (s *Server) closeMetricsListener() {
	if s.obs.lis != nil {
		s.obs.lis.Close()
	}
}

// MetricsAddr returns the address /metrics is served on, or "" without MetricsListen.
func (s *Server) MetricsAddr() string {
	if s.obs.lis == nil {
		return ""
	}
	return s.obs.lis.Addr().String()
}
