// Package services assembles Treaty's gRPC services into one server process: it opens each
// service's store, connects the services to one another through their gRPC clients (even when
// they share the process), installs the interceptor chain, health checking and reflection, and
// shuts everything down in order.
package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/ratelimit"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/access"
	"github.com/treaty-dev/treaty/backup"
	"github.com/treaty-dev/treaty/certs"
	"github.com/treaty-dev/treaty/decisionlog"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/metrics"
	"github.com/treaty-dev/treaty/notify"
	"github.com/treaty-dev/treaty/outbox"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/posture"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/accesssvc"
	"github.com/treaty-dev/treaty/services/adminsvc"
	"github.com/treaty-dev/treaty/services/auditsvc"
	"github.com/treaty-dev/treaty/services/authn"
	"github.com/treaty-dev/treaty/services/authzen"
	"github.com/treaty-dev/treaty/services/decisionlogsvc"
	"github.com/treaty-dev/treaty/services/extauthz"
	"github.com/treaty-dev/treaty/services/inventorysvc"
	"github.com/treaty-dev/treaty/services/issuersvc"
	"github.com/treaty-dev/treaty/services/notifysvc"
	"github.com/treaty-dev/treaty/services/oauthhttp"
	"github.com/treaty-dev/treaty/services/pdpsvc"
	"github.com/treaty-dev/treaty/services/registrysvc"
	"github.com/treaty-dev/treaty/services/requestid"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/services/ssfhttp"
	"github.com/treaty-dev/treaty/ssf"
	"github.com/treaty-dev/treaty/store"
)

// Server is a running Treaty process.
type Server struct {
	cfg    Config
	log    *slog.Logger
	lis    net.Listener
	grpc   *grpc.Server
	health *health.Server

	pdp        *pdp.PDP
	decisions  *decisionlog.Log
	decLogSvc  *decisionlogsvc.Service
	auditSvc   *auditsvc.Service
	http       *http.Server // the AuthZEN and SSF APIs, when HTTPListen is set
	httpPDP    *pdp.PDP     // the PDP AuthZEN serves, when it runs here
	httpTrust  *Trust
	httpLis    net.Listener
	tls        *certs.Files // the listeners' and peer calls' certificates, with TLS
	access     *access.Access
	authn      *authn.Authn
	bootstrap  string // the admin token created at this start, if this start created it
	revokerSvc *revokersvc.Service
	issuer     *issuer.Issuer
	notifier   *notify.Notifier // the webhook notifier, when --webhook-url is given
	posture    *posture.Runner  // the posture findings' schedule, when the registry runs here

	cancel  context.CancelFunc // stops background loops
	loops   sync.WaitGroup
	served  chan error
	conns   []*grpc.ClientConn
	stores  []store.Store
	etcd    *clientv3.Client // the cluster the shared stores live in, with Store.Backend etcd
	named   []backup.Source  // the stores by name, for backups
	stopped sync.Once

	obs observability // metrics.go: the registry and the /metrics server, with MetricsListen
}

// serviceNames are the health-check names of each service.
var serviceNames = map[string]string{
	Registry: treatyv1.RegistryService_ServiceDesc.ServiceName,
	Issuer:   treatyv1.IssuerService_ServiceDesc.ServiceName,
	PDP:      treatyv1.DecisionService_ServiceDesc.ServiceName,
	Revoker:  treatyv1.RevocationService_ServiceDesc.ServiceName,
}

