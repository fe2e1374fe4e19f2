package decisionlogsvc

import (
	"github.com/treaty-dev/treaty/decisionlog"
	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

func validateList(req *treatyv1.ListDecisionsRequest) error {
	if sub := req.GetSubject(); sub != "" {
		if err := fail.CheckID("subject", sub); err != nil {
			return err
		}
	}
	if req.GetPageSize() < 0 {
		return fail.Invalidf("page_size", "page_size must not be negative")
	}
	start, end := req.GetStartTime(), req.GetEndTime()
	if start != nil {
		if err := start.CheckValid(); err != nil {
			return fail.Invalidf("start_time", "start_time is not a valid timestamp: %v", err)
		}
	}
	if end != nil {
		if err := end.CheckValid(); err != nil {
			return fail.Invalidf("end_time", "end_time is not a valid timestamp: %v", err)
		}
	}
	if start != nil && end != nil && end.AsTime().Before(start.AsTime()) {
		return fail.Invalidf("end_time", "end_time %s is before start_time %s", end.AsTime().Format(timeFormat), start.AsTime().Format(timeFormat))
	}
	return nil
}

func validateTail(req *treatyv1.TailDecisionsRequest) error {
	switch b := req.GetBacklog(); {
	case b < 0:
		return fail.Invalidf("backlog", "backlog must not be negative")
	case b > decisionlog.MaxBacklog:
		return fail.Invalidf("backlog", "backlog is at most %d, not %d; use ListDecisions for more", decisionlog.MaxBacklog, b)
	}
	return nil
}
