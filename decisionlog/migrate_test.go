package decisionlog_test

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/decisionlog"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// layout1 copies testdata/layout1.db.gz, a log written by the layout-1 code (commit 36a3a90:
// 300 decisions a second apart from 2026-03-01T12:00:00Z, request ids req-0..req-299, subject
// w(i%7) except every 50th, which has none), to a temp file and returns its path.
func layout1(t *testing.T) string {
	t.Helper()
	f, err := os.Open("testdata/layout1.db.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "decisionlog.db")
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// layout1Requests is what the fixture holds about subject (or everything for ""), in a range.
func layout1Requests(subject string, from, to int) []string {
	out := []string{}
	for i := from; i < to; i++ {
		s := fmt.Sprintf("w%d", i%7)
		if i%50 == 49 {
			s = ""
		}
		if subject == "" || s == subject {
			out = append(out, fmt.Sprintf("req-%d", i))
		}
	}
	return out
}

func TestMigrateLayout1(t *testing.T) {
	for _, chunk := range []int{7, 300, 20_000} {
		t.Run(fmt.Sprint("chunk=", chunk), func(t *testing.T) {
			decisionlog.SetReindexChunk(t, chunk)
			path := layout1(t)
			s := storetest.OpenBoltAt(t, path, decisionlog.Schema)
			clk := newClock()
			clk.Advance(300 * time.Second)
			l := open(t, decisionlog.Config{Store: s, Now: clk.Now})

			// The old index is gone, the new one complete, the mark cleared.
			s.View(func(tx store.Tx) error {
				keys := 0
				tx.Scan(decisionlog.BySubjectBucket, nil, nil, func(k, v []byte) (bool, error) {
					if len(k) != 17 || len(v) != 8 {
						t.Errorf("subject index key %q -> %x is not of layout 2", k, v)
					}
					keys++
					return true, nil
				})
				if keys != 294 {
					t.Errorf("subject index holds %d keys, want 294 (300 entries, 6 without a subject)", keys)
				}
				if m := tx.Get(decisionlog.StateBucket, []byte("reindex_subjects")); m != nil {
					t.Errorf("reindex mark left: %x", m)
				}
				return nil
			})

			t0 := newClock().Now()
			at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
			for _, tt := range []struct {
				q    decisionlog.Query
				want []string
			}{
				{decisionlog.Query{}, layout1Requests("", 0, 300)},
				{decisionlog.Query{Subject: "w3"}, layout1Requests("w3", 0, 300)},
				{decisionlog.Query{Subject: "w0", Start: at(100), End: at(200)}, layout1Requests("w0", 100, 200)},
				{decisionlog.Query{Subject: "w8"}, layout1Requests("w8", 0, 300)},
			} {
				for _, size := range []int{0, 7} {
					q := tt.q
					q.PageSize = size
					assertRequests(t, l, q, tt.want...)
				}
			}

			// New entries follow the old ones, in both indexes.
			record(l, 300, "w3", false)
			eventually(t, "the new entry is written", written(l, 1))
			all := listAll(t, l, decisionlog.Query{Subject: "w3"})
			if last := all[len(all)-1]; last.Seq != 301 || last.RequestID != "req-300" {
				t.Fatalf("last entry of w3 = seq %d %s, want 301 req-300", last.Seq, last.RequestID)
			}
		})
	}
}

// A rebuild cut short (a crash between chunks) resumes at the next open.
func TestMigrateResumes(t *testing.T) {
	decisionlog.SetReindexChunk(t, 50)
	path := layout1(t)
	s, err := store.OpenBolt(path, decisionlog.Schema)
	if err != nil {
		t.Fatal(err)
	}
	// As if the rebuild had indexed entries 1-100 before the crash: the mark says 101 is next.
	if err := s.Update(func(tx store.Tx) error {
		mark := append(store.Uint64Key(101), store.Uint64Key(300)...)
		return tx.Put(decisionlog.StateBucket, []byte("reindex_subjects"), mark)
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	l := open(t, decisionlog.Config{Store: storetest.OpenBoltAt(t, path, decisionlog.Schema)})
	// Only 101-300 were indexed: w5's entries among the first 100 are not there.
	got := listAll(t, l, decisionlog.Query{Subject: "w5", PageSize: decisionlog.MaxPageSize})
	var ids []string
	for _, e := range got {
		ids = append(ids, e.RequestID)
	}
	if diff := cmp.Diff(layout1Requests("w5", 100, 300), ids); diff != "" {
		t.Fatalf("w5 after a resumed rebuild (-want +got):\n%s", diff)
	}
}

// Two subjects whose entries share a partition of the subject index never see each other's.
func TestListSubjectsSharingAPartition(t *testing.T) {
	a := "wl-a"
	var b string
	for i := 0; b == ""; i++ {
		if c := fmt.Sprintf("wl-%d", i); decisionlog.SubjectPartition(c) == decisionlog.SubjectPartition(a) {
			b = c
		}
	}
	l := open(t, decisionlog.Config{})
	var wantA, wantB []string
	for i := range 40 {
		s := a
		if i%3 == 0 {
			s = b
		}
		record(l, i, s, i%2 == 0)
		if s == a {
			wantA = append(wantA, fmt.Sprintf("req-%d", i))
		} else {
			wantB = append(wantB, fmt.Sprintf("req-%d", i))
		}
	}
	eventually(t, "all are written", written(l, 40))
	for _, size := range []int{0, 1, 4} {
		assertRequests(t, l, decisionlog.Query{Subject: a, PageSize: size}, wantA...)
		assertRequests(t, l, decisionlog.Query{Subject: b, PageSize: size}, wantB...)
	}
}