// Start validates cfg, opens the stores, and starts serving. The server reports SERVING through
// the standard health service once every service it runs is ready; with a PDP, that means once
// the PDP has caught up with the feed.
func Start(cfg Config) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Logger = slog.New(requestid.Handler(cfg.Logger.Handler())) // lines logged with a call's context carry its request id
	s := &Server{cfg: cfg, log: cfg.Logger, served: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.closeResources()
		}
	}()
	if cfg.TLS.Enabled() {
		ca := cfg.TLS.CAFile
		if ca == "" {
			// This server's own services call one another through its listener: the CA that
			// vouches for clients is, in the usual deployment, the one that signed this server.
			ca = cfg.TLS.ClientCAFile
		}
		if s.tls, err = certs.Load(cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.TLS.ClientCAFile, ca, certs.WithLogger(s.log)); err != nil {
			return nil, err
		}
	} else if cfg.Insecure {
		s.log.Warn("--insecure: listening without TLS beyond loopback; tokens cross the network in the clear", "listen", cfg.Listen, "http_listen", cfg.HTTPListen)
	}
	if s.lis, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if cfg.HTTPListen != "" {
		if s.httpLis, err = net.Listen("tcp", cfg.HTTPListen); err != nil {
			return nil, fmt.Errorf("listen on %s (--http-listen): %w", cfg.HTTPListen, err)
		}
		if cfg.HTTPBaseURL == "" {
			cfg.HTTPBaseURL = s.scheme() + s.httpLis.Addr().String()
			s.cfg.HTTPBaseURL = cfg.HTTPBaseURL
		}
	}
	if err := s.listenMetrics(); err != nil {
		return nil, err
	}
	if cfg.IssuerURL == "" {
		// The issuer identifier is where its OAuth metadata lives (RFC 8414): the HTTP listener
		// when there is one, else the gRPC address.
		cfg.IssuerURL = s.scheme() + s.lis.Addr().String()
		if cfg.HTTPListen != "" && cfg.runs(Issuer) {
			cfg.IssuerURL = strings.TrimRight(cfg.HTTPBaseURL, "/")
		}
		s.cfg.IssuerURL = cfg.IssuerURL
	}
	if cfg.Store.Etcd() {
		if s.etcd, err = dialEtcd(cfg.Store); err != nil {
			return nil, err
		}
	}
	if err := s.openAccess(); err != nil {
		return nil, err
	}
	var serverOpts []grpc.ServerOption
	if s.tls != nil {
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(s.tls.ServerConfig())))
	}
	s.grpc = newGRPCServer(s.log, s.obs.metrics, guards(s.authn, s.cfg.RateLimits), serverOpts...)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.setHealth(healthpb.HealthCheckResponse_NOT_SERVING)

	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if err := s.assemble(ctx); err != nil {
		return nil, err
	}
	s.serveMetrics()
	go func() { s.served <- s.grpc.Serve(s.lis) }()
	if s.posture != nil {
		// Only now: its first computation asks this process's issuer, which serves from here on.
		s.goLoop(func() { s.posture.Run(ctx) })
	}
	s.goLoop(func() { s.watchReadiness(ctx) })
	s.log.Info("treaty serving", "addr", s.Addr(), "http_addr", s.HTTPAddr(), "metrics_addr", s.MetricsAddr(), "tls", s.tls != nil,
		"services", cfg.Services, "peers", cfg.Peers, "data", cfg.DataDir, "store", cfg.Store.Backend,
		"issuer_url", cfg.IssuerURL)
	return s, nil
}

