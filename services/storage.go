package services

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/treaty-dev/treaty/access"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/etcdstore"
)

// The storage backends of StoreConfig.Backend.
const (
	BackendBolt = "bbolt"
	BackendEtcd = "etcd"
)

// Defaults of StoreConfig.
const (
	DefaultEtcdPrefix      = "/treaty"
	DefaultEtcdDialTimeout = 5 * time.Second
)

// StoreConfig says where the shared state lives. With the etcd backend, the registry, issuer and
// revoker, and the callers' identities (access), keep their stores in the cluster, under Prefix +
// "/" + the store's name, so that replicas share them and they survive the loss of any minority
// of the cluster's members: an identity created, rotated or deleted through one replica holds on
// every replica behind the load balancer. The first replica to start creates the admin identity
// and writes its token to its data folder's admin.credential; later replicas find it in the
// cluster and create none. The PDP's cache and the decision log stay bbolt files in the data
// folder, local by design (a PDP answers from its own copy of the feed); so do the notifier's
// and the SSF transmitter's stores for now (see clusterStores).
type StoreConfig struct {
	// Backend is BackendBolt (the default) or BackendEtcd.
	Backend string
	// Endpoints are the etcd members' client URLs, for example https://10.0.0.1:2379.
	Endpoints []string
	// Prefix is the key prefix of this deployment's stores; default DefaultEtcdPrefix. Two
	// deployments sharing one cluster need two prefixes.
	Prefix string
	// DialTimeout bounds connecting to the cluster at start; default DefaultEtcdDialTimeout.
	DialTimeout time.Duration
	// CertFile and KeyFile are the client certificate and key presented to etcd (client
	// certificate authentication); CAFile verifies the members' certificates. Any of them turns
	// TLS on; https endpoints need it.
	CertFile, KeyFile, CAFile string
}

// Etcd reports whether the shared stores live in etcd.
func (s StoreConfig) Etcd() bool { return s.Backend == BackendEtcd }

func (s StoreConfig) withDefaults() StoreConfig {
	if s.Backend == "" {
		s.Backend = BackendBolt
	}
	if s.Prefix == "" {
		s.Prefix = DefaultEtcdPrefix
	}
	if s.DialTimeout == 0 {
		s.DialTimeout = DefaultEtcdDialTimeout
	}
	return s
}

func (s StoreConfig) tlsEnabled() bool { return s.CertFile != "" || s.KeyFile != "" || s.CAFile != "" }

// validate checks the store configuration; c is the whole (defaulted) server configuration.
func (s StoreConfig) validate(c Config) error {
	switch s.Backend {
	case BackendBolt:
		if len(s.Endpoints) > 0 || s.tlsEnabled() {
			return fmt.Errorf("--etcd-endpoints, --etcd-cert, --etcd-key and --etcd-ca configure the etcd backend: add --store etcd")
		}
		return nil
	case BackendEtcd:
	default:
		return fmt.Errorf("--store %q: choose %s (files in --data, the default) or %s (a cluster given by --etcd-endpoints)", s.Backend, BackendBolt, BackendEtcd)
	}
	if len(s.Endpoints) == 0 {
		return fmt.Errorf("--store etcd needs --etcd-endpoints: the client URLs of the cluster's members, for example https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379")
	}
	for _, ep := range s.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("--etcd-endpoints %q must be an http(s) URL of a member's client port, for example https://10.0.0.1:2379", ep)
		}
		if u.Scheme == "https" && !s.tlsEnabled() {
			return fmt.Errorf("--etcd-endpoints %s is https: give --etcd-ca (the CA of the members' certificates) and, for client certificate authentication, --etcd-cert and --etcd-key", ep)
		}
	}
	if !strings.HasPrefix(s.Prefix, "/") || strings.HasSuffix(s.Prefix, "/") || strings.Contains(s.Prefix, "//") {
		return fmt.Errorf("--etcd-prefix %q must start with / and not end with one, for example /treaty or /treaty/production", s.Prefix)
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return fmt.Errorf("--etcd-cert and --etcd-key go together: the client certificate presented to etcd and its private key")
	}
	if s.DialTimeout < 0 {
		return fmt.Errorf("--etcd-dial-timeout must not be negative")
	}
	if c.runs(Issuer) && c.KEKFile == "" && os.Getenv(issuer.KEKEnv) == "" {
		// A KEK generated into this data folder would seal keys that no other replica, and no
		// restart on a new data folder, could open.
		return fmt.Errorf("--store etcd keeps the issuer's sealed signing keys in the cluster, shared by every replica: give the same --kek-file (or $%s) to each of them", issuer.KEKEnv)
	}
	if c.runs(Issuer) && c.IssuerURL == "" && (c.HTTPBaseURL == "" || c.HTTPListen == "") {
		// Keys are bound to one issuer identifier, and an issuer that finds the active key bound
		// to another retires it: replicas deriving the default from their own addresses would
		// retire each other's keys at every start.
		// Without --http-listen, --http-base-url does not name the issuer (server.go).
		return fmt.Errorf("--store etcd shares the issuer's signing keys among its replicas, which must all name one issuer: give each the same --issuer-url (the URL partners reach the issuer at, for example https://treaty.example.com)")
	}
	return nil
}

