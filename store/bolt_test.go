package store_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.OpenBolt(t, storetest.Schema) })
}

func TestBoltFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.db")
	storetest.OpenBoltAt(t, path, storetest.Schema)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestBoltSchema(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.db")
	v1 := store.Schema{Name: "svc", Version: 1, Buckets: []string{"a"}}
	s, err := store.OpenBolt(path, v1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx store.Tx) error { return tx.Put("a", []byte("k"), []byte("old")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// A newer layout migrates at open.
	v2 := store.Schema{Name: "svc", Version: 2, Buckets: []string{"a", "b"}, Migrations: map[uint64]func(store.Tx) error{
		1: func(tx store.Tx) error {
			v := tx.Get("a", []byte("k"))
			return tx.Put("b", []byte("k"), append(v, "+migrated"...))
		},
	}}
	s, err = store.OpenBolt(path, v2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	var got []byte
	s.View(func(tx store.Tx) error { got = tx.Get("b", []byte("k")); return nil })
	if string(got) != "old+migrated" {
		t.Fatalf("migrated value = %q", got)
	}
	s.Close()

	// An older binary refuses a newer file, and no service opens another's file.
	for _, tc := range []struct {
		schema store.Schema
		want   string
	}{
		{v1, "newer than this binary"},
		{store.Schema{Name: "other", Version: 2}, `belongs to the "svc" service`},
	} {
		if _, err := store.OpenBolt(path, tc.schema); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenBolt(%s v%d) = %v, want error containing %q", tc.schema.Name, tc.schema.Version, err, tc.want)
		}
	}
}
