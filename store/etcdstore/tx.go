package etcdstore

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/treaty-dev/treaty/store"
)

// pageSize is how many keys a Scan or Last reads from etcd per request.
const pageSize = 256

// tx is one transaction: a snapshot revision, what fn read (for the commit's comparisons) and what
// it wrote (buffered until commit).
type tx struct {
	s        *Store
	writable bool
	// rev is the snapshot revision, fixed by the first read (0 before it).
	rev int64
	// err is the first failed read: the transaction fails with it whatever fn returns.
	err error

	// The read set, kept only in writable transactions.
	reads  map[string]int64 // etcd key -> ModRevision read (0: absent)
	ranges []keyRange       // ranges read: no key in them may change after rev
	scans  map[string]bool  // buckets scanned: their delete marker may not change after rev

	// The write set.
	writes  map[string]write // etcd key -> buffered write
	deletes map[string]bool  // buckets deleted from: their marker is rewritten
	cleared map[string]bool  // buckets cleared: their etcd keys are all deleted
}

type write struct {
	bucket string
	value  []byte
	del    bool
}

// keyRange is [start, end) in etcd keys.
type keyRange struct{ start, end string }

func (s *Store) newTx(writable bool) *tx {
	t := &tx{s: s, writable: writable}
	if writable {
		t.reads = map[string]int64{}
		t.scans = map[string]bool{}
		t.writes = map[string]write{}
		t.deletes = map[string]bool{}
		t.cleared = map[string]bool{}
	}
	return t
}

func (t *tx) check(bucket string) error {
	if !t.s.buckets[bucket] {
		return fmt.Errorf("%w %q", store.ErrUnknownBucket, bucket)
	}
	return nil
}

func (t *tx) checkWrite(bucket string, key []byte) error {
	if !t.writable {
		return errors.New("etcdstore: write in a read-only transaction")
	}
	if err := t.check(bucket); err != nil {
		return err
	}
	if len(key) == 0 {
		return errors.New("etcdstore: empty key")
	}
	return nil
}

