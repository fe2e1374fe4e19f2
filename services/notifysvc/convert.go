package notifysvc

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/notify"
)

var states = map[string]treatyv1.DeliveryState{
	notify.StatePending:   treatyv1.DeliveryState_DELIVERY_STATE_PENDING,
	notify.StateDelivered: treatyv1.DeliveryState_DELIVERY_STATE_DELIVERED,
	notify.StateDead:      treatyv1.DeliveryState_DELIVERY_STATE_DEAD,
}

func query(req *treatyv1.ListDeliveriesRequest) notify.DeliveryQuery {
	q := notify.DeliveryQuery{PartnerID: req.GetPartnerId(), PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	for name, st := range states {
		if st == req.GetState() {
			q.State = name
		}
	}
	return q
}

func deliveryProto(d notify.Delivery) *treatyv1.WebhookDelivery {
	out := &treatyv1.WebhookDelivery{
		DeliveryId: d.ID, NotificationId: d.NotificationID, Type: d.Type, PartnerId: d.PartnerID, Endpoint: d.Endpoint,
		State: states[d.State], CreateTime: timestamppb.New(d.Created),
	}
	if !d.NextAttempt.IsZero() {
		out.NextAttemptTime = timestamppb.New(d.NextAttempt)
	}
	for _, a := range d.Attempts {
		out.Attempts = append(out.Attempts, &treatyv1.DeliveryAttempt{
			Time: timestamppb.New(a.Time), StatusCode: int32(a.StatusCode), Error: a.Error, Duration: durationpb.New(a.Duration),
		})
	}
	return out
}