// assemble opens each service's store, builds the domain objects and registers the adapters.
func (s *Server) assemble(ctx context.Context) error {
	cfg := s.cfg
	peer := func(name string) (*grpc.ClientConn, error) {
		addr := cfg.Peers[name]
		if addr == "" {
			addr = s.selfAddr()
		}
		opts := []grpc.DialOption{
			grpc.WithTransportCredentials(s.peerCredentials()),
			// one request id across Treaty's own calls (the issuer's to the PDP, to the registry)
			grpc.WithChainUnaryInterceptor(requestid.UnaryClientInterceptor()),
		}
		switch {
		case cfg.Peers[name] == "":
			// This process's own service: the in-memory token only this process knows.
			opts = append(opts, grpc.WithPerRPCCredentials(authn.Token(s.access.InternalToken())))
		case cfg.PeerCredentialFile != "":
			creds, err := authn.TokenFile(cfg.PeerCredentialFile)
			if err != nil {
				return nil, fmt.Errorf("--peer-credential-file: %w", err)
			}
			opts = append(opts, grpc.WithPerRPCCredentials(creds))
		}
		if name == Revoker {
			// Feed followers: static flow-control windows, so no BDP ping rides on every event.
			opts = append(opts, revokersvc.FeedDialOptions()...)
		}
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			return nil, fmt.Errorf("connect to the %s at %s: %w", name, addr, err)
		}
		s.conns = append(s.conns, conn)
		return conn, nil
	}
	open := s.open
	relay := func(st store.Store) (*outbox.Relay, error) {
		conn, err := peer(Revoker)
		if err != nil {
			return nil, err
		}
		r := outbox.NewRelay(st, revokersvc.NewPublisher(conn), s.log)
		s.goLoop(func() { r.Run(ctx) })
		return r, nil
	}

	if cfg.runs(Revoker) {
		st, err := open(Revoker, revoker.Schema)
		if err != nil {
			return err
		}
		rcfg := revoker.Config{MaxCredentialTTL: cfg.MaxCredentialTTL, Logger: s.log}
		if cfg.runs(Issuer) || cfg.Peers[Issuer] != "" {
			conn, err := peer(Issuer)
			if err != nil {
				return err
			}
			rcfg.Credentials = issuersvc.NewCredentialLookup(conn)
			rcfg.Inventory = issuersvc.NewInventory(conn)
		}
		log, err := revoker.Open(st, rcfg)
		if err != nil {
			return err
		}
		s.goLoop(func() { log.RunCompaction(ctx) })
		s.revokerSvc = revokersvc.New(revokersvc.Config{Log: log, Heartbeat: cfg.Heartbeat, Logger: s.log, Identify: callerName})
		s.revokerSvc.Register(s.grpc)
	}
	if cfg.runs(Registry) {
		st, err := open(Registry, registry.Schema)
		if err != nil {
			return err
		}
		r, err := relay(st)
		if err != nil {
			return err
		}
		rcfg := registry.Config{Store: st, Relay: r, MaxCredentialTTL: cfg.MaxCredentialTTL, Logger: s.log}
		if cfg.runs(Issuer) || cfg.Peers[Issuer] != "" {
			// Offboarding revokes credentials one by one and confirms none is left in the inventory.
			revConn, err := peer(Revoker)
			if err != nil {
				return err
			}
			issConn, err := peer(Issuer)
			if err != nil {
				return err
			}
			rcfg.Revoker, rcfg.Inventory = revokersvc.NewCredentialRevoker(revConn), issuersvc.NewCredentialInventory(issConn)
		}
		reg, err := registry.New(rcfg)
		if err != nil {
			return err
		}
		s.goLoop(func() { reg.Run(ctx) }) // the contract-end scheduler, which also resumes offboardings
		registrysvc.New(registrysvc.Config{Registry: reg, Logger: s.log}).Register(s.grpc)
		inventorysvc.New(inventorysvc.Config{Registry: reg, Logger: s.log}).Register(s.grpc)
		s.auditSvc = auditsvc.New(auditsvc.Config{Registry: reg, Logger: s.log})
		s.auditSvc.Register(s.grpc)
		if len(cfg.Notify.WebhookURLs) > 0 {
			if err := s.startNotify(ctx, reg, open, peer); err != nil {
				return err
			}
		}
		if err := s.startReports(reg, peer); err != nil {
			return err
		}
	}
	if cfg.runs(PDP) {
		st, err := open(PDP, pdp.Schema)
		if err != nil {
			return err
		}
		conn, err := peer(Revoker)
		if err != nil {
			return err
		}
		dlStore, err := open("decisionlog", decisionlog.Schema)
		if err != nil {
			return err
		}
		rate := cfg.DecisionLog.AllowSample
		if rate == 0 {
			rate = decisionlog.KeepNoAllows
		}
		denyWait := cfg.DecisionLog.MaxDenyWait
		if denyWait <= 0 {
			denyWait = -1 // decisionlog's "without bound"
		}
		if s.decisions, err = decisionlog.Open(decisionlog.Config{
			Store: dlStore, AllowSampleRate: rate, MaxAllowsPerSecond: cfg.DecisionLog.MaxAllowsPerSecond,
			MaxAge: cfg.DecisionLog.MaxAge, MaxRecords: cfg.DecisionLog.MaxRecords, MaxDenyWait: denyWait, Logger: s.log,
		}); err != nil {
			return err
		}
		s.decLogSvc = decisionlogsvc.New(decisionlogsvc.Config{Log: s.decisions, Logger: s.log})
		s.decLogSvc.Register(s.grpc)
		p, err := pdp.New(pdp.Config{
			Store: st, Source: revokersvc.NewSource(conn), StalenessBound: cfg.StalenessBound, Recorder: s.decisions, Logger: s.log,
			Environment: cfg.Environment,
		})
		if err != nil {
			return err
		}
		s.pdp = p
		s.goLoop(func() { p.Run(ctx) })
		if cfg.runs(Issuer) || cfg.Peers[Issuer] != "" {
			// Tell the issuer's inventory when credentials were last seen allowed, in batches.
			issConn, err := peer(Issuer)
			if err != nil {
				return err
			}
			rep, err := pdp.NewUsageReporter(pdp.UsageReporterConfig{PDP: p, Sink: issuersvc.NewUsageSink(issConn), Interval: cfg.UsageInterval, Logger: s.log})
			if err != nil {
				return err
			}
			s.goLoop(func() { rep.Run(ctx) })
		}
		trust := NewTrust(cfg.TrustSubjectsFrom, cfg.TrustSubjectsIdentities)
		pdpsvc.New(pdpsvc.Config{PDP: p, Trusted: trust.GRPC, Logger: s.log}).Register(s.grpc)
		if cfg.ExtAuthzRoutes != "" {
			routes, err := extauthz.LoadRoutes(cfg.ExtAuthzRoutes)
			if err != nil {
				return fmt.Errorf("--extauthz-routes: %w", err)
			}
			ext, err := extauthz.New(extauthz.Config{PDP: p, Routes: routes, Environment: cfg.Environment, Logger: s.log})
			if err != nil {
				return fmt.Errorf("ext_authz: %w", err)
			}
			ext.Register(s.grpc)
		}
		s.httpPDP, s.httpTrust = p, trust
	}
	if cfg.runs(Issuer) {
		st, err := open(Issuer, issuer.Schema)
		if err != nil {
			return err
		}
		r, err := relay(st)
		if err != nil {
			return err
		}
		regConn, err := peer(Registry)
		if err != nil {
			return err
		}
		var authz issuer.Authorizer
		if s.pdp != nil {
			authz = pdpsvc.NewLocalAuthorizer(s.pdp) // the PDP runs here: no loopback round trip per issuance
		} else {
			pdpConn, err := peer(PDP)
			if err != nil {
				return err
			}
			authz = pdpsvc.NewAuthorizer(pdpConn)
		}
		revConn, err := peer(Revoker)
		if err != nil {
			return err
		}
		iss, err := issuer.New(issuer.Config{
			Store: st, Relay: r, Directory: issuer.CachedDirectory(registrysvc.NewDirectory(regConn), directoryCacheTTL), Authorizer: authz,
			Feed: revokersvc.NewSource(revConn), IssuerURL: cfg.IssuerURL, MaxCredentialTTL: cfg.MaxCredentialTTL, Logger: s.log,
			SigningAlgorithm: cfg.SigningAlgorithm, KeyRotation: cfg.KeyRotation, KeyPrepublish: cfg.KeyPrepublish,
			KEKFile: cfg.KEKFile, DataDir: cfg.DataDir,
		})
		if err != nil {
			return err
		}
		s.issuer = iss
		issuersvc.New(issuersvc.Config{Issuer: iss, Logger: s.log}).Register(s.grpc)
	}
	if cfg.HTTPListen != "" {
		if err := s.startHTTP(ctx, open, peer); err != nil {
			return err
		}
	}
	adminsvc.New(adminsvc.Config{Stores: backupOrder(s.named), Logger: s.log}).Register(s.grpc)
	accesssvc.New(accesssvc.Config{Access: s.access, Logger: s.log}).Register(s.grpc)
	return nil
}

