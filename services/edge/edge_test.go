package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/fail"
)

func TestStatus(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	tests := []struct {
		err      error
		code     codes.Code
		msg      string
		hideCase bool
	}{
		{fail.Invalidf("partner.id", "partner.id is required"), codes.InvalidArgument, "partner.id is required", false},
		{fmt.Errorf("wrapped: %w", fail.NotFoundf("partner %q not found", "x")), codes.NotFound, `partner "x" not found`, false},
		{fail.Preconditionf("p"), codes.FailedPrecondition, "p", false},
		{fail.Deniedf("d"), codes.PermissionDenied, "d", false},
		{fail.OutOfRangef("compacted"), codes.OutOfRange, "compacted", false},
		{fail.Abortedf("stale etag"), codes.Aborted, "stale etag", false},
		{fail.Unauthenticatedf("u"), codes.Unauthenticated, "u", false},
		{fail.AlreadyExistsf("a"), codes.AlreadyExists, "a", false},
		{fail.Unavailablef(errors.New("disk on fire"), "try later"), codes.Unavailable, "try later", false},
		{errors.New("secret internals"), codes.Internal, "internal error; the server log has the details", true},
		{context.DeadlineExceeded, codes.DeadlineExceeded, "deadline exceeded before the request completed", false},
	}
	for _, tc := range tests {
		st, _ := status.FromError(Status(log, tc.err))
		if st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("Status(%v) = %v %q, want %v %q", tc.err, st.Code(), st.Message(), tc.code, tc.msg)
		}
		if tc.hideCase && !strings.Contains(logs.String(), "secret internals") {
			t.Errorf("internal cause not logged")
		}
	}
	// A peer's status wrapped in a domain error is mapped by the domain error, and the peer's
	// internals stay out of the reply.
	peer := status.Error(codes.Internal, "peer internals: /var/lib/x.db corrupt")
	st, _ := status.FromError(Status(log, fail.Unavailablef(fmt.Errorf("call registry: %w", peer), "the registry could not be asked")))
	if st.Code() != codes.Unavailable || strings.Contains(st.Message(), "internals") {
		t.Errorf("wrapped peer status = %v %q, want UNAVAILABLE without the peer's detail", st.Code(), st.Message())
	}
	if st, _ := status.FromError(Status(log, fmt.Errorf("oops: %w", peer))); st.Code() != codes.Internal || strings.Contains(st.Message(), "internals") {
		t.Errorf("wrapped peer status without a kind = %v %q, want a bare INTERNAL", st.Code(), st.Message())
	}
	st, _ = status.FromError(Status(log, fail.Invalidf("partner.id", "bad")))
	if len(st.Details()) != 1 || st.Details()[0].(*errdetails.BadRequest).GetFieldViolations()[0].GetField() != "partner.id" {
		t.Errorf("details = %v, want the field violation", st.Details())
	}
}

func TestFromStatus(t *testing.T) {
	for code, kind := range map[codes.Code]fail.Kind{
		codes.NotFound: fail.NotFound, codes.InvalidArgument: fail.Invalid, codes.PermissionDenied: fail.Denied, codes.OutOfRange: fail.OutOfRange, codes.Aborted: fail.Aborted,
		codes.Unavailable: fail.Unavailable, codes.Internal: fail.Unavailable, codes.DeadlineExceeded: fail.Unavailable,
	} {
		err := FromStatus(status.Error(code, "peer said"))
		if fail.KindOf(err) != kind {
			t.Errorf("FromStatus(%v) kind = %v, want %v", code, fail.KindOf(err), kind)
		}
	}
	if FromStatus(nil) != nil {
		t.Error("FromStatus(nil) != nil")
	}
}
