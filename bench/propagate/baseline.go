package main

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/revokersvc"
)

// baseline is the straightforward revoker the issue measures Treaty against: Treaty's unary
// handlers, but a Subscribe in which every stream's goroutine wakes at each append, reads the log
// and marshals and sends each event itself (Treaty's Subscribe before the shared fan-out).
type baseline struct {
	*revokersvc.Service
	log       *revoker.Log
	heartbeat time.Duration
}

// Subscribe streams a heartbeat, then every event after the requested sequence, per stream.
func (b *baseline) Subscribe(req *treatyv1.SubscribeRequest, stream grpc.ServerStreamingServer[treatyv1.SubscribeResponse]) error {
	ctx := stream.Context()
	tick := time.NewTicker(b.heartbeat)
	defer tick.Stop()
	heartbeat := func() error {
		return stream.Send(&treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Heartbeat{Heartbeat: &treatyv1.Heartbeat{
			Epoch: b.log.Epoch(), HeadSequence: b.log.Head(), Time: timestamppb.Now(),
		}}})
	}
	if err := heartbeat(); err != nil {
		return err
	}
	next := req.GetAfterSequence()
	for {
		changed := b.log.Changed()
		events, err := b.log.Read(next, 512)
		if err != nil {
			return err
		}
		for _, ev := range events {
			if err := stream.Send(&treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Event{Event: ev}}); err != nil {
				return err
			}
			next = ev.GetSequence()
		}
		if len(events) > 0 {
			continue
		}
		select {
		case <-changed:
		case <-tick.C:
			if err := heartbeat(); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}
