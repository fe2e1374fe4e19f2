package reportsvc

import (
	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

func validateGetPosture(req *treatyv1.GetPostureRequest) error {
	if _, ok := treatyv1.Severity_name[int32(req.GetMinSeverity())]; !ok {
		return fail.Invalidf("min_severity", "min_severity %d is not a severity", req.GetMinSeverity())
	}
	if id := req.GetPartnerId(); id != "" {
		return fail.CheckID("partner_id", id)
	}
	return nil
}

func validateGetInventoryReport(req *treatyv1.GetInventoryReportRequest) error {
	if id := req.GetPartnerId(); id != "" {
		return fail.CheckID("partner_id", id)
	}
	return nil
}
