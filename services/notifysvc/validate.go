package notifysvc

import (
	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

func validateList(req *treatyv1.ListDeliveriesRequest) error {
	if _, ok := treatyv1.DeliveryState_name[int32(req.GetState())]; !ok {
		return fail.Invalidf("state", "state %d is not a delivery state", req.GetState())
	}
	if p := req.GetPartnerId(); p != "" {
		if err := fail.CheckID("partner_id", p); err != nil {
			return err
		}
	}
	if req.GetPageSize() < 0 {
		return fail.Invalidf("page_size", "page_size must not be negative")
	}
	return nil
}

func validateTest(req *treatyv1.SendTestRequest) error {
	if a := req.GetActor(); a != "" {
		return registry.CheckActor("actor", a)
	}
	return nil
}

func validateRetry(req *treatyv1.RetryDeliveriesRequest) error {
	switch id := req.GetDeliveryId(); {
	case id == "" && !req.GetAllDead():
		return fail.Invalidf("delivery_id", "name a delivery_id, or set all_dead")
	case id != "" && req.GetAllDead():
		return fail.Invalidf("all_dead", "all_dead retries every dead delivery; leave delivery_id empty with it")
	case id != "":
		return fail.CheckOpaqueID("delivery_id", id)
	}
	return nil
}
