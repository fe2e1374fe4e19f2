package main

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store/etcdstore"
	"github.com/treaty-dev/treaty/store/etcdstore/etcdtest"
)

// TestNewEpoch: after a restore of the etcd cluster, new-epoch gives the revocation log a new
// epoch and keeps its state; a prefix without a log is refused and left untouched.
func TestNewEpoch(t *testing.T) {
	cluster := etcdtest.Start(t, 1)
	cli := cluster.Client()
	openLog := func() (*etcdstore.Store, *revoker.Log) {
		st, err := etcdstore.Open(cli, "/t/revoker", revoker.Schema)
		if err != nil {
			t.Fatal(err)
		}
		l, err := revoker.Open(st, revoker.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return st, l
	}
	st, l := openLog()
	if _, err := l.Revoke(context.Background(), revoker.Request{Kind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, Target: "jti-1", Reason: "leaked", Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	old := l.Epoch()
	st.Close() // the replica is stopped, as new-epoch asks

	eps := strings.Join(cluster.Endpoints(), ",")
	code, out, errOut := runCLI("new-epoch", "--etcd-endpoints", eps, "--etcd-prefix", "/t", "-o", "json")
	if code != 0 {
		t.Fatalf("new-epoch: exit %d: %s", code, errOut)
	}
	st, l = openLog()
	defer st.Close()
	if l.Epoch() == old || !strings.Contains(out, l.Epoch()) || !strings.Contains(out, old) {
		t.Fatalf("epoch %s (was %s), output %s: want a new epoch, named with the old one", l.Epoch(), old, out)
	}
	if _, ok := l.State().RevokedCredential("jti-1"); !ok {
		t.Fatal("the revocation was lost with the new epoch")
	}

	code, _, errOut = runCLI("new-epoch", "--etcd-endpoints", eps, "--etcd-prefix", "/typo")
	if code == 0 || !strings.Contains(errOut, "holds no revocation log under /typo/revoker") {
		t.Fatalf("new-epoch on an empty prefix: exit %d, %s", code, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if resp, err := cli.Get(ctx, "/typo", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("new-epoch wrote under an empty prefix: %v keys, %v", resp.Count, err)
	}
}
