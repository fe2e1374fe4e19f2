package feed

import (
	"fmt"
	"testing"
)

// An edit never changes the map it was copied from, whatever group and leaf its keys land in,
// and the copy sees every change.
func TestCowMapEditsLeaveTheOriginal(t *testing.T) {
	var base cowMap[int]
	e := cowEdit[int]{m: &base}
	for i := range 20000 {
		e.set(fmt.Sprint("k", i), i)
	}
	orig := base // a state keeps this; the next edit works on a copy of the struct
	next := orig
	e2 := cowEdit[int]{m: &next}
	for i := range 20000 {
		switch i % 3 {
		case 0:
			e2.set(fmt.Sprint("k", i), -i)
		case 1:
			e2.delete(fmt.Sprint("k", i))
		}
	}
	e2.set("new", 7)
	if orig.len() != 20000 || next.len() != 20000-6667+1 {
		t.Fatalf("len: original %d, edited %d", orig.len(), next.len())
	}
	for i := range 20000 {
		k := fmt.Sprint("k", i)
		if v, ok := orig.get(k); !ok || v != i {
			t.Fatalf("original %s = %d, %v after the edit; want %d", k, v, ok, i)
		}
		v, ok := next.get(k)
		switch i % 3 {
		case 0:
			if !ok || v != -i {
				t.Fatalf("edited %s = %d, %v; want %d", k, v, ok, -i)
			}
		case 1:
			if ok {
				t.Fatalf("edited %s survived its delete", k)
			}
		default:
			if !ok || v != i {
				t.Fatalf("edited %s = %d, %v; want %d", k, v, ok, i)
			}
		}
	}
	if _, ok := orig.get("new"); ok {
		t.Fatal("the original sees a key added by the edit")
	}
	n := 0
	next.each(func(string, int) bool { n++; return true })
	if n != next.len() {
		t.Fatalf("each visited %d entries, len is %d", n, next.len())
	}
}