// open opens the named store, in the etcd cluster for the shared ones with Store.Backend etcd
// (clusterStores), else in the data folder; it is closed with the server.
func (s *Server) open(name string, schema store.Schema) (store.Store, error) {
	if s.etcd != nil && clusterStores[name] {
		st, err := openEtcd(s.etcd, s.cfg.Store, name, schema)
		if err != nil {
			return nil, err
		}
		s.stores = append(s.stores, st)
		s.named = append(s.named, backup.Source{Name: name, Store: st, Elsewhere: "etcd, prefix " + s.cfg.Store.Prefix + "/" + name})
		return st, nil
	}
	st, err := store.OpenBolt(filepath.Join(s.cfg.DataDir, name+".db"), schema)
	if err != nil {
		return nil, err
	}
	s.stores = append(s.stores, st)
	s.named = append(s.named, backup.Source{Name: name, Store: st})
	return st, nil
}

// AdminCredentialFile is the file, in the data folder, the first start writes the admin token to.
const AdminCredentialFile = "admin.credential"

// openAccess opens the callers' identities and, on a store without any (a new data folder, or a
// new etcd prefix), creates the admin identity and writes its token (mode 0600) for the operator
// to pick up.
func (s *Server) openAccess() error {
	st, err := s.open("access", access.Schema)
	if err != nil {
		return err
	}
	cfg := access.Config{Store: st, Logger: s.log}
	if s.etcd != nil {
		// Identities are shared, refusals stay with the replica that refused (access.Config).
		if cfg.Refusals, err = s.open(access.RefusalSchema.Name, access.RefusalSchema); err != nil {
			return err
		}
	}
	if s.access, err = access.Open(cfg); err != nil {
		return err
	}
	path := filepath.Join(s.cfg.DataDir, AdminCredentialFile)
	tok, created, err := s.access.Bootstrap(path)
	if err != nil {
		return fmt.Errorf("create the admin credential: %w", err)
	}
	if created {
		s.bootstrap = tok // access logged it, without the token
	}
	s.authn = authn.New(authn.Config{Access: s.access, Logger: s.log})
	return nil
}

