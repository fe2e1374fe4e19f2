package etcdstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// TestWatch: a watch notifies once it starts, after every write to its bucket by another store
// on the prefix (another replica), and is closed when its context ends or its store is closed.
func TestWatch(t *testing.T) {
	cli := single(t)
	bucket := storetest.Schema.Buckets[0]
	a := open(t, cli, "/watch", storetest.Schema)
	b := open(t, cli, "/watch", storetest.Schema)
	ctx, cancel := context.WithCancel(context.Background())
	ch := a.Watch(ctx, bucket)
	wait := func(what string) {
		t.Helper()
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatalf("%s: the watch channel was closed", what)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no notification within 10 s", what)
		}
	}
	wait("start")
	for i := range 3 {
		mustUpdate(t, b, func(tx store.Tx) error { return tx.Put(bucket, []byte{'k', byte(i)}, []byte("v")) })
		wait("put")
	}
	mustUpdate(t, b, func(tx store.Tx) error { return tx.Delete(bucket, []byte{'k', 0}) })
	wait("delete")
	cancel()
	for range ch { // drains a pending notification, then ends when the channel closes
	}

	ch = a.Watch(context.Background(), bucket)
	wait("start after close")
	a.Close()
	for range ch {
	}
}
