package services

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/notify"
	"github.com/treaty-dev/treaty/posture"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/token"
)

// The services one process can run.
const (
	Registry = "registry"
	Issuer   = "issuer"
	PDP      = "pdp"
	Revoker  = "revoker"
)

// All lists every service, in the order they are reported.
var All = []string{Registry, Issuer, PDP, Revoker}

// Config configures a Treaty server process.
type Config struct {
	// DataDir holds one bbolt file per service run here (with Store.Backend etcd, only the
	// process-local ones: the PDP's cache, the decision log and the callers' identities).
	DataDir string
	// Store says where the registry, issuer and revoker keep their state: bbolt files in DataDir
	// (the default) or an etcd cluster shared by replicas.
	Store StoreConfig
	// Listen is the address all services share, for example 127.0.0.1:7433.
	Listen string
	// Services lists the services to run here; empty means all.
	Services []string
	// Peers maps a service not run here to the address it is reached at. A service run here is
	// reached at this process's own address unless Peers says otherwise.
	Peers map[string]string
	// IssuerURL is the issuer identifier: the iss of every token and the aud of client assertions.
	// Empty means "http://" + the listen address.
	IssuerURL string
	// MaxCredentialTTL is the longest lifetime any credential may have in the deployment.
	MaxCredentialTTL time.Duration
	// SigningAlgorithm, KeyRotation, KeyPrepublish and KEKFile configure the issuer's signing keys
	// (see issuer.Config); zero values take the issuer's defaults.
	SigningAlgorithm string
	KeyRotation      time.Duration
	KeyPrepublish    time.Duration
	KEKFile          string
	// Heartbeat is how often the revoker tells subscribers its epoch and head.
	Heartbeat time.Duration
	// StalenessBound is how long the PDP may go without being caught up before it denies as stale.
	StalenessBound time.Duration
	// UsageInterval is how often the PDP reports credential usage to the issuer (which keeps
	// credentials' last seen and workloads' last use); zero means pdp.DefaultUsageInterval.
	UsageInterval time.Duration
	// HTTPListen, if set, serves the HTTP APIs on this address: AuthZEN (the PDP run here), OAuth
	// (the issuer run here) and Shared Signals (SSFReceiverTokenFile).
	HTTPListen string
	// HTTPBaseURL is the base URL the AuthZEN and SSF metadata name; default "http://" + HTTPListen.
	HTTPBaseURL string
	// SSFReceiverTokenFile, if set, runs the Shared Signals transmitter on the HTTP listener;
	// receivers present the bearer token the file holds to manage their streams and poll.
	SSFReceiverTokenFile string
	// SSFAudience is the aud of SETs for streams that do not name one.
	SSFAudience string
	// ExtAuthzRoutes, if set, is a route file (JSON) mapping HTTP method and path to action and
	// resource: the gRPC server then also serves Envoy's external authorization API.
	ExtAuthzRoutes string
	// Environment is the environment this deployment serves (for example "production"): the PDP
	// denies credentials of integrations of any other environment (pdp.Config.Environment), and
	// policy conditions see it for requests that arrive through ext_authz.
	Environment string
	// TrustSubjectsFrom lists the caller addresses allowed to send the PDP verified claims or a
	// bare workload id instead of a credential; empty trusts nobody.
	TrustSubjectsFrom []netip.Prefix
	// TrustSubjectsIdentities names the authenticated callers (identities) allowed the same.
	TrustSubjectsIdentities []string
	// DecisionLog configures the PDP's decision log (its Store is opened here).
	DecisionLog DecisionLogConfig
	// Notify configures the webhook notifier, which runs beside the registry.
	Notify NotifyConfig
	// Posture configures the posture findings the report service computes beside the registry.
	Posture PostureConfig
	// TLS configures certificates for every listener; without them the listeners speak plaintext
	// and (unless Insecure) only on loopback.
	TLS TLSConfig
	// Insecure lets plaintext listeners bind to non-loopback addresses. Callers still
	// authenticate, but their tokens cross the network in the clear: for a network that is
	// encrypted below Treaty, or a lab.
	Insecure bool
	// PeerCredentialFile holds the token this process presents to services it reaches at another
	// address (Peers); without it, it presents its TLS certificate, if any.
	PeerCredentialFile string
	// RateLimits bounds what one caller may ask of the server per second.
	RateLimits RateLimits
	// MetricsListen, if set, serves Prometheus metrics at /metrics on this address, a listener of
	// its own (see services/metrics.go).
	MetricsListen string
	// ShutdownGrace bounds how long a graceful stop waits for in-flight calls.
	ShutdownGrace time.Duration
	// Logger receives the server's logs.
	Logger *slog.Logger
}

