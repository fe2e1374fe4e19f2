package decisionlogsvc

import (
	"time"

	"github.com/treaty-dev/treaty/decisionlog"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// timeFormat spells times in messages.
const timeFormat = time.RFC3339Nano

func query(req *treatyv1.ListDecisionsRequest) decisionlog.Query {
	q := decisionlog.Query{Subject: req.GetSubject(), PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	if t := req.GetStartTime(); t != nil {
		q.Start = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		q.End = t.AsTime()
	}
	return q
}

func listResponse(page decisionlog.Page, st decisionlog.Stats) *treatyv1.ListDecisionsResponse {
	out := &treatyv1.ListDecisionsResponse{NextPageToken: page.NextPageToken, SampledOut: st.Omitted()}
	for _, e := range page.Entries {
		out.Decisions = append(out.Decisions, e.Proto())
	}
	return out
}
