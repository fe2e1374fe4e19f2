package backup_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/backup"
	"github.com/treaty-dev/treaty/fail"
)

// archive builds a backup archive by hand: each entry a regular file, the manifest as given.
func archive(tb testing.TB, m any, files map[string][]byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			tb.Fatal(err)
		}
		tw.Write(data)
	}
	raw, _ := json.Marshal(m)
	add("MANIFEST.json", raw)
	for name, data := range files {
		add(name, data)
	}
	tw.Close()
	return buf.Bytes()
}

// FuzzRestore restores arbitrary archives into a data folder that already holds a store: a
// refusal is a Precondition error and leaves the folder exactly as it was, and an accepted archive
// puts in place only store files its manifest names, with the sizes and hashes it states.
func FuzzRestore(f *testing.F) {
	data := []byte("not really a bbolt file")
	sum := sha256.Sum256(data)
	entry := backup.Entry{Name: "alpha", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	f.Add(archive(f, backup.Manifest{Format: backup.Format, Created: time.Unix(0, 0), Stores: []backup.Entry{entry}}, map[string][]byte{"alpha.db": data}))
	f.Add(archive(f, backup.Manifest{Format: backup.Format, Stores: []backup.Entry{entry, entry}}, map[string][]byte{"alpha.db": data}))
	f.Add(archive(f, backup.Manifest{Format: backup.Format, Stores: []backup.Entry{{Name: "../x", Size: 1}}}, map[string][]byte{"../x.db": {1}}))
	f.Add(archive(f, backup.Manifest{Format: "other"}, nil))
	f.Add(archive(f, map[string]any{"format": backup.Format, "stores": "x"}, nil))
	f.Add([]byte{})
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		dir := t.TempDir()
		file := filepath.Join(dir, "backup.tar")
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		dataDir := filepath.Join(dir, "data")
		if err := os.Mkdir(dataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		existing := []byte("the live beta store")
		if err := os.WriteFile(filepath.Join(dataDir, "beta.db"), existing, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := backup.Restore(file, dataDir, false, time.Unix(1700000000, 0))
		names := list(t, dataDir)
		if err != nil {
			if fail.KindOf(err) != fail.Precondition {
				t.Fatalf("Restore refused with %v (kind %v), want Precondition", err, fail.KindOf(err))
			}
			if !slices.Equal(names, []string{"beta.db"}) {
				t.Fatalf("a refused restore left %q in the data folder", names)
			}
			if got, _ := os.ReadFile(filepath.Join(dataDir, "beta.db")); !bytes.Equal(got, existing) {
				t.Fatal("a refused restore changed a store in place")
			}
			return
		}
		want := []string{"beta.db"}
		for _, e := range m.Stores {
			want = append(want, e.Name+".db")
			got, err := os.ReadFile(filepath.Join(dataDir, e.Name+".db"))
			sum := sha256.Sum256(got)
			if err != nil || int64(len(got)) != e.Size || hex.EncodeToString(sum[:]) != e.SHA256 {
				t.Fatalf("restored %s does not match its manifest entry %+v", e.Name, e)
			}
		}
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Fatalf("restore left %q, the manifest names %q", names, want)
		}
	})
}

func list(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}
