package store_test

import (
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
