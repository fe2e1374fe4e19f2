package main

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The load client sends each request as protobuf bytes encoded before the measuring starts and
// reads of each response only its first field (a health status, or a decision), through its own
// codec. Both calls go through it alike, so the client's share of the two cores is the same small
// amount for both, and what differs between them is the server's work. With the generated
// stubs, the client would encode the Check's 0.5 KiB token and decode the decision's ids on every
// call, which a gateway calling the PDP pays too, but which says nothing about the server.

// encoded is a request in protobuf's wire format, sent as is.
type encoded []byte

// firstField receives the value of a response's field 1, a varint (an enum in both responses).
type firstField struct {
	value uint64
	found bool
}

// leanCodec marshals encoded requests and unmarshals into firstField, nothing else.
type leanCodec struct{}

func (leanCodec) Name() string { return "proto" }

func (leanCodec) Marshal(v any) (mem.BufferSlice, error) {
	raw, ok := v.(encoded)
	if !ok {
		return nil, fmt.Errorf("lean codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(raw)}, nil
}

func (leanCodec) Unmarshal(data mem.BufferSlice, v any) error {
	out, ok := v.(*firstField)
	if !ok {
		return fmt.Errorf("lean codec: cannot unmarshal into %T", v)
	}
	var raw []byte
	if len(data) == 1 {
		raw = data[0].ReadOnlyData()
	} else {
		raw = data.Materialize()
	}
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return protowire.ParseError(n)
		}
		raw = raw[n:]
		if num == 1 && typ == protowire.VarintType {
			val, m := protowire.ConsumeVarint(raw)
			if m < 0 {
				return protowire.ParseError(m)
			}
			out.value, out.found = val, true
			raw = raw[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, raw)
		if m < 0 {
			return protowire.ParseError(m)
		}
		raw = raw[m:]
	}
	return nil
}

// leanCall calls method with req encoded in advance and returns the response's field 1 (zero,
// the enums' unspecified value, when absent).
func leanCall(ctx context.Context, conn *grpc.ClientConn, method string, req encoded) (uint64, error) {
	var out firstField
	err := conn.Invoke(ctx, method, req, &out, grpc.ForceCodecV2(leanCodec{}))
	return out.value, err
}

// encode marshals m once, before measuring.
func encode(m proto.Message) encoded {
	raw, err := proto.Marshal(m)
	if err != nil {
		panic(err) // the tool's own fixed requests
	}
	return raw
}
