package etcdstore

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/treaty-dev/treaty/store"
)

var _ store.Watcher = (*Store)(nil)

// watchRetry is how long Watch waits before it watches again after a watch failed (no leader, an
// unreachable member, a compacted revision).
const watchRetry = 200 * time.Millisecond

// Watch implements store.Watcher with an etcd watch on the bucket's key range. The watch's start
// and each response that carries events send one coalesced notification, so every change made
// after the first notification is followed by another. When the watch fails or ends early it notifies
// (whatever changed meanwhile, the receiver re-reads it) and watches again from the current
// revision, so no change is ever lost to a failure; the receiver simply reads once more than
// needed. The watch requires a leader, so a member cut off from the cluster ends it instead of
// staying silent. The channel is closed when ctx ends or the store is closed.
func (s *Store) Watch(ctx context.Context, bucket string) <-chan struct{} {
	out := make(chan struct{}, 1)
	notify := func() {
		select {
		case out <- struct{}{}:
		default: // one is pending already: the receiver will re-read anyway
		}
	}
	go func() {
		defer close(out)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(s.ctx, cancel)
		defer stop()
		if !s.buckets[bucket] {
			<-ctx.Done() // an unknown bucket never changes
			return
		}
		for ctx.Err() == nil {
			wch := s.client.Watch(clientv3.WithRequireLeader(ctx), s.bucketPrefix(bucket), clientv3.WithPrefix(), clientv3.WithCreatedNotify())
			for resp := range wch {
				if resp.Err() != nil || resp.Canceled {
					break
				}
				// The watch's creation is notified too: whatever changed before it started, the
				// receiver re-reads then.
				if resp.Created || len(resp.Events) > 0 {
					notify()
				}
			}
			if ctx.Err() != nil {
				return
			}
			// The watch ended without being asked to: changes made until the next watch starts
			// would go unseen, so tell the receiver to re-read.
			notify()
			t := time.NewTimer(watchRetry)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
	}()
	return out
}
