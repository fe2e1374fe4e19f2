package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/notify"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/posture"
	"github.com/treaty-dev/treaty/services"
	"github.com/treaty-dev/treaty/token"
)

func (c *cli) serveCmd() *cobra.Command {
	cfg := services.Config{}
	var logFormat, logLevel string
	var trustFrom []string
	cmd := &cobra.Command{
		Use:   "serve --data DIR [--listen ADDR] [--services registry,issuer,pdp,revoker] [--registry ADDR ...]",
		Short: "Run Treaty's services (all four in one process by default)",
		Long: `Runs the registry, issuer, decision point (pdp) and revoker on one gRPC port, each keeping
its bbolt file in the data folder; with --store etcd, the registry, issuer and revoker keep their
state, and the callers' identities, in an etcd cluster instead (--etcd-endpoints), which replicas
share (docs/deployment.md). --services runs a subset; --registry, --issuer, --pdp and
--revoker give the addresses of services run elsewhere. Without TLS (--tls-cert, --tls-key),
only loopback addresses are accepted unless --insecure. Every call but health checks, token
requests and key publication needs a caller identity: the first start on an empty data folder
creates the identity admin and writes its token to DATA/admin.credential (mode 0600); use it with
'treaty --credential-file DATA/admin.credential ...'. The health service reports SERVING once the decision point has caught up with the feed.`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Getenv("GOGC") == "" {
				// The server's garbage is per request, so letting the heap grow to three
				// times the live heap (the enforcement state, caches) before collecting,
				// not Go's default of twice, halves the collections at the cost of one more
				// live heap of memory: 0.82x the server CPU of an issuance (BENCHMARKS.md,
				// issue 5). GOGC overrides it; GOMEMLIMIT still bounds it.
				debug.SetGCPercent(defaultGCPercent)
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usagef("--log-level %q: use debug, info, warn or error", logLevel)
			}
			opts := &slog.HandlerOptions{Level: level}
			switch logFormat {
			case "text":
				cfg.Logger = slog.New(slog.NewTextHandler(c.stderr, opts))
			case "json":
				cfg.Logger = slog.New(slog.NewJSONHandler(c.stderr, opts))
			default:
				return usagef("--log-format must be text or json")
			}
			// Peers come from flags only: the TREATY_* variables are the admin CLI's, and an
			// operator's shell must not silently rewire a server (say, a production issuer to a
			// staging PDP).
			cfg.Peers = map[string]string{}
			for name, v := range c.peers {
				if cmd.Flags().Changed(name) {
					cfg.Peers[name] = *v
				}
			}
			for _, cidr := range trustFrom {
				p, err := netip.ParsePrefix(cidr)
				if err != nil {
					return usagef("--trust-subjects-from %q: want an address range like 127.0.0.1/32", cidr)
				}
				cfg.TrustSubjectsFrom = append(cfg.TrustSubjectsFrom, p.Masked())
			}
			if err := cfg.Validate(); err != nil {
				return usagef("%v", err)
			}
			srv, err := services.Start(cfg)
			if err != nil {
				return err
			}
			if tok := srv.BootstrapToken(); tok != "" {
				// Shown once, on the terminal, never through the logger: logs are shipped.
				fmt.Fprintf(c.stdout, "Created the admin identity. Its token, shown only this once, is also in %s (mode 0600):\n\n  %s\n\nUse it with: export TREATY_CREDENTIAL_FILE=%s\n\n",
					filepath.Join(cfg.DataDir, services.AdminCredentialFile), tok, filepath.Join(cfg.DataDir, services.AdminCredentialFile))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			var serveErr error
			select {
			case <-ctx.Done():
			case serveErr = <-srv.Done():
			}
			srv.Shutdown()
			if serveErr != nil {
				return fmt.Errorf("server stopped: %w", serveErr)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data", "", "folder for the services' bbolt files (created if missing)")
	f.StringVar(&cfg.Store.Backend, "store", services.BackendBolt, "where the registry, issuer and revoker keep their state: bbolt (files in --data) or etcd (the cluster at --etcd-endpoints, shared by replicas); the callers' identities (access) follow them; the PDP's cache and the decision log stay in --data")
	etcdFlags(f, &cfg.Store)
	f.StringVar(&cfg.Listen, "listen", services.DefaultListen, "gRPC listen address (loopback only without TLS)")
	f.StringSliceVar(&cfg.Services, "services", services.All, "services to run here")
	f.StringVar(&cfg.IssuerURL, "issuer-url", "", "issuer identifier: the iss of tokens and the aud of client assertions (default the HTTP base URL with --http-listen, else http://LISTEN)")
	f.DurationVar(&cfg.MaxCredentialTTL, "max-credential-ttl", token.DefaultMaxLifetime, "longest lifetime any credential may have")
	f.StringVar(&cfg.SigningAlgorithm, "signing-algorithm", issuer.DefaultSigningAlgorithm, "algorithm of new signing keys: "+strings.Join(issuer.SigningAlgorithms(), ", "))
	f.DurationVar(&cfg.KeyRotation, "key-rotation", issuer.DefaultKeyRotation, "how long a signing key signs before the next takes over")
	f.DurationVar(&cfg.KeyPrepublish, "key-prepublish", issuer.DefaultKeyPrepublish, "how long the next signing key is published before it signs")
	f.StringVar(&cfg.KEKFile, "kek-file", "", "file (mode 0600) holding the key-encryption key for the issuer's private keys; default $"+issuer.KEKEnv+", else DATA/"+issuer.KEKFileName+" generated at first start")
	f.DurationVar(&cfg.Heartbeat, "heartbeat", time.Second, "how often the revoker sends heartbeats")
	f.DurationVar(&cfg.StalenessBound, "staleness-bound", services.DefaultStalenessBound, "how long the PDP may lag before it denies as stale")
	f.DurationVar(&cfg.UsageInterval, "usage-interval", pdp.DefaultUsageInterval, "how often the PDP reports credential usage to the issuer (last seen, last used)")
	f.StringVar(&cfg.HTTPListen, "http-listen", "", "serve the HTTP APIs on this address: AuthZEN, OAuth (token, revoke, introspect, JWKS, metadata), Shared Signals (off unless given; loopback only without TLS)")
	f.StringVar(&cfg.HTTPBaseURL, "http-base-url", "", "base URL the AuthZEN and Shared Signals metadata name (default http://HTTP-LISTEN)")
	f.StringVar(&cfg.SSFReceiverTokenFile, "ssf-receiver-token-file", "", "run the Shared Signals (SSF/CAEP) transmitter on --http-listen; receivers authenticate with the bearer token in this file")
	f.StringVar(&cfg.SSFAudience, "ssf-audience", "", "aud of Security Event Tokens for streams that name none")
	f.StringVar(&cfg.ExtAuthzRoutes, "extauthz-routes", "", "serve Envoy ext_authz on the gRPC port, mapping requests to action and resource by this route file (JSON)")
	f.StringVar(&cfg.Environment, "environment", "", "the environment this deployment serves: the PDP denies credentials of integrations of another environment, and policy conditions see it for ext_authz requests")
	f.StringSliceVar(&trustFrom, "trust-subjects-from", nil, "caller address ranges (CIDR) that may send the PDP verified claims or a bare workload id")
	f.StringArrayVar(&cfg.TrustSubjectsIdentities, "trust-subjects-identity", nil, "an identity (authenticated caller, e.g. a gateway's certificate name) that may send the PDP verified claims or a bare workload id; repeat for more")
	f.Float64Var(&cfg.DecisionLog.AllowSample, "decision-log-allow-sample", 1, "share of allows the decision log keeps, 0 to 1 (sampling never leaves out a deny)")
	f.IntVar(&cfg.DecisionLog.MaxAllowsPerSecond, "decision-log-max-allows", 1000, "most allows the decision log keeps in any one second, after sampling; the rest are counted as sampled out (0: no bound; denies are never bounded)")
	f.DurationVar(&cfg.DecisionLog.MaxAge, "decision-log-max-age", 7*24*time.Hour, "how long the decision log keeps decisions")
	f.IntVar(&cfg.DecisionLog.MaxRecords, "decision-log-max-records", 1_000_000, "the most decisions the decision log keeps (oldest go first)")
	f.DurationVar(&cfg.DecisionLog.MaxDenyWait, "decision-log-max-deny-wait", time.Second, "how long a deny waits for room when the decision log's disk is behind, before it is answered without an entry and counted as left out (0: wait without bound)")
	f.StringArrayVar(&cfg.Notify.WebhookURLs, "webhook-url", nil, "POST notifications (contract ends approaching, kill-switch events, offboarding progress, new high-severity findings) to this URL, signed; repeat for more (needs --webhook-secret-file)")
	f.StringVar(&cfg.Notify.SecretFile, "webhook-secret-file", "", "file holding the secret (at least 16 bytes) webhook deliveries are signed with (HMAC-SHA256, header Treaty-Signature)")
	f.DurationVar(&cfg.Notify.ContractWarning, "contract-warning", notify.DefaultContractWarning, "how long before a partner's contract end its owners are notified (with --webhook-url)")
	f.DurationVar(&cfg.Posture.Interval, "posture-interval", posture.DefaultInterval, "how often the posture findings are recomputed")
	f.Var(days(&cfg.Posture.Rules.MaxSecretAge, posture.DefaultMaxSecretAge), "posture-max-secret-age", "age past which a live client secret is a finding (30d or 720h)")
	f.Var(days(&cfg.Posture.Rules.MaxKeyAge, posture.DefaultMaxKeyAge), "posture-max-key-age", "age past which a workload key is a finding")
	f.Var(days(&cfg.Posture.Rules.UsageWindow, posture.DefaultUsageWindow), "posture-usage-window", "window granted scopes and workloads must have been used in")
	f.StringVar(&cfg.TLS.CertFile, "tls-cert", "", "serve TLS on every listener with this certificate chain (PEM; reloaded when it changes); also presented to peers as this server's client certificate")
	f.StringVar(&cfg.TLS.KeyFile, "tls-key", "", "private key of --tls-cert (PEM, mode 0600)")
	f.StringVar(&cfg.TLS.ClientCAFile, "client-ca", "", "verify client certificates with these CA certificates (mTLS): a certificate authenticates as the identity its URI SAN, else its CN, names")
	f.StringVar(&cfg.TLS.CAFile, "ca", "", "verify peers' certificates (--registry, --revoker, ...) with these CA certificates (default the system's)")
	f.BoolVar(&cfg.Insecure, "insecure", false, "allow plaintext listeners on non-loopback addresses: tokens then cross the network in the clear")
	f.StringVar(&cfg.PeerCredentialFile, "peer-credential-file", "", "token this server presents to peers it reaches at other addresses (an identity with the service role there)")
	f.Float64Var(&cfg.RateLimits.Issuance, "issuance-rate-limit", services.DefaultIssuanceRate, "token requests per second one caller may make (0: no limit)")
	f.IntVar(&cfg.RateLimits.IssuanceBurst, "issuance-rate-burst", services.DefaultIssuanceBurst, "token requests one caller may make at once above the rate")
	f.Float64Var(&cfg.RateLimits.Admin, "admin-rate-limit", services.DefaultAdminRate, "administrative calls per second one identity may make (0: no limit)")
	f.IntVar(&cfg.RateLimits.AdminBurst, "admin-rate-burst", services.DefaultAdminBurst, "administrative calls one identity may make at once above the rate")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", "", "serve Prometheus metrics at /metrics on this address, a listener of its own (off unless given; loopback only without TLS)")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// defaultGCPercent is the garbage collector's target treaty serve runs with unless GOGC is set.
const defaultGCPercent = 200

// etcdFlags binds the flags that name an etcd cluster (serve --store etcd, new-epoch).
func etcdFlags(f *pflag.FlagSet, s *services.StoreConfig) {
	f.StringSliceVar(&s.Endpoints, "etcd-endpoints", nil, "with --store etcd: the members' client URLs, e.g. https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379")
	f.StringVar(&s.Prefix, "etcd-prefix", services.DefaultEtcdPrefix, "with --store etcd: the key prefix of this deployment's stores (one per deployment sharing a cluster)")
	f.DurationVar(&s.DialTimeout, "etcd-dial-timeout", services.DefaultEtcdDialTimeout, "with --store etcd: how long to wait for the cluster at start")
	f.StringVar(&s.CertFile, "etcd-cert", "", "with --store etcd: client certificate (PEM) presented to the members")
	f.StringVar(&s.KeyFile, "etcd-key", "", "with --store etcd: private key of --etcd-cert (PEM)")
	f.StringVar(&s.CAFile, "etcd-ca", "", "with --store etcd: CA certificates (PEM) that verify the members' certificates")
}
