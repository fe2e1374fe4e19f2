package inventorysvc

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/registry"
)

func offboardingToProto(o registry.Offboarding) *treatyv1.Offboarding {
	return &treatyv1.Offboarding{
		PartnerId: o.PartnerID, Reason: o.Reason, Actor: o.Actor, Step: o.Step,
		StartTime:              optionalTimestamp(o.Started),
		RevokedCredentials:     o.Revoked,
		LastRevocationSequence: o.LastRevocationSequence,
		RevokeTime:             optionalTimestamp(o.RevokeDone),
		RetiredIntegrations:    o.RetiredIntegrations, RetiredWorkloads: o.RetiredWorkloads,
		RetireTime:          optionalTimestamp(o.RetireDone),
		ConfirmTime:         optionalTimestamp(o.Confirmed),
		ConfirmedAtSequence: o.ConfirmedAtSequence,
		LiveCredentials:     o.LiveCredentials,
		TerminateTime:       optionalTimestamp(o.Terminated),
	}
}

func optionalTimestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