// TLSConfig names the certificate files of the listeners and of calls to peers. They are
// reloaded when they change on disk, without a restart.
type TLSConfig struct {
	// CertFile and KeyFile are the server's certificate chain and private key (PEM); the server
	// also presents them as its client certificate to peers.
	CertFile, KeyFile string
	// ClientCAFile verifies client certificates (mTLS); a client may present a token instead.
	ClientCAFile string
	// CAFile verifies the certificates of peers this process calls; empty means the system's.
	CAFile string
}

// Enabled reports whether the listeners use TLS.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

// DecisionLogConfig says what the PDP's decision log keeps. Every deny is kept, unless the
// log's disk holds it up past MaxDenyWait.
type DecisionLogConfig struct {
	// AllowSample is the share of allows kept, in [0, 1]: zero keeps none (`treaty serve`
	// defaults it to 1, every allow).
	AllowSample float64
	// MaxAllowsPerSecond bounds the allows kept in any one second, after sampling (the rest are
	// counted as left out); zero or less means no bound (`treaty serve` defaults it to 1,000).
	// Denies are never bounded.
	MaxAllowsPerSecond int
	// MaxAge is how long decisions are kept; default 7 days.
	MaxAge time.Duration
	// MaxRecords bounds the decisions kept, the oldest going first; default 1,000,000.
	MaxRecords int
	// MaxDenyWait bounds how long a deny waits for room when the log's writer is behind, before
	// it is answered without an entry (counted as left out); zero or less waits without bound
	// (`treaty serve` defaults it to one second).
	MaxDenyWait time.Duration
}

// NotifyConfig configures the webhook notifier (package notify): with WebhookURLs it tells
// partners' owners and security contacts of contract ends approaching, kill-switch events,
// offboarding progress and new high-severity findings.
type NotifyConfig struct {
	// WebhookURLs are the endpoints every notification is POSTed to; none turns the notifier off.
	WebhookURLs []string
	// SecretFile holds the HMAC-SHA256 key deliveries are signed with; required with WebhookURLs.
	SecretFile string
	// ContractWarning is how long before a contract end its people are told; zero means
	// notify.DefaultContractWarning.
	ContractWarning time.Duration
}

// PostureConfig configures the posture findings (package posture) and their schedule.
type PostureConfig struct {
	// Interval is how often the findings are recomputed; zero means posture.DefaultInterval.
	Interval time.Duration
	// Rules holds the rules' thresholds; zero fields take posture's defaults.
	Rules posture.Config
	// OnNew, if set, receives the new high and critical findings of each computation (see
	// posture.RunnerConfig.OnNew): the owners' webhooks are wired here.
	OnNew func(context.Context, []posture.Finding)
}

// Defaults for Config fields left zero.
const (
	DefaultListen         = "127.0.0.1:7433"
	DefaultStalenessBound = 5 * time.Second
	DefaultShutdownGrace  = 5 * time.Second
)

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if len(c.Services) == 0 {
		c.Services = All
	}
	if c.MaxCredentialTTL == 0 {
		c.MaxCredentialTTL = token.DefaultMaxLifetime
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = time.Second
	}
	if c.StalenessBound == 0 {
		c.StalenessBound = DefaultStalenessBound
	}
	if c.RateLimits == (RateLimits{}) {
		c.RateLimits = RateLimits{Issuance: DefaultIssuanceRate, IssuanceBurst: DefaultIssuanceBurst, Admin: DefaultAdminRate, AdminBurst: DefaultAdminBurst}
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Store = c.Store.withDefaults()
	return c
}

