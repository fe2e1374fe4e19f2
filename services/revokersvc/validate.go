package revokersvc

import (
	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
)

// maxPublishEntries bounds one Publish call; outbox relays send at most 256.
const maxPublishEntries = 1024

func requestOf(kind treatyv1.TargetKind, id, reason, actor, requestID string) revoker.Request {
	return revoker.Request{Kind: kind, Target: id, Reason: reason, Actor: actor, RequestID: requestID}
}

// validateDryRun checks a dry run's target; reason, actor and request id do not matter, as nothing
// is recorded.
func validateDryRun(req *treatyv1.RevokeRequest) error {
	return feed.CheckTarget("target_id", req.GetTargetKind(), req.GetTargetId())
}

// validateRevokeAll checks a break-glass request's shape; whether its below_sequence is reachable
// depends on the head, which the log checks.
func validateRevokeAll(req *treatyv1.RevokeAllRequest) (revoker.RevokeAllRequest, error) {
	r := revoker.RevokeAllRequest{Below: req.GetBelowSequence(), Reason: req.GetReason(), Actor: req.GetActor(), RequestID: req.GetRequestId()}
	return r, r.Check()
}

func validatePublish(req *treatyv1.PublishRequest) error {
	switch n := len(req.GetEntries()); {
	case n == 0:
		return fail.Invalidf("entries", "entries must not be empty")
	case n > maxPublishEntries:
		return fail.Invalidf("entries", "at most %d entries per call, got %d", maxPublishEntries, n)
	}
	return nil
}
