package registry_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/store"
)

// specHash computes a record's hash from the format documented in auditchain.go, written out
// again here so that the documentation, not only the code, is what the stored hashes follow: an
// external tool reading `treaty audit export` can recompute them the same way.
func specHash(t *testing.T, prev string, rec registry.AuditRecord) string {
	t.Helper()
	p, err := hex.DecodeString(prev)
	if err != nil || len(p) != 32 {
		t.Fatalf("prev hash %q is not 32 hex bytes", prev)
	}
	str := func(b []byte, s string) []byte { return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...) }
	b := append(p, "treaty.audit.v1\x00"...)
	b = binary.BigEndian.AppendUint64(b, rec.Sequence)
	b = binary.BigEndian.AppendUint64(b, uint64(rec.Time.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(rec.Time.Nanosecond()))
	b = str(str(str(str(b, rec.Actor), rec.Action), rec.Target), rec.Reason)
	for _, m := range []map[string]string{rec.Before, rec.After} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = str(str(b, k), m[k])
		}
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// auditedEnv is a registry on a real bbolt file at path with a varied trail of n records.
func auditedEnv(t *testing.T) (e *env, path string, n uint64) {
	t.Helper()
	e = newRevoker(t)
	path = filepath.Join(t.TempDir(), "registry.db")
	e.node = startNode(t, path, e.pub)
	ctx := context.Background()
	e.mustPartner(t, "acme")
	e.mustPartner(t, "globex")
	e.mustIntegration(t, "orders", "acme")
	e.mustWorkload(t, "bot", "orders")
	if _, _, err := e.reg.SuspendPartner(ctx, "globex", "incident 7: leaked key", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.reg.RetireWorkload(ctx, "bot", "replaced", "carol"); err != nil {
		t.Fatal(err)
	}
	return e, path, 6
}

func TestAuditTrailIsHashChained(t *testing.T) {
	e, _, n := auditedEnv(t)
	ctx := context.Background()
	recs, err := e.reg.ListAudit(ctx, 0, 0)
	if err != nil || uint64(len(recs)) != n {
		t.Fatalf("ListAudit = %d records, %v; want %d", len(recs), err, n)
	}
	prev := registry.AuditGenesis()
	if prev != strings.Repeat("0", 64) {
		t.Fatalf("genesis = %q, want 32 zero bytes in hex", prev)
	}
	for _, rec := range recs {
		if rec.Prev != prev {
			t.Errorf("record %d: prev_hash %q, want %q", rec.Sequence, rec.Prev, prev)
		}
		if want := specHash(t, prev, rec); rec.Hash != want {
			t.Errorf("record %d: hash %q, the documented format gives %q", rec.Sequence, rec.Hash, want)
		}
		prev = rec.Hash
	}
	v, err := e.reg.VerifyAudit(ctx, registry.AuditAnchor{})
	if err != nil {
		t.Fatal(err)
	}
	want := registry.AuditVerification{Records: n, HeadSequence: n, HeadHash: prev}
	if v != want {
		t.Errorf("VerifyAudit = %+v, want %+v", v, want)
	}
	// An anchor the chain holds passes; one it does not is reported.
	if v, _ := e.reg.VerifyAudit(ctx, registry.AuditAnchor{Sequence: 3, Hash: recs[2].Hash}); !v.Intact() {
		t.Errorf("VerifyAudit with a held anchor = %+v", v.Broken)
	}
	v, _ = e.reg.VerifyAudit(ctx, registry.AuditAnchor{Sequence: 3, Hash: recs[3].Hash})
	if v.Broken == nil || v.Broken.Sequence != 3 || v.Broken.Problem != registry.AuditAnchorMismatch || v.Records != 2 {
		t.Errorf("VerifyAudit with a wrong anchor = %+v, %+v", v, v.Broken)
	}
}

func TestAuditEmptyTrailIsIntact(t *testing.T) {
	e := newEnv(t)
	v, err := e.reg.VerifyAudit(context.Background(), registry.AuditAnchor{})
	want := registry.AuditVerification{HeadHash: registry.AuditGenesis()}
	if err != nil || v != want {
		t.Errorf("VerifyAudit of an empty trail = %+v, %v; want %+v", v, err, want)
	}
}

func TestAuditRecordsAnUnattributedActor(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, _, err := e.reg.CreatePartner(ctx, partner("acme"), ""); err != nil {
		t.Fatal(err)
	}
	recs, err := e.reg.ListAudit(ctx, 0, 0)
	if err != nil || len(recs) != 1 || recs[0].Actor != registry.UnattributedActor {
		t.Fatalf("audit = %+v, %v; want one record by %q", recs, err, registry.UnattributedActor)
	}
}

// TestAuditHashCoversEveryField fails when AuditRecord gains a field, because a field the
// canonical encoding does not cover could be changed without breaking the chain: add it to
// canonical() (with a new format version) and to specHash, then here.
func TestAuditHashCoversEveryField(t *testing.T) {
	covered := []string{"Sequence", "Time", "Actor", "Action", "Target", "Reason", "Before", "After", "Prev", "Hash"}
	var got []string
	for f := range reflect.TypeFor[registry.AuditRecord]().Fields() {
		got = append(got, f.Name)
	}
	if !slices.Equal(got, covered) {
		t.Errorf("AuditRecord fields %v; the hash covers %v", got, covered)
	}
}

func TestQueryAudit(t *testing.T) {
	e, _, n := auditedEnv(t)
	ctx := context.Background()
	recs, more, err := e.reg.QueryAudit(ctx, registry.AuditQuery{Target: "partner/globex"})
	if err != nil || more || len(recs) != 2 || recs[0].Action != "partner.create" || recs[1].Action != "partner.suspend" {
		t.Errorf("QueryAudit(partner/globex) = %+v, %t, %v", recs, more, err)
	}
	recs, more, err = e.reg.QueryAudit(ctx, registry.AuditQuery{After: 1, Limit: 2})
	if err != nil || !more || len(recs) != 2 || recs[0].Sequence != 2 {
		t.Errorf("QueryAudit(after 1, limit 2) = %+v, %t, %v", recs, more, err)
	}
	recs, more, err = e.reg.QueryAudit(ctx, registry.AuditQuery{After: n - 1, Limit: 2})
	if err != nil || more || len(recs) != 1 {
		t.Errorf("QueryAudit(last page) = %+v, %t, %v", recs, more, err)
	}
}

// copyFile copies the registry file src to a new file and returns its path.
func copyFile(t *testing.T, src string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(t.TempDir(), "copy.db")
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// tamper edits the audit bucket of the bbolt file at path directly, as someone with access to the
// file (not to the registry) could.
func tamper(t *testing.T, path string, edit func(t *testing.T, b *bolt.Bucket)) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		edit(t, tx.Bucket([]byte(registry.AuditBucket)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func key(seq uint64) []byte { return store.Uint64Key(seq) }

func decode(t *testing.T, b *bolt.Bucket, seq uint64) registry.AuditRecord {
	t.Helper()
	var rec registry.AuditRecord
	if err := json.Unmarshal(b.Get(key(seq)), &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func put(t *testing.T, b *bolt.Bucket, rec registry.AuditRecord) {
	t.Helper()
	raw, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(key(rec.Sequence), raw); err != nil {
		t.Fatal(err)
	}
}

// rechain recomputes the hashes of the records from seq to n, as a forger who knows the format
// would after changing record seq.
func rechain(t *testing.T, b *bolt.Bucket, seq, n uint64) {
	t.Helper()
	prev := registry.AuditGenesis()
	if seq > 1 {
		prev = decode(t, b, seq-1).Hash
	}
	for s := seq; s <= n; s++ {
		rec := decode(t, b, s)
		rec.Prev = prev
		rec.Hash = specHash(t, prev, rec)
		put(t, b, rec)
		prev = rec.Hash
	}
}

// TestAuditVerifyDetectsTamperingInACopy is the acceptance test: records made through the real
// registry on a real bbolt file, the file copied, one record changed in the copy with bbolt
// directly, and verification of the copy names that record.
func TestAuditVerifyDetectsTamperingInACopy(t *testing.T) {
	e, path, n := auditedEnv(t)
	recs, err := e.reg.ListAudit(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	head := registry.AuditAnchor{Sequence: n, Hash: recs[n-1].Hash}
	e.stop() // a running registry holds the file's lock; the copy is of a closed file

	for _, tc := range []struct {
		name   string
		edit   func(t *testing.T, b *bolt.Bucket)
		anchor registry.AuditAnchor
		want   *registry.AuditBreak // Detail is not compared
		intact uint64               // records before the break
	}{
		{name: "intact", intact: n},
		{name: "intact with the head as anchor", anchor: head, intact: n},
		{name: "actor changed", edit: func(t *testing.T, b *bolt.Bucket) {
			rec := decode(t, b, 4)
			rec.Actor = "mallory"
			put(t, b, rec)
		}, want: &registry.AuditBreak{Sequence: 4, Problem: registry.AuditHashMismatch}, intact: 3},
		{name: "one byte of the stored reason changed", edit: func(t *testing.T, b *bolt.Bucket) {
			raw := append([]byte(nil), b.Get(key(5))...)
			i := strings.Index(string(raw), "incident 7")
			raw[i+9] = '8'
			if err := b.Put(key(5), raw); err != nil {
				t.Fatal(err)
			}
		}, want: &registry.AuditBreak{Sequence: 5, Problem: registry.AuditHashMismatch}, intact: 4},
		{name: "record deleted", edit: func(t *testing.T, b *bolt.Bucket) {
			if err := b.Delete(key(3)); err != nil {
				t.Fatal(err)
			}
		}, want: &registry.AuditBreak{Sequence: 4, Problem: registry.AuditGap}, intact: 2},
		{name: "first record deleted", edit: func(t *testing.T, b *bolt.Bucket) {
			if err := b.Delete(key(1)); err != nil {
				t.Fatal(err)
			}
		}, want: &registry.AuditBreak{Sequence: 2, Problem: registry.AuditGap}, intact: 0},
		{name: "record moved to another sequence", edit: func(t *testing.T, b *bolt.Bucket) {
			if err := b.Put(key(3), b.Get(key(4))); err != nil {
				t.Fatal(err)
			}
		}, want: &registry.AuditBreak{Sequence: 3, Problem: registry.AuditSequenceMismatch}, intact: 2},
		{name: "record renumbered and rehashed in place of another", edit: func(t *testing.T, b *bolt.Bucket) {
			rec := decode(t, b, 4)
			rec.Sequence = 3
			rec.Prev = decode(t, b, 2).Hash
			rec.Hash = specHash(t, rec.Prev, rec)
			put(t, b, rec)
		}, want: &registry.AuditBreak{Sequence: 4, Problem: registry.AuditPrevMismatch}, intact: 3},
		{name: "record changed and its own hash recomputed", edit: func(t *testing.T, b *bolt.Bucket) {
			rec := decode(t, b, 2)
			rec.Actor = "mallory"
			rec.Hash = specHash(t, rec.Prev, rec)
			put(t, b, rec)
		}, want: &registry.AuditBreak{Sequence: 3, Problem: registry.AuditPrevMismatch}, intact: 2},
		{name: "hashes removed", edit: func(t *testing.T, b *bolt.Bucket) {
			rec := decode(t, b, 3)
			rec.Prev, rec.Hash = "", ""
			put(t, b, rec)
		}, want: &registry.AuditBreak{Sequence: 3, Problem: registry.AuditPrevMismatch}, intact: 2},
		{name: "garbage", edit: func(t *testing.T, b *bolt.Bucket) {
			if err := b.Put(key(2), []byte("not json")); err != nil {
				t.Fatal(err)
			}
		}, want: &registry.AuditBreak{Sequence: 2, Problem: registry.AuditUndecodable}, intact: 1},
		{name: "a field the hash does not cover added", edit: func(t *testing.T, b *bolt.Bucket) {
			raw := strings.Replace(string(b.Get(key(2))), `{`, `{"note":"harmless",`, 1)
			if err := b.Put(key(2), []byte(raw)); err != nil {
				t.Fatal(err)
			}
		}, want: &registry.AuditBreak{Sequence: 2, Problem: registry.AuditUndecodable}, intact: 1},
		{name: "tail cut: undetectable without an anchor", edit: func(t *testing.T, b *bolt.Bucket) {
			if err := b.Delete(key(n)); err != nil {
				t.Fatal(err)
			}
		}, intact: n - 1},
		{name: "tail cut, with an anchor", anchor: head, edit: func(t *testing.T, b *bolt.Bucket) {
			if err := b.Delete(key(n)); err != nil {
				t.Fatal(err)
			}
		}, want: &registry.AuditBreak{Sequence: n, Problem: registry.AuditTruncated}, intact: n - 1},
		{name: "chain rewritten by a forger, with an anchor", anchor: head, edit: func(t *testing.T, b *bolt.Bucket) {
			rec := decode(t, b, 2)
			rec.Actor = "mallory"
			put(t, b, rec)
			rechain(t, b, 2, n)
		}, want: &registry.AuditBreak{Sequence: n, Problem: registry.AuditAnchorMismatch}, intact: n - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := copyFile(t, path)
			if tc.edit != nil {
				tamper(t, cp, tc.edit)
			}
			st, err := store.OpenBolt(cp, registry.Schema)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			v, err := registry.VerifyAuditStore(context.Background(), st, tc.anchor)
			if err != nil {
				t.Fatal(err)
			}
			if v.Records != tc.intact || v.HeadSequence != tc.intact {
				t.Errorf("%d intact records, head %d; want %d", v.Records, v.HeadSequence, tc.intact)
			}
			switch {
			case tc.want == nil && v.Broken != nil:
				t.Errorf("reported broken: %v", v.Broken)
			case tc.want == nil:
			case v.Broken == nil:
				t.Errorf("reported intact (%d records), want %s at %d", v.Records, tc.want.Problem, tc.want.Sequence)
			case v.Broken.Sequence != tc.want.Sequence || v.Broken.Problem != tc.want.Problem:
				t.Errorf("reported %v; want %s at %d", v.Broken, tc.want.Problem, tc.want.Sequence)
			}
		})
	}
	// The original was never touched.
	st, err := store.OpenBolt(path, registry.Schema)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, err := registry.VerifyAuditStore(context.Background(), st, head); err != nil || !v.Intact() {
		t.Errorf("the original: %+v, %v", v, err)
	}
}
