package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store/etcdstore"
)

// etcdEndpoints are the client URLs of the cluster the etcd kinds keep their log in (-etcd).
var etcdEndpoints []string

// etcdPID is the process id of the cluster's members (-etcd-pid: go run ./bench/etcdcluster runs
// them all in one process), whose CPU time the etcd kinds' server-cpu then includes; 0 leaves it out.
var etcdPID int

// etcdCPU returns the cluster process's CPU time (user and system) so far, for the etcd kinds
// with -etcd-pid, and 0 otherwise. It reads /proc/PID/stat, in clock ticks of 10 ms (Linux's
// USER_HZ), so it is meant for sums over many revocations.
func etcdCPU(kind string) time.Duration {
	if etcdPID == 0 || !etcdKind(kind) {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", etcdPID))
	if err != nil {
		return 0
	}
	// The fields after the command, which is in parentheses and may hold spaces: the state is
	// field 3 of the line, utime and stime fields 14 and 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// etcdKind reports whether the server kind keeps its log in etcd.
func etcdKind(kind string) bool { return kind == "etcd" || kind == "etcd-replica" }

// checkKinds refuses an unknown server kind, and an etcd kind without -etcd, before anything runs.
func checkKinds(kinds ...string) error {
	for _, kind := range kinds {
		switch {
		case kind == "baseline" || kind == "treaty":
		case etcdKind(kind):
			if len(etcdEndpoints) == 0 {
				return fmt.Errorf("server %q keeps its log in etcd: give -etcd ENDPOINTS (for example $(cat DIR/endpoints) of go run ./bench/etcdcluster -n 3 -dir DIR)", kind)
			}
		default:
			return fmt.Errorf("unknown server %q: choose baseline, treaty, etcd or etcd-replica", kind)
		}
	}
	return nil
}

// dialEtcd connects one client to the cluster; each replica has its own, as separate processes
// would.
func dialEtcd() (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcdEndpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(etcdEndpoints, ","), err)
	}
	return cli, nil
}

// checkEtcd proves, once before measuring, that the cluster answers and accepts the
// transactions the revoker needs (as treaty serve does when it starts).
func checkEtcd() error {
	cli, err := dialEtcd()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "/treaty-bench", clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd at %s did not answer a read: %w", strings.Join(etcdEndpoints, ","), err)
	}
	return etcdstore.CheckTxnOps(ctx, cli, "/treaty-bench")
}

// newPrefix returns a fresh key prefix for one server start, so that no run sees another's log.
func newPrefix() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "/treaty-bench/propagate/" + hex.EncodeToString(b)
}

// dropPrefix deletes every key under prefix, so that repeated runs do not grow the cluster.
func dropPrefix(prefix string) {
	cli, err := dialEtcd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "propagate: cannot delete", prefix, ":", err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, prefix+"/", clientv3.WithPrefix()); err != nil {
		fmt.Fprintln(os.Stderr, "propagate: cannot delete", prefix, ":", err)
	}
}

// openReplica opens one revoker replica as treaty serve --store etcd does: its own etcd client,
// an etcdstore under prefix, revoker.Open, and RunCompaction beside it (which also follows the
// other replicas' appends through the etcd watch). stop ends it.
func openReplica(prefix string, logger *slog.Logger) (log *revoker.Log, stop func(), err error) {
	cli, err := dialEtcd()
	if err != nil {
		return nil, nil, err
	}
	st, err := etcdstore.Open(cli, prefix, revoker.Schema)
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	log, err = revoker.Open(st, revoker.Config{Logger: logger})
	if err != nil {
		st.Close()
		cli.Close()
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		log.RunCompaction(ctx)
	}()
	return log, func() {
		st.Close()
		cancel()
		<-done
		cli.Close()
	}, nil
}
