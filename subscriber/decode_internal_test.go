package subscriber

import (
	"testing"
	"unsafe"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

func revocation(seq uint64, jti string) *treatyv1.SubscribeResponse {
	return &treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Event{Event: &treatyv1.Event{
		Sequence: seq, Time: &timestamppb.Timestamp{Seconds: 1_790_000_000, Nanos: 123_456_789},
		Actor: "alice@example.com", Reason: "leaked in a build log", RequestId: "req-" + jti,
		Change: &treatyv1.Event_CredentialRevoked{CredentialRevoked: &treatyv1.CredentialRevoked{
			Jti: jti, ExpireTime: &timestamppb.Timestamp{Seconds: 1_790_003_600}, PartnerId: "acme"}},
	}}}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// event wraps an Event's encoding in a SubscribeResponse.
func event(ev []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), ev)
}

// checkDecode decodes b through the codec into s and checks the result against protobuf's own
// decoder: the same message, or the same error. It reports whether the shortcut took it.
func checkDecode(t *testing.T, s *sharedMessage, b []byte) bool {
	t.Helper()
	want := new(treatyv1.SubscribeResponse)
	wantErr := proto.Unmarshal(b, want)
	err := newFeedCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, s)
	switch {
	case (err != nil) != (wantErr != nil):
		t.Fatalf("decoding %x: error %v, protobuf's %v", b, err, wantErr)
	case err != nil:
		return false
	case !proto.Equal(s.msg, want):
		t.Fatalf("decoding %x:\n got %v\nwant %v", b, s.msg, want)
	}
	return s.msg == &s.resp
}

func TestFeedCodecDecodesAsProtobuf(t *testing.T) {
	full := marshal(t, revocation(42, "jti-1"))
	ev := func(m *treatyv1.Event) []byte { return event(marshal(t, m)) }
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	str := func(num protowire.Number, s string) []byte {
		return protowire.AppendString(tag(num, protowire.BytesType), s)
	}
	ts := func(num protowire.Number, seconds, nanos uint64) []byte {
		inner := protowire.AppendVarint(tag(1, protowire.VarintType), seconds)
		inner = protowire.AppendVarint(append(inner, tag(2, protowire.VarintType)...), nanos)
		return protowire.AppendBytes(tag(num, protowire.BytesType), inner)
	}
	revoked := func(inner ...[]byte) []byte {
		return protowire.AppendBytes(tag(10, protowire.BytesType), cat(inner...))
	}
	for _, tc := range []struct {
		name     string
		b        []byte
		shortcut bool // the shortcut must take it (else protobuf's decoder does)
	}{
		{"a credential revocation", full, true},
		{"only a sequence", ev(&treatyv1.Event{Sequence: 7}), true},
		{"empty event", event(nil), true},
		{"empty change", ev(&treatyv1.Event{Sequence: 7, Change: &treatyv1.Event_CredentialRevoked{CredentialRevoked: &treatyv1.CredentialRevoked{}}}), true},
		{"empty time", ev(&treatyv1.Event{Sequence: 7, Time: &timestamppb.Timestamp{}}), true},
		{"negative seconds and nanos", event(ts(2, uint64(1<<64-5), uint64(1<<64-9))), true},
		{"repeated strings and sequence: the last counts", event(cat(str(4, "first"), str(4, "second"),
			protowire.AppendVarint(tag(1, protowire.VarintType), 3), protowire.AppendVarint(tag(1, protowire.VarintType), 4),
			revoked(str(1, "a"), str(1, "b")))), true},
		{"fields in any order", event(cat(revoked(str(3, "p"), ts(2, 9, 0), str(1, "j")), str(3, "bob"), ts(2, 5, 6),
			protowire.AppendVarint(tag(1, protowire.VarintType), 1))), true},
		{"a heartbeat", marshal(t, &treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Heartbeat{Heartbeat: &treatyv1.Heartbeat{Epoch: "e", HeadSequence: 9}}}), false},
		{"another change", ev(&treatyv1.Event{Sequence: 7, Change: &treatyv1.Event_Blocked{Blocked: &treatyv1.Blocked{TargetId: "w"}}}), false},
		{"nothing at all", nil, false},
		{"a repeated time (protobuf merges)", event(cat(ts(2, 1, 0), ts(2, 0, 5))), false},
		{"a repeated change", event(cat(revoked(str(1, "a")), revoked(str(3, "p")))), false},
		{"a repeated expiry", event(revoked(ts(2, 1, 0), ts(2, 0, 5))), false},
		{"two events", cat(full, full), false},
		{"an unknown event field", event(cat(str(4, "r"), str(99, "x"))), false},
		{"an unknown timestamp field", event(protowire.AppendBytes(tag(2, protowire.BytesType), str(3, "x"))), false},
		{"a sequence of the wrong wire type", event(str(1, "x")), false},
		{"invalid UTF-8 in the reason", event(str(4, "\xff")), false},
		{"invalid UTF-8 in the jti", event(revoked(str(1, "a\xc0"))), false},
		{"truncated", full[:len(full)-3], false},
		{"a trailing tag", append(append([]byte{}, full...), 0x08), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s sharedMessage
			checkDecode(t, &s, full) // whatever the shortcut reused must not show through
			if got := checkDecode(t, &s, tc.b); got != tc.shortcut {
				t.Fatalf("shortcut took it: %v, want %v", got, tc.shortcut)
			}
		})
	}
}