// BootstrapToken returns the admin token this start created on an empty data folder (to show the
// operator once), or "".
func (s *Server) BootstrapToken() string { return s.bootstrap }

// guards are the interceptors that decide whether a call is served at all: who the caller is and
// whether a role of theirs allows the method, then whether they are within their rate.
func guards(a *authn.Authn, limits RateLimits) []guard {
	lim := newLimiter(limits, func(ctx context.Context) (string, bool) {
		c, ok := authn.CallerFrom(ctx)
		if !ok {
			return "", false
		}
		// Treaty's own services calling one another are not throttled: they carry every
		// partner's traffic.
		return c.Name, slices.Contains(c.Roles, access.RoleService)
	})
	return []guard{
		{a.Unary(), a.Stream()},
		{ratelimit.UnaryServerInterceptor(lim), ratelimit.StreamServerInterceptor(lim)},
	}
}

// callerName names the authenticated caller of ctx, for the revoker's per-subscriber metrics.
func callerName(ctx context.Context) string {
	c, _ := authn.CallerFrom(ctx)
	return c.Name
}

// guard is a pair of interceptors, unary and stream, that do one thing.
type guard struct {
	unary  grpc.UnaryServerInterceptor
	stream grpc.StreamServerInterceptor
}

// directoryCacheTTL is how long the issuer reuses the registry's answers about a workload, its
// integration and partner. Blocks, suspensions, contract ends and scope ceilings are enforced by
// the PDP from the feed on every issuance whatever the cache holds; what may lag by this much is a
// key removed from a workload or an integration's new audiences or TTL. Client secrets are never
// cached.
const directoryCacheTTL = time.Second

// backupOrder puts the revoker's store last, so that every change another store considers
// published is in the revoker's copy (see package backup).
func backupOrder(named []backup.Source) []backup.Source {
	out := make([]backup.Source, 0, len(named))
	var last []backup.Source
	for _, n := range named {
		if n.Name == Revoker {
			last = append(last, n)
			continue
		}
		out = append(out, n)
	}
	return append(out, last...)
}

