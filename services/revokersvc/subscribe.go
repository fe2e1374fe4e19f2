package revokersvc

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/edge"
)

// readBatch bounds how many events one read of the log returns to a subscriber.
const readBatch = 512

// Subscribe implements treatyv1.RevocationServiceServer: a heartbeat first, then every event after
// the requested sequence in order, then live events, with a heartbeat whenever the interval passes.
// Each stream reads the shared log at its own pace, so a slow subscriber delays nobody else.
func (s *Service) Subscribe(req *treatyv1.SubscribeRequest, stream grpc.ServerStreamingServer[treatyv1.SubscribeResponse]) error {
	ctx := stream.Context()
	tick := time.NewTicker(s.heartbeat)
	defer tick.Stop()
	heartbeat := func() error {
		return stream.Send(&treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Heartbeat{Heartbeat: &treatyv1.Heartbeat{
			Epoch: s.log.Epoch(), HeadSequence: s.log.Head(), Time: timestamppb.Now(),
		}}})
	}
	if err := heartbeat(); err != nil {
		return err
	}
	next := req.GetAfterSequence()
	for {
		changed := s.log.Changed() // before reading, so no append is missed
		events, err := s.log.Read(next, readBatch)
		if err != nil {
			return edge.Status(s.logger, err)
		}
		for _, ev := range events {
			if err := stream.Send(&treatyv1.SubscribeResponse{Message: &treatyv1.SubscribeResponse_Event{Event: ev}}); err != nil {
				return err
			}
			next = ev.GetSequence()
		}
		if len(events) > 0 {
			select {
			case <-tick.C:
				if err := heartbeat(); err != nil {
					return err
				}
			default:
			}
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
		case <-s.stop:
			return status.Error(codes.Unavailable, "the revoker is shutting down; resubscribe after your last sequence")
		}
	}
}
