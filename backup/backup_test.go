package backup_test

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/backup"
	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

var (
	schemaA = store.Schema{Name: "alpha", Version: 1, Buckets: []string{"b"}}
	schemaB = store.Schema{Name: "beta", Version: 1, Buckets: []string{"b"}}
	now     = time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
)

func fill(t *testing.T, s store.Store, n int, tag string) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := s.Update(func(tx store.Tx) error { return tx.Put("b", store.Uint64Key(uint64(i)), []byte(tag)) }); err != nil {
			t.Fatal(err)
		}
	}
}

func count(t *testing.T, path string, schema store.Schema, tag string) int {
	t.Helper()
	s, err := store.OpenBolt(path, schema)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	n := 0
	s.View(func(tx store.Tx) error {
		return tx.Scan("b", nil, nil, func(_, v []byte) (bool, error) {
			if string(v) == tag {
				n++
			}
			return true, nil
		})
	})
	return n
}

// backupOf writes a backup of two stores and returns its path.
func backupOf(t *testing.T) string {
	t.Helper()
	a, b := storetest.OpenBolt(t, schemaA), storetest.OpenBolt(t, schemaB)
	fill(t, a, 50, "a")
	fill(t, b, 20, "b")
	out := filepath.Join(t.TempDir(), "treaty.backup")
	m, err := backup.Write(out, []backup.Source{{Name: "alpha", Store: a}, {Name: "beta", Store: b}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Stores) != 2 || m.Stores[0].Name != "alpha" || m.Stores[1].Size == 0 {
		t.Fatalf("manifest = %+v", m)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, mode %v; want 0600", err, fi.Mode())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".treaty-backup-*"))
	if len(left) != 0 {
		t.Fatalf("scratch files left behind: %v", left)
	}
	return out
}

func TestWriteAndRestore(t *testing.T) {
	out := backupOf(t)
	data := t.TempDir()
	if _, err := backup.Restore(out, data, false, now); err != nil {
		t.Fatal(err)
	}
	if n := count(t, filepath.Join(data, "alpha.db"), schemaA, "a"); n != 50 {
		t.Errorf("alpha restored with %d records, want 50", n)
	}
	if n := count(t, filepath.Join(data, "beta.db"), schemaB, "b"); n != 20 {
		t.Errorf("beta restored with %d records, want 20", n)
	}
	fi, _ := os.Stat(filepath.Join(data, "alpha.db"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("restored mode %v, want 0600", fi.Mode().Perm())
	}

	// Into a folder that holds stores: refused, then moved aside on request, never deleted.
	if _, err := backup.Restore(out, data, false, now); fail.KindOf(err) != fail.Precondition {
		t.Fatalf("restore over existing stores = %v, want a precondition failure", err)
	}
	if _, err := backup.Restore(out, data, true, now); err != nil {
		t.Fatal(err)
	}
	aside := filepath.Join(data, "pre-restore-20261129T030000Z")
	if n := count(t, filepath.Join(aside, "alpha.db"), schemaA, "a"); n != 50 {
		t.Errorf("the moved-aside store holds %d records, want 50", n)
	}
}

func TestWriteRefusals(t *testing.T) {
	out := backupOf(t)
	s := storetest.OpenBolt(t, schemaA)
	for _, tc := range []struct {
		path string
		kind fail.Kind
	}{
		{"relative.backup", fail.Invalid},
		{out, fail.Precondition}, // exists: never overwritten
		{filepath.Join(t.TempDir(), "no", "such", "folder", "x"), fail.Precondition},
	} {
		if _, err := backup.Write(tc.path, []backup.Source{{Name: "alpha", Store: s}}, now); fail.KindOf(err) != tc.kind {
			t.Errorf("Write(%s) = %v, want kind %v", tc.path, err, tc.kind)
		}
	}
}

// A store kept in etcd is backed up with its cluster: Write refuses, naming the way, and writes
// nothing.
func TestWriteRefusesStoresElsewhere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.backup")
	sources := []backup.Source{
		{Name: "alpha", Store: storetest.OpenBolt(t, schemaA)},
		{Name: "beta", Store: storetest.OpenBolt(t, schemaB), Elsewhere: "etcd, prefix /treaty/beta"},
	}
	_, err := backup.Write(path, sources, now)
	if fail.KindOf(err) != fail.Precondition || !strings.Contains(err.Error(), "etcdctl snapshot save") || !strings.Contains(err.Error(), "/treaty/beta") {
		t.Fatalf("Write = %v, want a precondition failure naming the prefix and etcdctl snapshot save", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a refused backup left %s: %v", path, err)
	}
}

// rewrite copies the archive at src, letting edit change each entry's content (nil drops it).
func rewrite(t *testing.T, src string, edit func(name string, body []byte) []byte) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var buf bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if body = edit(h.Name, body); body == nil {
			continue
		}
		h.Size = int64(len(body))
		tw.WriteHeader(h)
		tw.Write(body)
	}
	tw.Close()
	out := filepath.Join(t.TempDir(), "edited.backup")
	os.WriteFile(out, buf.Bytes(), 0o600)
	return out
}

func TestRestoreRefusesDamagedBackups(t *testing.T) {
	out := backupOf(t)
	for name, edit := range map[string]func(string, []byte) []byte{
		"flipped byte": func(n string, b []byte) []byte {
			if n == "beta.db" {
				b[len(b)/2] ^= 0xff
			}
			return b
		},
		"missing store": func(n string, b []byte) []byte {
			if n == "alpha.db" {
				return nil
			}
			return b
		},
		"missing manifest": func(n string, b []byte) []byte {
			if n == "MANIFEST.json" {
				return nil
			}
			return b
		},
		"other format": func(n string, b []byte) []byte {
			if n == "MANIFEST.json" {
				return bytes.Replace(b, []byte(backup.Format), []byte("treaty-backup/9"), 1)
			}
			return b
		},
	} {
		t.Run(name, func(t *testing.T) {
			data := t.TempDir()
			if _, err := backup.Restore(rewrite(t, out, edit), data, false, now); fail.KindOf(err) != fail.Precondition {
				t.Fatalf("Restore = %v, want a precondition failure", err)
			}
			if files, _ := os.ReadDir(data); len(files) != 0 {
				t.Fatalf("a refused restore left %v in the data folder", files)
			}
		})
	}
	// A truncated file.
	raw, _ := os.ReadFile(out)
	short := filepath.Join(t.TempDir(), "short.backup")
	os.WriteFile(short, raw[:len(raw)/2], 0o600)
	if _, err := backup.Restore(short, t.TempDir(), false, now); fail.KindOf(err) != fail.Precondition {
		t.Fatalf("Restore(truncated) = %v, want a precondition failure", err)
	}
}
