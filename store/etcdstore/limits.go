package etcdstore

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// RequiredTxnOps is the --max-txn-ops every member of a cluster holding Treaty's stores must run
// with. etcd's default, 128, is far too few: the revoker commits up to 1,024 concurrent requests
// in one transaction (one quorum write instead of 1,024), each a few writes and comparisons, and
// a transaction over the limit fails whole (see the package documentation). A cluster that
// refuses such a transaction works until the first burst of revocations, then fails them all,
// which is why CheckTxnOps refuses it at start instead.
const RequiredTxnOps = 8192

// CheckTxnOps asks the cluster whether it accepts a transaction of RequiredTxnOps operations:
// it sends a read-only Txn of that many comparisons on key (which it never writes), which etcd
// refuses before evaluating it if the member's --max-txn-ops is lower. It returns an error naming
// the setting to change if the cluster refuses, or the cluster's error if it cannot be asked.
func CheckTxnOps(ctx context.Context, client *clientv3.Client, key string) error {
	cmps := make([]clientv3.Cmp, RequiredTxnOps)
	for i := range cmps {
		cmps[i] = clientv3.Compare(clientv3.ModRevision(key), "=", 0) // true or false, nothing is written
	}
	_, err := client.Txn(ctx).If(cmps...).Commit()
	switch {
	case errors.Is(rpctypes.Error(err), rpctypes.ErrTooManyOps):
		return fmt.Errorf("the etcd cluster refuses transactions of %d operations: run every member with --max-txn-ops=%d or more (etcd's default is 128), or Treaty's bursts of revocations would fail", RequiredTxnOps, RequiredTxnOps)
	case err != nil:
		return fmt.Errorf("ask the etcd cluster for its transaction limit: %w", err)
	}
	return nil
}