// startHTTP serves the HTTP APIs on their own listener: AuthZEN when the PDP runs here, the SSF
// transmitter when --ssf-receiver-token-file is given.
func (s *Server) startHTTP(ctx context.Context, open func(string, store.Schema) (store.Store, error), peer func(string) (*grpc.ClientConn, error)) error {
	lis, base := s.httpLis, s.cfg.HTTPBaseURL
	mux := http.NewServeMux()
	if s.cfg.SSFReceiverTokenFile != "" {
		if err := s.startSSF(ctx, mux, base, open, peer); err != nil {
			return err
		}
	}
	if s.issuer != nil {
		if err := s.startOAuth(mux, peer); err != nil {
			return err
		}
	}
	if s.httpPDP != nil {
		h, err := authzen.New(authzen.Config{PDP: s.httpPDP, BaseURL: base, Trusted: s.httpTrust.HTTP, Logger: s.log})
		if err != nil {
			return fmt.Errorf("authzen: %w", err)
		}
		// Evaluations need a caller with the pdp-client role, like the gRPC Check; the metadata
		// document says only where the endpoints are, and is public.
		mux.Handle(authzen.PathMetadata, h)
		mux.Handle("/", s.authn.HTTP(h, access.RolePDPClient))
	}
	// Timeouts bound what a slow or idle client can hold: bodies are small and decisions fast.
	s.http = &http.Server{
		Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	serve := s.http.Serve
	if s.tls != nil {
		s.http.TLSConfig = s.tls.ServerConfig()
		serve = func(l net.Listener) error { return s.http.ServeTLS(l, "", "") }
	}
	go func() {
		if err := serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("HTTP server stopped", "err", err)
		}
	}()
	return nil
}

// startOAuth mounts the issuer's OAuth endpoints (token, revocation, introspection, JWKS,
// metadata) on mux; their paths are exact, so they win over AuthZEN's "/".
func (s *Server) startOAuth(mux *http.ServeMux, peer func(string) (*grpc.ClientConn, error)) error {
	revConn, err := peer(Revoker)
	if err != nil {
		return err
	}
	iss := s.issuer
	cfg := oauthhttp.Config{
		Issuer: iss, Logger: s.log,
		Revoker: oauthhttp.RevocationClient(treatyv1.NewRevocationServiceClient(revConn)),
		TokenExchange: func(ctx context.Context, r oauthhttp.ExchangeRequest) (issuer.Issued, error) {
			req, err := issuer.ExchangeRequestFromForm(r.Client, r.Form)
			if err != nil {
				return issuer.Issued{}, err
			}
			return iss.Exchange(ctx, req)
		},
	}
	if s.httpPDP != nil {
		cfg.Introspector = s.httpPDP
	}
	h, err := oauthhttp.New(cfg)
	if err != nil {
		return fmt.Errorf("oauth: %w", err)
	}
	h.Register(mux)
	return nil
}

// startSSF runs the Shared Signals transmitter, following the revoker's feed, and mounts its
// endpoints on mux.
func (s *Server) startSSF(ctx context.Context, mux *http.ServeMux, base string, open func(string, store.Schema) (store.Store, error), peer func(string) (*grpc.ClientConn, error)) error {
	tok, err := ssfhttp.ReadToken(s.cfg.SSFReceiverTokenFile)
	if err != nil {
		return fmt.Errorf("--ssf-receiver-token-file: %w", err)
	}
	st, err := open("ssf", ssf.Schema)
	if err != nil {
		return err
	}
	conn, err := peer(Revoker)
	if err != nil {
		return err
	}
	tr, err := ssf.Open(st, ssf.Config{
		Issuer: base, TokenIssuer: s.cfg.IssuerURL, Source: revokersvc.NewSource(conn), Audience: s.cfg.SSFAudience, Logger: s.log,
	})
	if err != nil {
		return fmt.Errorf("ssf: %w", err)
	}
	s.goLoop(func() { tr.Run(ctx) }) // ends with ctx, before the stores close
	h, err := ssfhttp.New(ssfhttp.Config{Transmitter: tr, ReceiverToken: tok, Logger: s.log})
	if err != nil {
		return fmt.Errorf("ssf: %w", err)
	}
	h.Register(mux)
	return nil
}

// startNotify runs the webhook notifier beside the registry: it follows the revoker's feed and
// the registry's audit trail, and serves its delivery log (NotifyService).
func (s *Server) startNotify(ctx context.Context, reg *registry.Registry, open func(string, store.Schema) (store.Store, error), peer func(string) (*grpc.ClientConn, error)) error {
	secret, err := notify.ReadSecret(s.cfg.Notify.SecretFile)
	if err != nil {
		return fmt.Errorf("--webhook-secret-file: %w", err)
	}
	st, err := open("notify", notify.Schema)
	if err != nil {
		return err
	}
	conn, err := peer(Revoker)
	if err != nil {
		return err
	}
	n, err := notify.Open(ctx, notify.Config{
		Store: st, Endpoints: s.cfg.Notify.WebhookURLs, Secret: secret, Directory: reg, Feed: revokersvc.NewSource(conn),
		ContractWarning: s.cfg.Notify.ContractWarning, Logger: s.log,
	})
	if err != nil {
		return err
	}
	s.notifier = n
	s.goLoop(func() { n.Run(ctx) })
	notifysvc.New(notifysvc.Config{Notifier: n, Logger: s.log}).Register(s.grpc)
	return nil
}

