// Package edge turns domain errors into gRPC statuses at the service edge, and statuses from
// peers back into domain errors. It is the one place where fail kinds meet status codes.
package edge

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/fail"
)

var kindCodes = map[fail.Kind]codes.Code{
	fail.Internal:        codes.Internal,
	fail.Invalid:         codes.InvalidArgument,
	fail.NotFound:        codes.NotFound,
	fail.AlreadyExists:   codes.AlreadyExists,
	fail.Precondition:    codes.FailedPrecondition,
	fail.Denied:          codes.PermissionDenied,
	fail.Unauthenticated: codes.Unauthenticated,
	fail.Unavailable:     codes.Unavailable,
	fail.OutOfRange:      codes.OutOfRange,
	fail.Aborted:         codes.Aborted,
}

// Status returns the gRPC status error for a domain error. Internal errors are logged with their
// cause and reach the caller only as "internal error", so no detail of the system leaks.
func Status(log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err // a status made at this edge already; wrapped ones are mapped below
	}
	var fe *fail.Error
	switch {
	case errors.As(err, &fe):
		if fe.Kind == fail.Internal {
			break
		}
		if fe.Kind == fail.Unavailable && fe.Err != nil {
			log.Warn("unavailable", "err", err)
		}
		st := status.New(kindCodes[fe.Kind], fe.Msg)
		if fe.Field != "" {
			if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: fe.Field, Description: fe.Msg},
			}}); derr == nil {
				st = d
			}
		}
		return st.Err()
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded before the request completed")
	}
	log.Error("internal error", "err", err)
	return status.Error(codes.Internal, "internal error; the server log has the details")
}

// FromStatus turns a status error from a peer service into a domain error of the matching kind,
// keeping the peer's message, so a service calling another can act on (or pass on) what it said.
// Transport failures become Unavailable.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fail.Unavailablef(err, "peer service call failed")
	}
	for kind, code := range kindCodes {
		if code == st.Code() && kind != fail.Internal && kind != fail.Unavailable {
			return &fail.Error{Kind: kind, Msg: st.Message(), Err: err}
		}
	}
	return fail.Unavailablef(err, "peer service unavailable (%s)", st.Code())
}