func TestFeedCodecReusesItsObjects(t *testing.T) {
	var s sharedMessage
	codec := newFeedCodec()
	first := marshal(t, revocation(1, "jti-1"))
	if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(first)}, &s); err != nil {
		t.Fatal(err)
	}
	ev, jti, reason := s.msg.GetEvent(), s.msg.GetEvent().GetCredentialRevoked().GetJti(), s.msg.GetEvent().GetReason()
	if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(marshal(t, revocation(2, "jti-2")))}, &s); err != nil {
		t.Fatal(err)
	}
	if s.msg.GetEvent() != ev {
		t.Fatal("the second revocation was decoded into a new event")
	}
	if jti != "jti-1" || ev.GetCredentialRevoked().GetJti() != "jti-2" {
		t.Fatalf("kept jti %q and reused event's jti %q, want jti-1 and jti-2", jti, ev.GetCredentialRevoked().GetJti())
	}
	if unsafe.StringData(reason) != unsafe.StringData(ev.GetReason()) {
		t.Fatal("the second revocation's reason, the same as the first's, was copied again")
	}
	// Protobuf's codec for anything that is not NextShared's.
	var m treatyv1.SubscribeResponse
	if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(first)}, &m); err != nil || m.GetEvent().GetSequence() != 1 {
		t.Fatalf("plain message: %v, %v", m.GetEvent(), err)
	}
}

// FuzzFeedCodec decodes two messages in turn into the same objects, and checks the second
// against protobuf's decoder: what the shortcut decodes must be what protobuf decodes, whatever
// came before it.
func FuzzFeedCodec(f *testing.F) {
	full, err := proto.Marshal(revocation(42, "jti-1"))
	if err != nil {
		f.Fatal(err)
	}
	hb, err := proto.Marshal(&treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Heartbeat{Heartbeat: &treatyv1.Heartbeat{Epoch: "e"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full, full)
	f.Add(full, []byte{0x0a, 0x02, 0x08, 0x07})
	f.Add(hb, full)
	f.Add(full, full[:20])
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var s sharedMessage
		newFeedCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(a)}, &s)
		checkDecode(t, &s, b)
	})
}

func BenchmarkFeedCodec(b *testing.B) {
	msg := marshal(b, revocation(42, "3f9b8c1e-5d2a-4c7e-9a61-0b8e2f4d6c13"))
	codec := newFeedCodec()
	b.Run("decoder=protobuf", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m treatyv1.SubscribeResponse
			if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decoder=shared", func(b *testing.B) {
		b.ReportAllocs()
		var s sharedMessage
		for b.Loop() {
			if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, &s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
