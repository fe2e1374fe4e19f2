package revokersvc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/revokersvc"
)

func TestSubscribeFilters(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	var (
		partner     = treatyv1.TargetKind_TARGET_KIND_PARTNER
		integration = treatyv1.TargetKind_TARGET_KIND_INTEGRATION
		workload    = treatyv1.TargetKind_TARGET_KIND_WORKLOAD
		credential  = treatyv1.TargetKind_TARGET_KIND_CREDENTIAL
	)
	end := timestamppb.New(time.Now().Add(time.Hour))
	entry := func(id string, ev *treatyv1.Event) *treatyv1.PublishEntry {
		return &treatyv1.PublishEntry{RequestId: id, Event: ev}
	}
	// 1-2 partners, 3 an integration of acme, 4 its workload, 5 beta's integration.
	if _, err := e.log.Publish(ctx, []*treatyv1.PublishEntry{
		entry("1", &treatyv1.Event{Change: &treatyv1.Event_PartnerChanged{PartnerChanged: &treatyv1.PartnerChanged{PartnerId: "acme", State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE, ContractEndTime: end}}}),
		entry("2", &treatyv1.Event{Change: &treatyv1.Event_PartnerChanged{PartnerChanged: &treatyv1.PartnerChanged{PartnerId: "beta", State: treatyv1.PartnerState_PARTNER_STATE_ACTIVE, ContractEndTime: end}}}),
		entry("3", &treatyv1.Event{Change: &treatyv1.Event_IntegrationChanged{IntegrationChanged: &treatyv1.IntegrationChanged{IntegrationId: "acme-crm", PartnerId: "acme", State: treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE}}}),
		entry("4", &treatyv1.Event{Change: &treatyv1.Event_WorkloadChanged{WorkloadChanged: &treatyv1.WorkloadChanged{WorkloadId: "acme-sync", IntegrationId: "acme-crm", PartnerId: "acme", State: treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE}}}),
		entry("5", &treatyv1.Event{Change: &treatyv1.Event_IntegrationChanged{IntegrationChanged: &treatyv1.IntegrationChanged{IntegrationId: "beta-erp", PartnerId: "beta", State: treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE}}}),
	}); err != nil {
		t.Fatal(err)
	}
	revoke := func(kind treatyv1.TargetKind, id string) {
		t.Helper()
		if _, err := e.log.Revoke(ctx, revoker.Request{Kind: kind, Target: id, Reason: "r"}); err != nil {
			t.Fatal(err)
		}
	}
	// Half replayed, half live: both paths filter.
	revoke(workload, "acme-sync")    // 6
	revoke(integration, "beta-erp")  // 7
	revoke(credential, "jti-nobody") // 8: partner unknown to the revoker, so it reaches every partner filter

	tests := []struct {
		name   string
		filter *treatyv1.SubscribeFilter
		want   []uint64
	}{
		{"none", nil, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{"empty", &treatyv1.SubscribeFilter{}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{"acme", &treatyv1.SubscribeFilter{PartnerIds: []string{"acme"}}, []uint64{1, 3, 4, 6, 8, 9, 11}},
		{"beta", &treatyv1.SubscribeFilter{PartnerIds: []string{"beta"}}, []uint64{2, 5, 7, 8, 10}},
		{"both partners", &treatyv1.SubscribeFilter{PartnerIds: []string{"beta", "acme"}}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{"partner kind", &treatyv1.SubscribeFilter{TargetKinds: []treatyv1.TargetKind{partner}}, []uint64{10}},
		{"workload and integration kinds", &treatyv1.SubscribeFilter{TargetKinds: []treatyv1.TargetKind{workload, integration}}, []uint64{6, 7, 9, 11}},
		{"credentials", &treatyv1.SubscribeFilter{TargetKinds: []treatyv1.TargetKind{credential}}, []uint64{8}},
		{"acme integrations", &treatyv1.SubscribeFilter{PartnerIds: []string{"acme"}, TargetKinds: []treatyv1.TargetKind{integration}}, []uint64{9}},
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var streams []func() []uint64
	for _, tc := range tests {
		stream, err := e.client.Subscribe(cctx, &treatyv1.SubscribeRequest{Filter: tc.filter})
		if err != nil {
			t.Fatal(err)
		}
		// Wait for the opening heartbeat, so that the live events below come through the fan-out.
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		// Read until a heartbeat at head 11 arrives after the last live event: everything that
		// passes has come by then.
		streams = append(streams, func() []uint64 {
			var got []uint64
			for {
				m, err := stream.Recv()
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if ev := m.GetEvent(); ev != nil {
					got = append(got, ev.GetSequence())
				} else if m.GetHeartbeat().GetHeadSequence() == 11 {
					return got
				}
			}
		})
	}
	revoke(integration, "acme-crm") // 9
	revoke(partner, "beta")         // 10
	revoke(workload, "acme-sync")   // already blocked: nothing appended
	if _, err := e.log.Restore(ctx, revoker.Request{Kind: workload, Target: "acme-sync", Reason: "r"}); err != nil {
		t.Fatal(err) // 11
	}
	for i, tc := range tests {
		if diff := cmp.Diff(tc.want, streams[i]()); diff != "" {
			t.Errorf("%s: events (-want +got):\n%s", tc.name, diff)
		}
	}
	// Monitoring sees every stream at the head, the filtered ones too (their last events were
	// skipped, which a heartbeat proves), so none looks behind.
	waitSubscribers(t, e.svc, func(subs []revokersvc.SubscriberInfo) bool {
		if len(subs) != len(tests) {
			return false
		}
		for _, s := range subs {
			if s.Sent != 11 || s.Name != "127.0.0.1" || s.Since.IsZero() {
				return false
			}
		}
		return true
	})
	if st := e.svc.SubscriberStats(); st.Connected != len(tests) || st.Head != 11 || st.CutOff != 0 || st.OutOfRange != 0 {
		t.Errorf("SubscriberStats = %+v", st)
	}
}

// waitSubscribers waits (generously) until ok holds for the service's open subscriptions.
func waitSubscribers(t *testing.T, svc *revokersvc.Service, ok func([]revokersvc.SubscriberInfo) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		subs := svc.Subscribers()
		if ok(subs) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribers after 30 s: %+v", subs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSubscribeInvalidFilter(t *testing.T) {
	e := start(t)
	tests := []struct {
		name   string
		filter *treatyv1.SubscribeFilter
		field  string
	}{
		{"empty partner id", &treatyv1.SubscribeFilter{PartnerIds: []string{"acme", ""}}, "filter.partner_ids[1]"},
		{"bad partner id", &treatyv1.SubscribeFilter{PartnerIds: []string{"ACME"}}, "filter.partner_ids[0]"},
		{"too many partners", &treatyv1.SubscribeFilter{PartnerIds: make([]string, 1001)}, "filter.partner_ids"},
		{"unspecified kind", &treatyv1.SubscribeFilter{TargetKinds: []treatyv1.TargetKind{treatyv1.TargetKind_TARGET_KIND_PARTNER, 0}}, "filter.target_kinds[1]"},
		{"unknown kind", &treatyv1.SubscribeFilter{TargetKinds: []treatyv1.TargetKind{99}}, "filter.target_kinds[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			stream, err := e.client.Subscribe(ctx, &treatyv1.SubscribeRequest{Filter: tc.filter})
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want INVALID_ARGUMENT naming %s", err, tc.field)
			}
		})
	}
}
