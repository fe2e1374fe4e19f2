package revokersvc

import (
	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
)

// maxPublishEntries bounds one Publish call; outbox relays send at most 256.
const maxPublishEntries = 1024

func requestOf(kind treatyv1.TargetKind, id, reason, actor, requestID string) revoker.Request {
	return revoker.Request{Kind: kind, Target: id, Reason: reason, Actor: actor, RequestID: requestID}
}

// errNoDryRun answers a dry run until the blast radius is wired in.
var errNoDryRun = fail.Preconditionf("dry run is not available yet")

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
