package subscriber

import (
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// feedCodec is protobuf's codec with one shortcut, for NextShared: a message that is an event
// revoking one credential (the feed's common case, and the one a kill switch sends in bursts)
// is decoded into the follower's reused objects, so that it allocates only its strings.
// Everything else, and anything the shortcut cannot prove it reads exactly as protobuf does,
// goes to protobuf's decoder, into a fresh message.
//
// Why: protobuf's decoder allocates the event, its oneof wrappers, the CredentialRevoked and
// two Timestamps for every message, about 400 of the 570 bytes a subscriber process allocated
// per delivery in bench/propagate; at 1,000 subscriptions that garbage set off a collection
// every 40 or so revocations, and the revocations a collection overlapped were the slowest
// (the p99). Strings are still copies (an actor, reason or partner id the same as the last
// event's is that string again), so the caller may keep them.
type feedCodec struct{ base encoding.CodecV2 }

func newFeedCodec() feedCodec { return feedCodec{base: encoding.GetCodecV2(protocodec.Name)} }

func (c feedCodec) Name() string { return protocodec.Name }

func (c feedCodec) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

func (c feedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	s, ok := v.(*sharedMessage)
	if !ok {
		return c.base.Unmarshal(data, v)
	}
	if len(data) == 1 && s.decode(data[0].ReadOnlyData()) {
		s.msg = &s.resp
		return nil
	}
	m := new(treatyv1.SubscribeResponse)
	if err := c.base.Unmarshal(data, m); err != nil {
		return err
	}
	s.msg = m
	return nil
}

// sharedMessage is what NextShared receives into: the objects a credential revocation is
// decoded into, reused by every such message, and msg, the message the last receive produced
// (&resp, or a fresh message from protobuf's decoder).
type sharedMessage struct {
	msg *treatyv1.SubscribeResponse

	resp    treatyv1.SubscribeResponse
	event   treatyv1.SubscribeResponse_Event
	ev      treatyv1.Event
	time    timestamppb.Timestamp
	change  treatyv1.Event_CredentialRevoked
	revoked treatyv1.CredentialRevoked
	expire  timestamppb.Timestamp

	// The last actor, reason and partner id decoded: the next event reuses the string when its
	// bytes are the same, as they are across a bulk revocation (an offboarding revokes every
	// credential of one partner, by one actor, for one reason).
	actor, reason, partner string
}

// decode decodes b into s.resp if b is a SubscribeResponse holding one event whose change is a
// CredentialRevoked (or that has no change), with no fields but the known ones and each message
// field at most once (protobuf merges repeated message fields; the shortcut leaves that to it).
// Repeated scalar and string fields count the last time, as in protobuf. Otherwise it reports
// false, and the reused objects are left in no particular state (s.msg does not point to them).
func (s *sharedMessage) decode(b []byte) bool {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != 1 || typ != protowire.BytesType {
		return false
	}
	ev, m := protowire.ConsumeBytes(b[n:])
	if m < 0 || n+m != len(b) || !s.decodeEvent(ev) {
		return false
	}
	s.resp.Reset()
	s.event.Event = &s.ev
	s.resp.Message = &s.event
	return true
}

func (s *sharedMessage) decodeEvent(b []byte) bool {
	s.ev.Reset()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			s.ev.Sequence, b = v, b[n:]
		case num == 2 && typ == protowire.BytesType && s.ev.Time == nil:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !decodeTimestamp(v, &s.time) {
				return false
			}
			s.ev.Time, b = &s.time, b[n:]
		case num >= 3 && num <= 5 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !utf8.Valid(v) { // protobuf refuses invalid UTF-8 in a proto3 string
				return false
			}
			b = b[n:]
			switch num {
			case 3:
				s.ev.Actor = same(&s.actor, v)
			case 4:
				s.ev.Reason = same(&s.reason, v)
			case 5:
				s.ev.RequestId = string(v)
			}
		case num == 10 && typ == protowire.BytesType && s.ev.Change == nil:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !s.decodeRevoked(v) {
				return false
			}
			s.change.CredentialRevoked = &s.revoked
			s.ev.Change, b = &s.change, b[n:]
		default:
			return false
		}
	}
	return true
}

func (s *sharedMessage) decodeRevoked(b []byte) bool {
	s.revoked.Reset()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case (num == 1 || num == 3) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !utf8.Valid(v) {
				return false
			}
			if num == 1 {
				s.revoked.Jti = string(v)
			} else {
				s.revoked.PartnerId = same(&s.partner, v)
			}
			b = b[n:]
		case num == 2 && typ == protowire.BytesType && s.revoked.ExpireTime == nil:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !decodeTimestamp(v, &s.expire) {
				return false
			}
			s.revoked.ExpireTime, b = &s.expire, b[n:]
		default:
			return false
		}
	}
	return true
}

// decodeTimestamp decodes b into ts if it holds only a Timestamp's seconds and nanos.
func decodeTimestamp(b []byte, ts *timestamppb.Timestamp) bool {
	ts.Reset()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.VarintType || (num != 1 && num != 2) {
			return false
		}
		v, m := protowire.ConsumeVarint(b[n:])
		if m < 0 {
			return false
		}
		b = b[n+m:]
		if num == 1 {
			ts.Seconds = int64(v)
		} else {
			ts.Nanos = int32(v)
		}
	}
	return true
}

// same returns *last if it holds the bytes v, else a copy of v, which it remembers in *last.
func same(last *string, v []byte) string {
	if string(v) != *last { // compares without copying
		*last = string(v)
	}
	return *last
}
