package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// A real bbolt commit failure: the file descriptor bbolt writes through is swapped for a
// read-only one of the same file, so its writes fail with EBADF at commit (the mmap it reads
// through is untouched). The write is Unavailable and nothing of it is visible, reads go on, and
// after the descriptor is restored writes succeed and the file passes bbolt's consistency check,
// also when reopened.
func TestBoltCommitFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	st, err := store.OpenBolt(path, storetest.Schema)
	if err != nil {
		t.Fatal(err)
	}
	put := func(k string, n int) error {
		return st.Update(func(tx store.Tx) error {
			for i := range n { // enough pages that the file must grow
				if err := tx.Put("a", fmt.Appendf(nil, "%s-%04d", k, i), make([]byte, 512)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := put("before", 10); err != nil {
		t.Fatal(err)
	}
	restore := breakWrites(t, path)
	for _, n := range []int{1, 2000} {
		err := put("during", n)
		var fe *fail.Error
		if !errors.As(err, &fe) || fe.Kind != fail.Unavailable || !strings.Contains(fe.Msg, "nothing was written") {
			t.Fatalf("commit of %d keys through a read-only descriptor: %v, want Unavailable", n, err)
		}
	}
	if err := st.View(func(tx store.Tx) error {
		if tx.Get("a", []byte("before-0009")) == nil || tx.Get("a", []byte("during-0000")) != nil {
			return errors.New("wrong contents while writes fail")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	restore()
	if err := put("after", 2000); err != nil {
		t.Fatalf("write after the descriptor is restored: %v", err)
	}
	if err := st.Check(); err != nil {
		t.Fatalf("consistency check after failed commits: %v", err)
	}
	st.Close()
	re := storetest.OpenBoltAt(t, path, storetest.Schema) // checks again at cleanup
	var n int
	re.View(func(tx store.Tx) error {
		return tx.Scan("a", nil, nil, func(k, _ []byte) (bool, error) {
			if strings.HasPrefix(string(k), "during") {
				return false, fmt.Errorf("%s of a failed commit is in the file", k)
			}
			n++
			return true, nil
		})
	})
	if n != 2010 {
		t.Fatalf("reopened file holds %d keys, want 2010", n)
	}
}

// breakWrites swaps this process's descriptor of path for a read-only one, and returns a func
// that swaps the original back.
func breakWrites(t *testing.T, path string) func() {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	target := -1
	for _, e := range fds {
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && link == path {
			fmt.Sscan(e.Name(), &target)
		}
	}
	if target < 0 {
		t.Fatalf("no descriptor of %s open", path)
	}
	saved, err := syscall.Dup(target)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := syscall.Dup3(int(ro.Fd()), target, syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := syscall.Dup3(saved, target, syscall.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		syscall.Close(saved)
	}
}

// A real full filesystem: the store lives on a 2 MiB tmpfs (mounted for the test, so it needs
// root; skipped otherwise) next to a filler file, and is written until the disk refuses. The
// refused write is Unavailable saying the disk is full; every write acknowledged before it reads
// back, while the disk is full and after; once the filler is removed writes succeed again, and the
// file passes bbolt's consistency check, also reopened.
func TestBoltOnFullFilesystem(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) }) // after the store's cleanup below
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 512<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "x.db")
	st, err := store.OpenBolt(path, storetest.Schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // closing twice is harmless
	value := func(k string) []byte { return bytes.Repeat([]byte(k), 16<<10/len(k)) }
	put := func(k string) error {
		return st.Update(func(tx store.Tx) error { return tx.Put("a", []byte(k), value(k)) })
	}
	readBack := func(keys []string) {
		t.Helper()
		if err := st.View(func(tx store.Tx) error {
			for _, k := range keys {
				if !bytes.Equal(tx.Get("a", []byte(k)), value(k)) {
					return fmt.Errorf("acknowledged %s reads back wrong", k)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	var acked []string
	for i := 0; ; i++ {
		k := fmt.Sprintf("k%05d", i)
		err := put(k)
		if err == nil {
			acked = append(acked, k)
			if i > 1000 {
				t.Fatal("2 MiB never filled up")
			}
			continue
		}
		var fe *fail.Error
		if !errors.As(err, &fe) || fe.Kind != fail.Unavailable || !errors.Is(err, syscall.ENOSPC) ||
			!strings.Contains(fe.Msg, "no space left on device; free space on the server's data volume, then retry") {
			t.Fatalf("write %d on a full filesystem: %v, want Unavailable, no space left", i, err)
		}
		break
	}
	if len(acked) < 10 {
		t.Fatalf("only %d writes before the disk was full", len(acked))
	}
	readBack(acked)
	// What the failed commit had claimed is free again, so a later write may still fit; if it
	// does not, it is refused the same way.
	switch err := put("again"); {
	case err == nil:
		acked = append(acked, "again")
	case fail.KindOf(err) != fail.Unavailable:
		t.Fatalf("another write on the full filesystem: %v, want Unavailable", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"after-1", "after-2"} {
		if err := put(k); err != nil {
			t.Fatalf("write once space is freed: %v", err)
		}
		acked = append(acked, k)
	}
	readBack(acked)
	if err := st.Check(); err != nil {
		t.Fatalf("consistency check after the disk was full: %v", err)
	}
	st.Close()
	st = storetest.OpenBoltAt(t, path, storetest.Schema) // checked again at cleanup, before the unmount
	readBack(acked)
	t.Logf("%d writes acknowledged, the filesystem full in between", len(acked))
}