// read gets from etcd at the snapshot revision, fixing it on the first read. It returns nil once
// a read has failed; t.err then says why.
//
// Only the first read is linearizable (it costs the leader a round of heartbeats to confirm the
// revision is current). The later ones read a revision the cluster has already committed, whose
// content never changes, so any member that has applied it answers alone (serializable); a
// member that has not yet (the client moved to a lagging one) says so, and that read is made
// linearizable instead.
func (t *tx) read(key string, opts ...clientv3.OpOption) *clientv3.GetResponse {
	if t.err != nil {
		return nil
	}
	if t.rev > 0 {
		opts = append(opts, clientv3.WithRev(t.rev))
	}
	ctx, cancel := t.s.request()
	var resp *clientv3.GetResponse
	var err error
	if t.rev > 0 {
		resp, err = t.s.client.Get(ctx, key, append(opts, clientv3.WithSerializable())...)
		if errors.Is(rpctypes.Error(err), rpctypes.ErrFutureRev) {
			resp, err = t.s.client.Get(ctx, key, opts...)
		}
	} else {
		resp, err = t.s.client.Get(ctx, key, opts...)
	}
	cancel()
	if err != nil {
		t.err = t.s.readError(err)
		return nil
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	return resp
}

// Get implements store.Tx.
func (t *tx) Get(bucket string, key []byte) []byte {
	if t.check(bucket) != nil {
		return nil
	}
	k := t.s.bucketPrefix(bucket) + string(key)
	if w, ok := t.writes[k]; ok {
		if w.del {
			return nil
		}
		return bytes.Clone(w.value)
	}
	if t.cleared[bucket] {
		return nil
	}
	resp := t.read(k)
	if resp == nil {
		return nil
	}
	if t.writable {
		var mod int64
		if len(resp.Kvs) > 0 {
			mod = resp.Kvs[0].ModRevision
		}
		t.reads[k] = mod
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	return nonNil(resp.Kvs[0].Value)
}

// nonNil returns v, or an empty slice for an empty value (which etcd returns as nil), so that a
// present key never reads as missing.
func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// Put implements store.Tx.
func (t *tx) Put(bucket string, key, value []byte) error {
	if err := t.checkWrite(bucket, key); err != nil {
		return err
	}
	t.writes[t.s.bucketPrefix(bucket)+string(key)] = write{bucket: bucket, value: bytes.Clone(nonNil(value))}
	return nil
}

// Delete implements store.Tx.
func (t *tx) Delete(bucket string, key []byte) error {
	if err := t.checkWrite(bucket, key); err != nil {
		return err
	}
	t.writes[t.s.bucketPrefix(bucket)+string(key)] = write{bucket: bucket, del: true}
	t.deletes[bucket] = true
	return nil
}

// Clear implements store.Tx.
func (t *tx) Clear(bucket string) error {
	if err := t.checkWrite(bucket, []byte{0}); err != nil {
		return err
	}
	bp := t.s.bucketPrefix(bucket)
	for k := range t.writes {
		if strings.HasPrefix(k, bp) {
			delete(t.writes, k)
		}
	}
	t.cleared[bucket] = true
	t.deletes[bucket] = true
	return nil
}

// buffered returns the buffered writes in [start, end), in key order (descending if desc).
func (t *tx) buffered(start, end string, desc bool) []string {
	var keys []string
	for k := range t.writes {
		if k >= start && k < end {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if desc {
		slices.Reverse(keys)
	}
	return keys
}

// Scan implements store.Tx: it merges etcd's keys in the range, read page by page at the
// snapshot, with the transaction's buffered writes.
func (t *tx) Scan(bucket string, prefix, start []byte, fn func(key, value []byte) (bool, error)) error {
	if err := t.check(bucket); err != nil {
		return err
	}
	bp := t.s.bucketPrefix(bucket)
	lo, hi := bp+string(prefix), clientv3.GetPrefixRangeEnd(bp+string(prefix))
	if bytes.Compare(start, prefix) > 0 {
		lo = bp + string(start)
	}
	if lo >= hi {
		return nil // start is past every key with the prefix
	}
	pending := t.buffered(lo, hi, false)
	fromEtcd := !t.cleared[bucket]
	var page []*kv
	next := lo         // where the next etcd page starts
	seen := ""         // the last key passed to fn
	stopped := false   // by fn, or by running out of keys
	exhausted := false // by running out of keys: fn saw the whole range
	if t.writable && fromEtcd {
		// However the scan ends (fn's error may be a sentinel the caller ignores), fn saw every
		// etcd key in [lo, seen], or all of [lo, hi) if it read to the end: none may be added,
		// changed or deleted before the commit.
		defer func() {
			end := hi
			if !exhausted {
				end = seen + "\x00"
			}
			t.ranges = append(t.ranges, keyRange{lo, end})
			t.scans[bucket] = true
		}()
	}
	for !stopped {
		if fromEtcd && len(page) == 0 && next < hi {
			resp := t.read(next, clientv3.WithRange(hi), clientv3.WithLimit(pageSize))
			if resp == nil {
				return t.err
			}
			for _, e := range resp.Kvs {
				page = append(page, &kv{key: string(e.Key), value: e.Value})
			}
			next = hi
			if resp.More && len(resp.Kvs) > 0 {
				next = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
			}
		}
		var key string
		var value []byte
		switch {
		case len(page) > 0 && (len(pending) == 0 || page[0].key < pending[0]):
			key, value = page[0].key, nonNil(page[0].value)
			page = page[1:]
		case len(pending) > 0:
			key = pending[0]
			if len(page) > 0 && page[0].key == key {
				page = page[1:] // the buffered write replaces etcd's value
			}
			pending = pending[1:]
			w := t.writes[key]
			if w.del {
				seen = key
				continue
			}
			value = bytes.Clone(w.value)
		default:
			stopped, exhausted = true, true
			continue
		}
		seen = key
		more, err := fn([]byte(key[len(bp):]), value)
		if err != nil {
			return err
		}
		stopped = !more
	}
	return nil
}

type kv struct {
	key   string
	value []byte
}

// Last implements store.Tx.
func (t *tx) Last(bucket string) (key, value []byte) {
	if t.check(bucket) != nil {
		return nil, nil
	}
	bp := t.s.bucketPrefix(bucket)
	hi := clientv3.GetPrefixRangeEnd(bp)
	// The last buffered put, if any.
	var bufKey string
	for _, k := range t.buffered(bp, hi, true) {
		if !t.writes[k].del {
			bufKey = k
			break
		}
	}
	// The last etcd key the transaction has not overwritten or deleted.
	var etcdKey string
	var etcdValue []byte
	var etcdMod int64
	if !t.cleared[bucket] {
		end := hi
		// The last key is almost always the answer (the transaction rarely overwrote it), so
		// the first request reads one key, not a page of values.
		limit := int64(1)
		for etcdKey == "" {
			resp := t.read(bp, clientv3.WithRange(end), clientv3.WithLimit(limit),
				clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
			limit = pageSize
			if resp == nil {
				return nil, nil
			}
			for _, e := range resp.Kvs {
				if _, written := t.writes[string(e.Key)]; !written {
					etcdKey, etcdValue, etcdMod = string(e.Key), nonNil(e.Value), e.ModRevision
					break
				}
			}
			if etcdKey != "" || !resp.More || len(resp.Kvs) == 0 {
				break
			}
			end = string(resp.Kvs[len(resp.Kvs)-1].Key)
		}
		if t.writable {
			// No key may appear above etcdKey, and etcdKey itself may not go.
			from := bp
			if etcdKey != "" {
				from = etcdKey
				t.reads[etcdKey] = etcdMod
			}
			t.ranges = append(t.ranges, keyRange{from, hi})
		}
	}
	switch {
	case bufKey == "" && etcdKey == "":
		return nil, nil
	case bufKey > etcdKey:
		return []byte(bufKey[len(bp):]), bytes.Clone(t.writes[bufKey].value)
	default:
		return []byte(etcdKey[len(bp):]), etcdValue
	}
}

// commit sends the buffered writes in one Txn guarded by the read set. It reports false, with
// no error, when the guard failed: another writer changed what fn read.
func (t *tx) commit() (bool, error) {
	if len(t.writes) == 0 && len(t.cleared) == 0 {
		return true, nil
	}
	var cmps []clientv3.Cmp
	if t.rev > 0 { // else fn read nothing from etcd, and there is nothing to compare
		for k, mod := range t.reads {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", mod))
		}
		for _, r := range t.ranges {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(r.start), "<", t.rev+1).WithRange(r.end))
		}
		for b := range t.scans {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(t.s.marker(b)), "<", t.rev+1))
		}
	}
	var ops []clientv3.Op
	for b := range t.cleared {
		// Delete the bucket's keys around the puts that follow the Clear: etcd refuses a Txn
		// that puts a key inside a range it deletes.
		bp := t.s.bucketPrefix(b)
		hi := clientv3.GetPrefixRangeEnd(bp)
		from := bp
		for _, k := range t.buffered(bp, hi, false) {
			if t.writes[k].del {
				continue
			}
			if from < k {
				ops = append(ops, clientv3.OpDelete(from, clientv3.WithRange(k)))
			}
			from = k + "\x00"
		}
		ops = append(ops, clientv3.OpDelete(from, clientv3.WithRange(hi)))
	}
	for k, w := range t.writes {
		switch {
		case !w.del:
			ops = append(ops, clientv3.OpPut(k, string(w.value)))
		case !t.cleared[w.bucket]:
			ops = append(ops, clientv3.OpDelete(k))
		}
	}
	for b := range t.deletes {
		ops = append(ops, clientv3.OpPut(t.s.marker(b), ""))
	}
	ctx, cancel := t.s.request()
	defer cancel()
	resp, err := t.s.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, t.s.commitError(err, len(cmps), len(ops))
	}
	return resp.Succeeded, nil
}