// HTTPAddr returns the address the AuthZEN HTTP API listens on, or "" without one.
func (s *Server) HTTPAddr() string {
	if s.httpLis == nil {
		return ""
	}
	return s.httpLis.Addr().String()
}

// streamWorkers is how many goroutines the gRPC server keeps to run calls on. Without them every
// call runs on a new goroutine, whose small stack grows (and is copied) several times over an
// issuance's deep call chain: 4-5% of the server's CPU at 32 concurrent issuing clients. A worker
// keeps its grown stack (gRPC replaces it every 65,536 calls); a call arriving while all workers
// are busy (a subscriber's stream holds one for as long as it lasts) gets its own goroutine as
// before.
const streamWorkers = 64

// newGRPCServer builds the server with Treaty's interceptor chain. The order is deliberate:
// recovery outermost, so a panic anywhere (including in logging) becomes INTERNAL; then the
// request id, so that everything after it (and the response header) has it; then metrics (when
// m is not nil: --metrics-listen), which count every call the server handles, refused ones
// included; then logging, which records method, code, duration and request id but never
// payloads, because requests carry tokens and assertions; then the guards (who calls, may they,
// within their rate); innermost, the bound on how long a stream may wait for its request.
// Validation happens in each service's handlers, at the edge of its domain code.
func newGRPCServer(log *slog.Logger, m *metrics.Registry, guards []guard, opts ...grpc.ServerOption) *grpc.Server {
	onPanic := recovery.WithRecoveryHandler(func(p any) error {
		log.Error("panic in handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error; the server log has the details")
	})
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	unary := []grpc.UnaryServerInterceptor{
		recovery.UnaryServerInterceptor(onPanic),
		requestid.UnaryServerInterceptor(),
		m.UnaryServerInterceptor(), // passes through when m is nil
		logging.UnaryServerInterceptor(logger, logOpts...),
	}
	stream := []grpc.StreamServerInterceptor{
		recovery.StreamServerInterceptor(onPanic),
		requestid.StreamServerInterceptor(),
		m.StreamServerInterceptor(),
		logging.StreamServerInterceptor(logger, logOpts...),
	}
	for _, g := range guards {
		unary, stream = append(unary, g.unary), append(stream, g.stream)
	}
	stream = append(stream, streamDeadlines(StreamSetupTimeout))
	return grpc.NewServer(append(opts,
		grpc.NumStreamWorkers(streamWorkers),
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		grpc.ConnectionTimeout(handshakeTimeout),
		// protobuf, but decisions' tokens are read where they arrived instead of copied
		// (pdpsvc.ServerCodec; the option is marked experimental in grpc-go)
		grpc.ForceServerCodecV2(pdpsvc.ServerCodec()),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	)...)
}

// selfAddr is the address this process's services reach one another at: the listener's, with an
// unspecified host (0.0.0.0, ::) replaced by loopback, which is what a certificate names and what
// stays on this machine.
func (s *Server) selfAddr() string {
	addr := s.lis.Addr().(*net.TCPAddr)
	if addr.IP.IsUnspecified() {
		ip := net.IPv6loopback
		if addr.IP.To4() != nil {
			ip = net.IPv4(127, 0, 0, 1)
		}
		return net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
	}
	return addr.String()
}

// scheme is the URL scheme of this server's listeners.
func (s *Server) scheme() string {
	if s.tls != nil {
		return "https://"
	}
	return "http://"
}

// peerCredentials secures calls to peers (this process's own services included) the way the
// listeners are secured: TLS presenting this server's certificate when it has one, trusting the
// CA bundle current at each connection (peerTLS).
func (s *Server) peerCredentials() credentials.TransportCredentials {
	if s.tls != nil {
		return peerTLS{files: s.tls}
	}
	return insecure.NewCredentials()
}

