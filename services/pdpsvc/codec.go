package pdpsvc

import (
	"unicode/utf8"
	"unsafe"

	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// ServerCodec returns the gRPC codec for a server that serves DecisionService: protobuf's, with a
// shortcut for the requests of the enforcement points' hot path. A CheckRequest that holds only
// a token, an action, a resource and a min_sequence, and arrived in a buffer that gRPC
// allocated for it alone, is decoded without copying: its strings point into that buffer.
// Everything else, including any request the shortcut cannot prove it reads exactly as protobuf
// does, goes to protobuf's decoder.
//
// Why: protobuf's decoder copies every string, and a token is about 400 bytes, so each Check
// allocated the token twice (gRPC's frame buffer, then the string) and paid for both in garbage
// collection; with the shortcut the decision path reads the frame buffer itself.
//
// Why it is safe: gRPC reads a frame of at most 1 KiB (grpc-go's pooling threshold) into a
// plain slice it never reuses, handed over as a mem.SliceBuffer, whose Free does nothing; the
// garbage collector keeps it alive while a string points into it, and nothing writes to it
// after it is received. A larger or pooled buffer (mem.Buffer of another type, which gRPC
// recycles after decoding) is never aliased. What the decision keeps beyond the call is copied
// (the token cache copies the token; the decision log keeps interned copies of the action and
// resource), so no frame, and no token in it, outlives its call.
// TestServerCodecReviewedGRPCVersion fails when grpc-go changes, so that an upgrade re-checks all
// this against the new transport.
func ServerCodec() encoding.CodecV2 {
	return codec{base: encoding.GetCodecV2(protocodec.Name)}
}

type codec struct{ base encoding.CodecV2 }

func (c codec) Name() string { return protocodec.Name }

func (c codec) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if req, ok := v.(*treatyv1.CheckRequest); ok && len(data) == 1 {
		if b, ok := data[0].(mem.SliceBuffer); ok && decodeCheck(b, req) {
			return nil
		}
	}
	return c.base.Unmarshal(data, v)
}

// decodeCheck decodes b into req if b holds nothing but fields 1 to 4 of CheckRequest (token,
// action, resource as valid UTF-8 strings; min_sequence as a varint), in any order and
// repeated (the last one counts, as in protobuf). Otherwise it reports false and leaves req as
// it was, for protobuf's decoder, which handles the other fields and refuses what is malformed.
// b must outlive req and never change: the strings point into it.
func decodeCheck(b []byte, req *treatyv1.CheckRequest) bool {
	var (
		token, action, resource string
		hasToken                bool
		minSequence             uint64
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 4 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			minSequence, b = v, b[n:]
		case num >= 1 && num <= 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !utf8.Valid(v) {
				return false
			}
			b = b[n:]
			s := unsafe.String(unsafe.SliceData(v), len(v))
			switch num {
			case 1:
				token, hasToken = s, true
			case 2:
				action = s
			case 3:
				resource = s
			}
		default:
			return false
		}
	}
	req.Reset()
	if hasToken { // an empty token is still the subject that was sent (a oneof has presence)
		req.Subject = &treatyv1.CheckRequest_Token{Token: token}
	}
	req.Action, req.Resource, req.MinSequence = action, resource, minSequence
	return true
}