// clusterStores are the stores the etcd backend keeps in the cluster; every other store stays a
// bbolt file in the data folder. The access store's transactions are small (an identity and its
// token), and each replica follows the others' identity changes through the store's watch (see
// package access); its refusals stay local (access.RefusalSchema, not listed here), since anyone
// can cause them. The notifier's and the SSF transmitter's stay local for
// now: some of their transactions are unbounded (deleting an SSF stream's whole queue) or may
// pass etcd's --max-txn-ops (pruning 500 notifications with a delivery per webhook each), which
// the etcd backend refuses whole.
var clusterStores = map[string]bool{Registry: true, Issuer: true, Revoker: true, access.Schema.Name: true}

// dialEtcd connects to the cluster StoreConfig names. clientv3.New does not wait for a
// connection, so a read proves the endpoints and credentials before any store is opened, with an
// error that names them; then the cluster must accept the transactions the stores need
// (etcdstore.CheckTxnOps), or the server would fail its first burst of revocations instead of
// refusing to start.
func dialEtcd(s StoreConfig) (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: s.Endpoints, DialTimeout: s.DialTimeout, Logger: zap.NewNop()}
	if s.tlsEnabled() {
		tc, err := s.clientTLS()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(s.Endpoints, ","), err)
	}
	// A linearizable read needs a quorum, as every store's open does next.
	ctx, cancel := context.WithTimeout(context.Background(), s.DialTimeout)
	defer cancel()
	if _, err := cli.Get(ctx, s.Prefix, clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("the etcd cluster at %s did not answer a read within %v (is a majority of its members up, and are the endpoints and --etcd-cert/--etcd-key/--etcd-ca right?): %w",
			strings.Join(s.Endpoints, ","), s.DialTimeout, err)
	}
	if err := etcdstore.CheckTxnOps(ctx, cli, s.Prefix); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd at %s: %w", strings.Join(s.Endpoints, ","), err)
	}
	return cli, nil
}

// clientTLS builds the TLS configuration of the etcd client from the files StoreConfig names.
func (s StoreConfig) clientTLS() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-ca %s holds no PEM certificate", s.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// NewEpoch gives the revocation log kept in the etcd cluster s names a new epoch
// (revoker.Reepoch), after the cluster was restored from a snapshot (etcdutl snapshot restore):
// the restored log is older than what subscribers have seen, so they must resync. Stop every
// revoker replica first. It refuses a prefix that holds no revocation log rather than create one.
func NewEpoch(s StoreConfig) (old, epoch string, err error) {
	s = s.withDefaults()
	if !s.Etcd() {
		return "", "", fmt.Errorf("new-epoch is for logs kept in etcd (--store etcd); a bbolt log gets its new epoch from restore-backup")
	}
	if err := s.validate(Config{Services: []string{Revoker}}); err != nil {
		return "", "", err
	}
	cli, err := dialEtcd(s)
	if err != nil {
		return "", "", err
	}
	defer cli.Close()
	prefix := s.Prefix + "/" + Revoker
	ctx, cancel := context.WithTimeout(context.Background(), s.DialTimeout)
	resp, err := cli.Get(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err != nil {
		return "", "", fmt.Errorf("look for the revocation log under %s: %w", prefix, err)
	}
	if resp.Count == 0 {
		return "", "", fmt.Errorf("the etcd cluster at %s holds no revocation log under %s: check --etcd-prefix", strings.Join(s.Endpoints, ","), prefix)
	}
	st, err := openEtcd(cli, s, Revoker, revoker.Schema)
	if err != nil {
		return "", "", err
	}
	defer st.Close()
	return revoker.Reepoch(st)
}

// openEtcd opens the named store under the configured prefix.
func openEtcd(cli *clientv3.Client, s StoreConfig, name string, schema store.Schema) (store.Store, error) {
	return etcdstore.Open(cli, s.Prefix+"/"+name, schema)
}
