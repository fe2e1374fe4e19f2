package accesssvc

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/access"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

func roleNames(roles []access.Role) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return out
}

func identityProto(id access.Identity) *treatyv1.Identity {
	out := &treatyv1.Identity{
		Name: id.Name, Roles: roleNames(id.Roles), CreateTime: timestamppb.New(id.Created), CreatedBy: id.CreatedBy,
		Reason: id.Reason, HasToken: id.HasToken,
	}
	if !id.TokenIssued.IsZero() {
		out.TokenIssueTime = timestamppb.New(id.TokenIssued)
	}
	return out
}

func refusalProto(r access.Refusal) *treatyv1.Refusal {
	return &treatyv1.Refusal{
		Sequence: r.Sequence, Time: timestamppb.New(r.Time), Caller: r.Caller, Via: r.Via, Method: r.Method,
		Code: r.Code, Reason: r.Reason, Peer: r.Peer,
	}
}
