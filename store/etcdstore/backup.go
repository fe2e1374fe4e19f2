package etcdstore

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BackupFormat names the format Backup writes, in its first line.
const BackupFormat = "treaty-etcd-backup/1"

// BackupHeader is the first line of a backup.
type BackupHeader struct {
	Format   string `json:"format"`   // BackupFormat
	Prefix   string `json:"prefix"`   // the store's etcd key prefix
	Revision int64  `json:"revision"` // the etcd revision the copy is as of
}

// BackupEntry is every further line of a backup: one key of one bucket, in bucket then key order
// (the order of the escaped bucket names).
type BackupEntry struct {
	Bucket string `json:"bucket"`
	Key    []byte `json:"key"`   // base64 in JSON
	Value  []byte `json:"value"` // base64 in JSON
}

// Backup implements store.Store. It writes the store as of one etcd revision as JSON lines: a
// BackupHeader, then a BackupEntry per key of every bucket, including "meta" with the schema's
// name and version. etcd keeps old revisions until compacted, so the copy is consistent while
// writers go on, provided the cluster does not compact that revision before the copy ends.
func (s *Store) Backup(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	bw := bufio.NewWriter(cw)
	enc := json.NewEncoder(bw)
	t := s.newTx(false)
	root := s.prefix + "/"
	hi := clientv3.GetPrefixRangeEnd(root)
	next := root
	for next < hi {
		resp := t.read(next, clientv3.WithRange(hi), clientv3.WithLimit(pageSize))
		if resp == nil {
			return cw.n, t.err
		}
		if next == root {
			if err := enc.Encode(BackupHeader{Format: BackupFormat, Prefix: s.prefix, Revision: t.rev}); err != nil {
				return cw.n, fmt.Errorf("write backup: %w", err)
			}
		}
		for _, e := range resp.Kvs {
			esc, key, ok := strings.Cut(string(e.Key[len(root):]), "/")
			if !ok {
				continue // a bucket's delete marker
			}
			bucket, err := url.PathUnescape(esc)
			if err != nil {
				return cw.n, fmt.Errorf("backup: key %q under the prefix is not the store's", e.Key)
			}
			if err := enc.Encode(BackupEntry{Bucket: bucket, Key: []byte(key), Value: nonNil(e.Value)}); err != nil {
				return cw.n, fmt.Errorf("write backup: %w", err)
			}
		}
		next = hi
		if resp.More && len(resp.Kvs) > 0 {
			next = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("write backup: %w", err)
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
