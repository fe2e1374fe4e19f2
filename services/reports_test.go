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
	comp, err := reports.GetComplianceReport(ctx, &treatyv1.GetComplianceReportRequest{})
	if err != nil || len(comp.GetItems()) != 27 || len(comp.GetNotes()) != 0 || comp.GetSummary().GetFeedSequence() == 0 {
		t.Fatalf("GetComplianceReport = %v, %v", comp, err)
	}
	select {
	case fs := <-notified:
		t.Errorf("an empty inventory notified %v", fs)
	default:
	}
}