// Validate reports the first problem with the configuration, in words an operator can act on.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.DataDir == "" {
		return fmt.Errorf("--data is required: the folder the services keep their files in")
	}
	for _, s := range c.Services {
		if !slices.Contains(All, s) {
			return fmt.Errorf("--services: unknown service %q (choose from %s)", s, strings.Join(All, ", "))
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together: the certificate and its private key")
	}
	if c.TLS.ClientCAFile != "" && !c.TLS.Enabled() {
		return fmt.Errorf("--client-ca verifies client certificates over TLS: give --tls-cert and --tls-key too")
	}
	if err := c.checkLoopback("--listen", c.Listen); err != nil {
		return err
	}
	for _, s := range c.Services {
		for _, dep := range needs[s] {
			if !c.runs(dep) && c.Peers[dep] == "" {
				return fmt.Errorf("the %s service needs the %s: run it here (--services) or give its address with --%s", s, dep, dep)
			}
		}
	}
	if c.Environment != "" && !registry.ValidEnvironment(c.Environment) {
		return fmt.Errorf("--environment %q must match ^[a-z][a-z0-9-]{0,31}$, for example production", c.Environment)
	}
	if c.ExtAuthzRoutes != "" || len(c.TrustSubjectsFrom) > 0 || len(c.TrustSubjectsIdentities) > 0 {
		if !c.runs(PDP) {
			return fmt.Errorf("--extauthz-routes, --trust-subjects-from and --trust-subjects-identity serve the decision point: run the pdp here (--services)")
		}
	}
	if c.HTTPListen != "" && !c.runs(PDP) && !c.runs(Issuer) && c.SSFReceiverTokenFile == "" {
		return fmt.Errorf("--http-listen serves AuthZEN (with the pdp here), OAuth (with the issuer here) or Shared Signals (with --ssf-receiver-token-file): none is configured")
	}
	if c.SSFReceiverTokenFile != "" {
		if c.HTTPListen == "" {
			return fmt.Errorf("--ssf-receiver-token-file needs --http-listen: the transmitter serves over HTTP")
		}
		if !c.runs(Revoker) && c.Peers[Revoker] == "" {
			return fmt.Errorf("the Shared Signals transmitter follows the revoker: run it here (--services) or give its address with --revoker")
		}
	}
	if c.HTTPListen != "" {
		if err := c.checkLoopback("--http-listen", c.HTTPListen); err != nil {
			return err
		}
	}
	if c.MetricsListen != "" {
		if err := c.checkLoopback("--metrics-listen", c.MetricsListen); err != nil {
			return err
		}
	}
	if c.HTTPBaseURL != "" {
		if u, err := url.Parse(c.HTTPBaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("--http-base-url %q must be an http(s) URL with a host", c.HTTPBaseURL)
		}
	}
	if d := c.DecisionLog; d.AllowSample < 0 || d.AllowSample > 1 || d.MaxAge < 0 || d.MaxRecords < 0 {
		return fmt.Errorf("--decision-log-allow-sample must be in [0, 1], and --decision-log-max-age and --decision-log-max-records must not be negative")
	}
	if err := c.Notify.validate(c); err != nil {
		return err
	}
	if err := c.Store.validate(c); err != nil {
		return err
	}
	if c.IssuerURL != "" {
		u, err := url.Parse(c.IssuerURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("--issuer-url %q must be an http(s) URL with a host and no query or fragment", c.IssuerURL)
		}
	}
	if err := c.Posture.Rules.Validate(); err != nil || c.Posture.Interval < 0 {
		return fmt.Errorf("--posture-interval, --posture-max-secret-age, --posture-max-key-age and --posture-usage-window must not be negative")
	}
	if c.UsageInterval < 0 {
		return fmt.Errorf("--usage-interval must not be negative")
	}
	if c.MaxCredentialTTL < time.Minute {
		return fmt.Errorf("--max-credential-ttl must be at least 1m")
	}
	if c.Heartbeat <= 0 || c.StalenessBound <= c.Heartbeat {
		return fmt.Errorf("--staleness-bound (%v) must be longer than --heartbeat (%v)", c.StalenessBound, c.Heartbeat)
	}
	return nil
}

func (n NotifyConfig) validate(c Config) error {
	if len(n.WebhookURLs) == 0 {
		if n.SecretFile != "" {
			return fmt.Errorf("--webhook-secret-file needs --webhook-url: it signs webhook deliveries")
		}
		return nil
	}
	if !c.runs(Registry) {
		return fmt.Errorf("--webhook-url: the notifier runs beside the registry; run it here (--services)")
	}
	if n.SecretFile == "" {
		return fmt.Errorf("--webhook-url needs --webhook-secret-file: every delivery is signed with the secret it holds")
	}
	if n.ContractWarning < 0 {
		return fmt.Errorf("--contract-warning must not be negative")
	}
	for _, raw := range n.WebhookURLs {
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("--webhook-url %s must be an absolute http(s) URL", notify.Redact(raw))
		}
	}
	return nil
}

// needs lists, for each service, the services it calls. The revoker's call to the issuer (to
// learn a revoked credential's expiry) is optional and not listed.
var needs = map[string][]string{
	Registry: {Revoker},
	Issuer:   {Registry, PDP, Revoker},
	PDP:      {Revoker},
}

func (c Config) runs(service string) bool { return slices.Contains(c.Services, service) }

// checkLoopback refuses plaintext listen addresses reachable from other machines: without TLS,
// tokens would cross the network in the clear. TLS, or an explicit Insecure, lifts the rule.
func (c Config) checkLoopback(flag, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %v", flag, addr, err)
	}
	if host == "localhost" || c.TLS.Enabled() || c.Insecure {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s %q is not a loopback address; without TLS Treaty only listens on loopback (for example 127.0.0.1:7433): give --tls-cert and --tls-key (treaty dev-certs makes a test set), or --insecure", flag, addr)
}
