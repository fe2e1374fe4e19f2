package services

import (
	"context"
	"testing"
	"time"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/posture"
)

func TestReportServiceBesideTheRegistry(t *testing.T) {
	notified := make(chan []posture.Finding, 1)
	srv, conn := serve(t, Config{
		Posture: PostureConfig{Interval: time.Hour, OnNew: func(_ context.Context, fs []posture.Finding) { notified <- fs }}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !srv.Ready() {
		if ctx.Err() != nil {
			t.Fatal("not ready after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	reports := treatyv1.NewReportServiceClient(conn)
	posture, err := reports.GetPosture(ctx, &treatyv1.GetPostureRequest{Refresh: true})
	if err != nil || len(posture.GetNotes()) != 0 || posture.GetComputeTime() == nil {
		t.Fatalf("GetPosture = %v, %v; want a computation with the issuer's inventory", posture, err)
	}
	// The report names the feed's sequence: the issuer's first signing key is published there,
	// which may land a moment after the server says it is ready.
	for {
		comp, err := reports.GetComplianceReport(ctx, &treatyv1.GetComplianceReportRequest{})
		if err != nil || len(comp.GetItems()) != 27 || len(comp.GetNotes()) != 0 {
			t.Fatalf("GetComplianceReport = %v, %v", comp, err)
		}
		if comp.GetSummary().GetFeedSequence() != 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the compliance report never named a feed sequence")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case fs := <-notified:
		t.Errorf("an empty inventory notified %v", fs)
	default:
	}
}
