package store_test

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// The fault wrapper is transparent while healthy: it passes the whole conformance suite.
func TestFaultyConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.Faulty(storetest.OpenBolt(t, storetest.Schema)) })
}

// A write the disk refuses is Unavailable with a message that says what to fix, through Update
// and Batch alike, keeps its cause for errors.Is, and writes nothing; reads go on; once the disk is
// healed writes succeed again.
func TestDiskErrorsAreUnavailable(t *testing.T) {
	tests := []struct {
		errno syscall.Errno
		want  string
	}{
		{syscall.ENOSPC, "the conformance's store cannot write: no space left on device; free space on the server's data volume, then retry"},
		{syscall.EDQUOT, "disk quota exceeded; raise the data volume's quota"},
		{syscall.EIO, "input/output error; check the data volume's disk"},
		{syscall.EROFS, "read-only file system; make the data volume writable again"},
	}
	writes := map[string]func(store.Store, func(store.Tx) error) error{
		"Update": store.Store.Update,
		"Batch":  store.Store.Batch,
	}
	for _, tc := range tests {
		for name, write := range writes {
			t.Run(fmt.Sprintf("%s/%s", name, tc.errno), func(t *testing.T) {
				st := storetest.Faulty(storetest.OpenBolt(t, storetest.Schema))
				put := func(k string) error {
					return write(st, func(tx store.Tx) error { return tx.Put("a", []byte(k), []byte("v")) })
				}
				if err := put("before"); err != nil {
					t.Fatal(err)
				}
				st.FailWrites(&fs.PathError{Op: "write", Path: "x.db", Err: tc.errno})
				err := put("during")
				if fail.KindOf(err) != fail.Unavailable || !errors.Is(err, tc.errno) {
					t.Fatalf("write on a failing disk: %v (kind %v), want Unavailable wrapping %v", err, fail.KindOf(err), tc.errno)
				}
				var fe *fail.Error
				if errors.As(err, &fe); !strings.Contains(fe.Msg, tc.want) {
					t.Fatalf("message %q, want it to contain %q", fe.Msg, tc.want)
				}
				// fn swallowing the failed Put does not get the write through: the commit fails.
				err = write(st, func(tx store.Tx) error { tx.Put("a", []byte("swallowed"), []byte("v")); return nil })
				if fail.KindOf(err) != fail.Unavailable {
					t.Fatalf("write that ignored its failed Put: %v, want Unavailable", err)
				}
				if got := get(t, st, "before"); got != "v" {
					t.Fatalf("read while the disk fails = %q, want v", got)
				}
				st.Heal()
				if err := put("after"); err != nil {
					t.Fatalf("write after Heal: %v", err)
				}
				for k, want := range map[string]string{"before": "v", "during": "", "swallowed": "", "after": "v"} {
					if got := get(t, st, k); got != want {
						t.Errorf("%s = %q, want %q", k, got, want)
					}
				}
				if st.Refused() < 2 { // a refused Batch call runs again alone, and is refused again
					t.Errorf("Refused = %d, want at least 2", st.Refused())
				}
			})
		}
	}
}

// Errors that are not the disk's pass through unchanged: a domain refusal keeps its kind, and an
// unclassified error from fn stays an internal one.
func TestWriteErrorsOtherThanDiskUnchanged(t *testing.T) {
	st := storetest.OpenBolt(t, storetest.Schema)
	notFound := fail.NotFoundf("partner %q not found", "acme")
	if err := st.Update(func(store.Tx) error { return notFound }); err != notFound {
		t.Fatalf("domain error became %v", err)
	}
	boom := errors.New("boom")
	if err := st.Batch(func(store.Tx) error { return boom }); err != boom {
		t.Fatalf("plain error became %v", err)
	}
}

func get(t *testing.T, st store.Store, key string) string {
	t.Helper()
	var v []byte
	if err := st.View(func(tx store.Tx) error { v = tx.Get("a", []byte(key)); return nil }); err != nil {
		t.Fatal(err)
	}
	return string(v)
}
