// Command etcdcluster runs a local etcd cluster of n members in one process, on loopback, for
// measuring `treaty serve --store etcd` without installing etcd: each member keeps its data (and
// fsyncs its write-ahead log) in its own folder, with etcd's default heartbeat and election
// timeouts and the --max-txn-ops Treaty needs (see package store/etcdstore; -max-txn-ops). It prints the client
// endpoints, comma-separated, and serves until interrupted.
//
//	go run ./bench/etcdcluster -n 3 -dir /tmp/treaty-etcd &
//	treaty serve --store etcd --etcd-endpoints $(cat /tmp/treaty-etcd/endpoints) ...
//
// It is a measuring tool, not part of the treaty binary; a deployment runs etcd itself.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/treaty-dev/treaty/store/etcdstore"
)

func main() {
	n := flag.Int("n", 3, "members")
	maxTxnOps := flag.Uint("max-txn-ops", etcdstore.RequiredTxnOps, "the members' --max-txn-ops (treaty refuses a cluster with fewer than etcdstore.RequiredTxnOps)")
	dir := flag.String("dir", "", "folder for the members' data (required; the endpoints are written to DIR/endpoints)")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	ports, err := freePorts(2 * *n)
	if err != nil {
		log.Fatal(err)
	}
	var clients, peers, initial []string
	for i := range *n {
		clients = append(clients, fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]))
		peers = append(peers, fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]))
		initial = append(initial, fmt.Sprintf("m%d=%s", i, peers[i]))
	}
	var members []*embed.Etcd
	for i := range *n {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = filepath.Join(*dir, cfg.Name)
		cu, _ := url.Parse(clients[i])
		pu, _ := url.Parse(peers[i])
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = "treaty-bench"
		cfg.MaxTxnOps = *maxTxnOps
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			log.Fatalf("start member %d: %v", i, err)
		}
		members = append(members, e)
	}
	for i, e := range members {
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			log.Fatalf("member %d: %v", i, err)
		case <-time.After(60 * time.Second):
			log.Fatalf("member %d not ready after 60s", i)
		}
	}
	eps := strings.Join(clients, ",")
	if err := os.WriteFile(filepath.Join(*dir, "endpoints"), []byte(eps+"\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Println(eps)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	for _, e := range members {
		e.Close()
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago: the members need their
// peers' URLs before any of them listens.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
