package services

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/treaty-dev/treaty/certs"
	"github.com/treaty-dev/treaty/store/etcdstore"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
)

// TestEtcdTLS runs the registry, issuer and revoker on a one-member etcd cluster that serves
// TLS and requires client certificates, as a real cluster does: the server connects with
// --etcd-cert, --etcd-key and --etcd-ca; without a client certificate, or trusting another CA, it
// refuses to start and says why.
func TestEtcdTLS(t *testing.T) {
	pki, err := certs.WriteDev(t.TempDir(), certs.DevOptions{Identities: []string{"treaty"}})
	if err != nil {
		t.Fatal(err)
	}
	endpoint := startTLSEtcd(t, pki)
	good := StoreConfig{Backend: BackendEtcd, Endpoints: []string{endpoint}, CertFile: pki.Clients[0].Cert, KeyFile: pki.Clients[0].Key, CAFile: pki.CA}
	other, err := certs.WriteDev(t.TempDir(), certs.DevOptions{Identities: []string{"treaty"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		store StoreConfig
		want  string // empty: starts
	}{
		{"client certificate", good, ""},
		{"no client certificate", StoreConfig{Backend: BackendEtcd, Endpoints: []string{endpoint}, CAFile: pki.CA, DialTimeout: 2 * time.Second}, "did not answer a read"},
		{"another CA", StoreConfig{Backend: BackendEtcd, Endpoints: []string{endpoint}, CertFile: pki.Clients[0].Cert, KeyFile: pki.Clients[0].Key, CAFile: other.CA, DialTimeout: 2 * time.Second}, "did not answer a read"},
		{"missing key", StoreConfig{Backend: BackendEtcd, Endpoints: []string{endpoint}, CertFile: pki.Clients[0].Cert, KeyFile: filepath.Join(t.TempDir(), "nope"), CAFile: pki.CA}, "--etcd-cert/--etcd-key"},
		{"CA file without a certificate", StoreConfig{Backend: BackendEtcd, Endpoints: []string{endpoint}, CAFile: pki.Clients[0].Key}, "--etcd-ca"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Store: tc.store, KEKFile: writeKEK(t), IssuerURL: "https://treaty.test", Logger: slog.New(slog.DiscardHandler)}
			srv, err := Start(cfg)
			if err == nil {
				srv.Shutdown()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Start = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Start = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// startTLSEtcd starts a one-member cluster serving TLS with pki's server certificate and
// requiring client certificates signed by pki's CA; it returns the client URL.
func startTLSEtcd(t *testing.T, pki certs.DevFiles) string {
	t.Helper()
	var ports []int
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		l.Close()
	}
	client, peer := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])}, url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.ClientTLSInfo = transport.TLSInfo{CertFile: pki.Server, KeyFile: pki.ServerKey, TrustedCAFile: pki.CA, ClientCertAuth: true}
	cfg.MaxTxnOps = etcdstore.RequiredTxnOps
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd not ready after 30s")
	}
	return client.String()
}

// A cluster whose members refuse the transactions Treaty's stores need (etcd's default
// --max-txn-ops) is refused at start, naming the setting, rather than failing the first burst of
// revocations.
func TestEtcdTxnLimit(t *testing.T) {
	cluster := etcdtest.Start(t, 1, etcdtest.WithMaxTxnOps(128))
	cfg := Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", KEKFile: writeKEK(t), IssuerURL: "https://treaty.test", Logger: slog.New(slog.DiscardHandler),
		Store: StoreConfig{Backend: BackendEtcd, Endpoints: cluster.Endpoints()}}
	srv, err := Start(cfg)
	if err == nil {
		srv.Shutdown()
	}
	if err == nil || !strings.Contains(err.Error(), "--max-txn-ops=8192") {
		t.Fatalf("Start = %v, want an error naming --max-txn-ops=8192", err)
	}
}