func (s *Server) goLoop(fn func()) {
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		fn()
	}()
}

// watchReadiness keeps the health status in step with the PDP: SERVING once it has caught up with
// the feed, NOT_SERVING while it is syncing or stale. Without a PDP the server is ready at once.
func (s *Server) watchReadiness(ctx context.Context) {
	if s.pdp == nil {
		s.setHealth(healthpb.HealthCheckResponse_SERVING)
		s.log.Info("treaty ready", "addr", s.Addr())
		return
	}
	ready := false
	for {
		changed := s.pdp.StatusChanged() // before reading, so no change is missed
		if now := s.pdp.Ready(); now != ready {
			ready = now
			if ready {
				s.setHealth(healthpb.HealthCheckResponse_SERVING)
				s.log.Info("treaty ready", "addr", s.Addr(), "sequence", s.pdp.Applied())
			} else {
				s.setHealth(healthpb.HealthCheckResponse_NOT_SERVING)
				s.log.Warn("treaty not ready: the decision point is syncing or stale")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

func (s *Server) setHealth(st healthpb.HealthCheckResponse_ServingStatus) {
	s.health.SetServingStatus("", st)
	for _, name := range s.cfg.Services {
		svc := st
		if name != PDP && st == healthpb.HealthCheckResponse_NOT_SERVING && s.pdp != nil {
			svc = healthpb.HealthCheckResponse_SERVING // only the PDP waits for the feed
		}
		s.health.SetServingStatus(serviceNames[name], svc)
	}
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// IssuerURL returns the issuer identifier in use.
func (s *Server) IssuerURL() string { return s.cfg.IssuerURL }

// Ready reports whether every service run here is ready.
func (s *Server) Ready() bool { return s.pdp == nil || s.pdp.Ready() }

// Done returns a channel that receives the serving error if the server stops on its own.
func (s *Server) Done() <-chan error { return s.served }

// Shutdown stops the server in steps: health NOT_SERVING so probes steer traffic away; end the
// feed subscriptions, which would otherwise never finish; a graceful stop bounded by the grace
// period, then a hard stop; then background loops; then the stores. Once the listener closes,
// services in this process no longer reach each other either: a write still waiting for its
// feed publication answers UNAVAILABLE, stays queued durably and is published at the next start,
// and the PDP denies as syncing for the calls still in flight.
func (s *Server) Shutdown() {
	s.stopped.Do(func() {
		s.health.Shutdown()
		if s.revokerSvc != nil {
			s.revokerSvc.Close()
		}
		if s.decLogSvc != nil {
			s.decLogSvc.Close() // ends the tails, which would otherwise never finish
		}
		if s.auditSvc != nil {
			s.auditSvc.Close() // ends the following exports
		}
		if s.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
			if err := s.http.Shutdown(ctx); err != nil {
				s.http.Close()
			}
			cancel()
		}
		s.stopMetrics()
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(s.cfg.ShutdownGrace):
			s.log.Warn("graceful stop timed out; closing remaining connections")
			s.grpc.Stop()
		}
		s.closeResources()
		s.log.Info("treaty stopped")
	})
}

// closeResources stops background loops, then closes connections and stores; it also cleans up
// after a failed Start.
func (s *Server) closeResources() {
	if s.issuer != nil {
		s.issuer.Close() // its background waits use the relay and the store
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.loops.Wait()
	if s.decisions != nil {
		// No decision is made any more: flush what the log still queues before its store closes.
		if err := s.decisions.Close(); err != nil {
			s.log.Error("closing the decision log", "err", err)
		}
	}
	for _, c := range s.conns {
		c.Close()
	}
	var errs []error
	if s.access != nil {
		errs = append(errs, s.access.Close()) // flushes the queued refusals before its store closes
	}
	for _, st := range s.stores {
		errs = append(errs, st.Close())
	}
	if s.etcd != nil {
		errs = append(errs, s.etcd.Close()) // after the stores, whose requests it carries
	}
	if s.lis != nil {
		s.lis.Close()
	}
	if s.httpLis != nil {
		s.httpLis.Close()
	}
	s.closeMetricsListener()
	if err := errors.Join(errs...); err != nil {
		s.log.Error("closing stores", "err", err)
	}
}
