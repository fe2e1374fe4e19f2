// Package etcdtest starts real etcd clusters in-process (go.etcd.io/etcd/server/v3/embed) for
// tests: one or more members on loopback ports, each in a folder under the test's temp folder,
// with short heartbeat and election timeouts so a cluster is up in about a second and elects a
// new leader quickly after a member stops. Only tests import it, so the etcd server is never
// linked into treaty.
package etcdtest

import (
	"fmt"
	"go.uber.org/goleak"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/treaty-dev/treaty/store/etcdstore"
)

// MaxTxnOps is the --max-txn-ops the members run with unless WithMaxTxnOps says otherwise:
// the value Treaty requires of deployments, so tests meet the limits production does.
const MaxTxnOps = etcdstore.RequiredTxnOps

// Option changes how the members of a test cluster run.
type Option func(*embed.Config)

// WithMaxTxnOps runs the members with --max-txn-ops=n, to test a cluster configured too tightly.
func WithMaxTxnOps(n uint) Option { return func(c *embed.Config) { c.MaxTxnOps = n } }

// Timing of the members: heartbeat and election timeout. Short so that tests are quick; long
// enough that a loaded machine running -race does not trigger spurious elections.
const (
	tick     = 25 * time.Millisecond
	election = 250 * time.Millisecond
)

// Cluster is a running in-process etcd cluster. Stop and Restart let a test take members down and
// bring them back; cleanup stops them all.
type Cluster struct {
	t       testing.TB
	dir     string
	opts    []Option
	clients []url.URL
	peers   []url.URL
	mu      sync.Mutex
	members []*embed.Etcd // nil while stopped
}

// Start starts a cluster of n members and waits until it has a leader. The members stop when the
// test ends.
func Start(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, dir: t.TempDir(), opts: opts, members: make([]*embed.Etcd, n)}
	ports := freePorts(t, 2*n)
	for i := range n {
		c.clients = append(c.clients, url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])})
		c.peers = append(c.peers, url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])})
	}
	t.Cleanup(func() {
		for i := range n {
			c.Stop(i)
		}
	})
	for i := range n {
		c.start(i)
	}
	for i := range n {
		c.waitReady(i)
	}
	return c
}

// Endpoints returns the client URLs of all members, running or not.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, u := range c.clients {
		eps = append(eps, u.String())
	}
	return eps
}

// Endpoint returns member i's client URL.
func (c *Cluster) Endpoint(i int) string { return c.clients[i].String() }

// Client returns a client of the given endpoints (all members' if none), closed when the test ends.
func (c *Cluster) Client(endpoints ...string) *clientv3.Client {
	c.t.Helper()
	if len(endpoints) == 0 {
		endpoints = c.Endpoints()
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatalf("etcd client: %v", err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// Stop stops member i (a no-op if it is stopped), as a crash of its process would, except that
// what it has written stays on its disk.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	e := c.members[i]
	c.members[i] = nil
	c.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Restart starts stopped member i again on its data folder and ports, and waits until it serves.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.start(i)
	c.waitReady(i)
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	var initial []string
	for j, p := range c.peers {
		initial = append(initial, fmt.Sprintf("m%d=%s", j, p.String()))
	}
	cfg := embed.NewConfig()
	cfg.Name = fmt.Sprintf("m%d", i)
	cfg.Dir = filepath.Join(c.dir, cfg.Name)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{c.clients[i]}, []url.URL{c.clients[i]}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{c.peers[i]}, []url.URL{c.peers[i]}
	cfg.InitialCluster = strings.Join(initial, ",")
	cfg.InitialClusterToken = "treaty-etcdtest"
	cfg.TickMs, cfg.ElectionMs = uint(tick/time.Millisecond), uint(election/time.Millisecond)
	cfg.MaxTxnOps = MaxTxnOps
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	for _, o := range c.opts {
		o(cfg)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		c.t.Fatalf("start etcd member %d: %v", i, err)
	}
	c.mu.Lock()
	c.members[i] = e
	c.mu.Unlock()
}

func (c *Cluster) waitReady(i int) {
	c.t.Helper()
	c.mu.Lock()
	e := c.members[i]
	c.mu.Unlock()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		c.t.Fatalf("etcd member %d failed: %v", i, err)
	case <-time.After(30 * time.Second):
		c.t.Fatalf("etcd member %d not ready after 30s", i)
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago. etcd needs its peers'
// URLs before any member starts, so the ports cannot be the kernel's choice at listen time.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// LeakOptions are the goleak options a package that starts embedded members needs: after the
// members close, the HTTP connections between them (etcd's rafthttp peer transport) and their
// server sides wait on each other until rafthttp's read timeout. Only those are ignored.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*connReader).abortPendingRead"),
		goleak.IgnoreAnyFunction("net/http.(*connReader).backgroundRead"),
	}
}
