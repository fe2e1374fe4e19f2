package decisionlog

import (
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/treaty-dev/treaty/pdp"
)

// What the log keeps of a decision never points into the request's memory: the gRPC server
// decodes the action and resource in place, inside the frame that also holds the token
// (pdpsvc.ServerCodec), and a queued or tailed entry would keep that frame alive.
func TestCaptureCopiesTheRequestsStrings(t *testing.T) {
	frame := []byte("eyJ.secret.token|orders:read|https://api.test")
	s := unsafe.String(unsafe.SliceData(frame), len(frame))
	req := pdp.CheckRequest{Token: s[:16], Action: s[17:28], Resource: s[29:]}
	p := capture(&interner{}, &req, &pdp.Decision{}, time.Millisecond, time.Unix(1, 0))
	if p.action != "orders:read" || p.resource != "https://api.test" {
		t.Fatalf("captured action %q resource %q", p.action, p.resource)
	}
	start, end := uintptr(unsafe.Pointer(&frame[0])), uintptr(unsafe.Pointer(&frame[len(frame)-1]))
	for _, kept := range []string{p.action, p.resource} {
		if at := uintptr(unsafe.Pointer(unsafe.StringData(kept))); at >= start && at <= end {
			t.Errorf("the entry's %q points into the request's frame", kept)
		}
	}
}

// The interner hands out one copy per string, and stops keeping new ones at its bound (each then
// gets a copy of its own), so that junk actions cannot grow it.
func TestInternerIsBounded(t *testing.T) {
	var in interner
	first := in.get(string([]byte("orders:read")))
	if again := in.get(string([]byte("orders:read"))); unsafe.StringData(again) != unsafe.StringData(first) {
		t.Fatal("the same action got two copies")
	}
	for i := range maxInterned + 100 {
		in.get(strconv.Itoa(i))
	}
	if n := len(in.strings); n != maxInterned {
		t.Fatalf("the interner holds %d strings, want its bound %d", n, maxInterned)
	}
	if got := in.get("past-the-bound"); got != "past-the-bound" {
		t.Fatalf("got %q past the bound", got)
	}
}
