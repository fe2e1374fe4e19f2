package decisionlogsvc_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/decisionlog"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/services/decisionlogsvc"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type env struct {
	log    *decisionlog.Log
	svc    *decisionlogsvc.Service
	client treatyv1.DecisionLogServiceClient
	tick   func() // moves the log's clock a minute on
}

// start serves a real decision log on loopback. Allows are sampled at rate.
func start(t *testing.T, rate float64) *env {
	t.Helper()
	e := &env{}
	clock := make(chan time.Time, 1)
	clock <- t0
	l, err := decisionlog.Open(decisionlog.Config{
		Store: storetest.OpenBolt(t, decisionlog.Schema), AllowSampleRate: rate,
		Now: func() time.Time { now := <-clock; clock <- now; return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e.log = l
	e.svc = decisionlogsvc.New(decisionlogsvc.Config{Log: l})
	t.Cleanup(e.svc.Close)
	conn := grpctest.Serve(t, e.svc.Register)
	e.client = treatyv1.NewDecisionLogServiceClient(conn)
	e.tick = func() { now := <-clock; clock <- now.Add(time.Minute) }
	return e
}

// record logs decision n about subject, as the PDP would, then moves the clock a minute on.
func (e *env) record(n int, subject string, allow bool) {
	reasons := []string{pdp.ReasonRevoked}
	if allow {
		reasons = []string{pdp.ReasonGranted}
	}
	e.log.Record(pdp.CheckRequest{Token: "eyJ.secret", Action: "orders:read", Resource: "https://api.test", RequestID: fmt.Sprintf("req-%d", n)},
		pdp.Decision{Allow: allow, Reasons: reasons, DecisionID: testDecisionID(n), Subject: subject, Partner: "acme", Sequence: 9},
		time.Millisecond)
	e.tick()
}

func (e *env) waitWritten(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.log.Stats().Written < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d decisions written", e.log.Stats().Written, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func at(minute int) *timestamppb.Timestamp {
	return timestamppb.New(t0.Add(time.Duration(minute) * time.Minute))
}

func requestIDs(rs []*treatyv1.DecisionRecord) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.GetRequestId())
	}
	return out
}

func TestListDecisions(t *testing.T) {
	e := start(t, 0)
	for i := range 8 {
		e.record(i, []string{"w1", "w2"}[i%2], i%2 == 0)
	}
	e.waitWritten(t, 8)
	ctx := context.Background()
	tests := []struct {
		name string
		req  *treatyv1.ListDecisionsRequest
		want []string
	}{
		{"all", &treatyv1.ListDecisionsRequest{}, []string{"req-0", "req-1", "req-2", "req-3", "req-4", "req-5", "req-6", "req-7"}},
		{"by subject", &treatyv1.ListDecisionsRequest{Subject: "w2"}, []string{"req-1", "req-3", "req-5", "req-7"}},
		{"by time", &treatyv1.ListDecisionsRequest{StartTime: at(2), EndTime: at(5)}, []string{"req-2", "req-3", "req-4"}},
		{"by subject and time", &treatyv1.ListDecisionsRequest{Subject: "w1", StartTime: at(3)}, []string{"req-4", "req-6"}},
		{"paged", &treatyv1.ListDecisionsRequest{Subject: "w1", PageSize: 1}, []string{"req-0", "req-2", "req-4", "req-6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []*treatyv1.DecisionRecord
			for pages := 0; ; pages++ {
				resp, err := e.client.ListDecisions(ctx, tt.req)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, resp.GetDecisions()...)
				if resp.GetNextPageToken() == "" {
					break
				}
				if pages > 20 {
					t.Fatal("paging never ends")
				}
				tt.req.PageToken = resp.GetNextPageToken()
			}
			if diff := cmp.Diff(tt.want, requestIDs(got)); diff != "" {
				t.Fatalf("request ids (-want +got):\n%s", diff)
			}
		})
	}

	resp, err := e.client.ListDecisions(ctx, &treatyv1.ListDecisionsRequest{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.GetDecisions()[0]
	if r.GetDecisionId() != testDecisionID(0).String() || r.GetSubject() != "w1" || r.GetPartnerId() != "acme" || r.GetDecision() != treatyv1.Decision_DECISION_ALLOW ||
		r.GetLogSequence() != 1 || r.GetSequence() != 9 || r.GetLatency().AsDuration() != time.Millisecond || !r.GetTime().AsTime().Equal(t0) ||
		!cmp.Equal(r.GetReasons(), []string{pdp.ReasonGranted}) {
		t.Fatalf("first record = %v", r)
	}
}

func TestListReportsSampledOut(t *testing.T) {
	e := start(t, 0.5)
	for i := range 10 {
		e.record(i, "w1", true)
	}
	e.record(10, "w1", false)
	e.waitWritten(t, 6)
	resp, err := e.client.ListDecisions(context.Background(), &treatyv1.ListDecisionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetDecisions()) != 6 || resp.GetSampledOut() != 5 {
		t.Fatalf("%d decisions, sampled_out %d; want 6 and 5", len(resp.GetDecisions()), resp.GetSampledOut())
	}
}

func TestTailDecisions(t *testing.T) {
	e := start(t, 0)
	for i := range 3 {
		e.record(i, "w1", false)
	}
	e.waitWritten(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := e.client.TailDecisions(ctx, &treatyv1.TailDecisionsRequest{Backlog: 1})
	if err != nil {
		t.Fatal(err)
	}
	recv := func() string {
		t.Helper()
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return m.GetDecision().GetRequestId()
	}
	if got := recv(); got != "req-2" {
		t.Fatalf("backlog = %s, want req-2", got)
	}
	// The tail is registered once the backlog arrived: what is logged now reaches it live.
	e.record(3, "w2", true)
	e.record(4, "w1", false)
	if got := []string{recv(), recv()}; !cmp.Equal(got, []string{"req-3", "req-4"}) {
		t.Fatalf("live records = %v, want req-3, req-4", got)
	}

	e.svc.Close() // shutdown ends the tail rather than hang a graceful stop
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("after Close: %v, want UNAVAILABLE", err)
	}
}

func TestTailEndsWhenTheLogCloses(t *testing.T) {
	e := start(t, 0)
	e.record(0, "w1", false)
	e.waitWritten(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := e.client.TailDecisions(ctx, &treatyv1.TailDecisionsRequest{Backlog: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // the backlog: the tail is registered
		t.Fatal(err)
	}
	e.log.Close()
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("after the log closed: %v, want UNAVAILABLE", err)
	}
}

func TestBadInput(t *testing.T) {
	e := start(t, 0)
	ctx := context.Background()
	for i := range 2 {
		e.record(i, "w1", false)
	}
	e.waitWritten(t, 2)
	paged, err := e.client.ListDecisions(ctx, &treatyv1.ListDecisionsRequest{Subject: "w1", PageSize: 1})
	if err != nil || paged.GetNextPageToken() == "" {
		t.Fatalf("want a next page: %v %v", paged, err)
	}
	list := func(req *treatyv1.ListDecisionsRequest) func() error {
		return func() error { _, err := e.client.ListDecisions(ctx, req); return err }
	}
	tail := func(req *treatyv1.TailDecisionsRequest) func() error {
		return func() error {
			stream, err := e.client.TailDecisions(ctx, req)
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}
	}
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"negative page size", list(&treatyv1.ListDecisionsRequest{PageSize: -1}), codes.InvalidArgument, "page_size"},
		{"end before start", list(&treatyv1.ListDecisionsRequest{StartTime: at(5), EndTime: at(1)}), codes.InvalidArgument, "end_time"},
		{"bad start time", list(&treatyv1.ListDecisionsRequest{StartTime: &timestamppb.Timestamp{Nanos: -1}}), codes.InvalidArgument, "start_time"},
		{"bad end time", list(&treatyv1.ListDecisionsRequest{EndTime: &timestamppb.Timestamp{Seconds: 1 << 62}}), codes.InvalidArgument, "end_time"},
		{"bad subject", list(&treatyv1.ListDecisionsRequest{Subject: "Not An Id"}), codes.InvalidArgument, "subject"},
		{"garbage page token", list(&treatyv1.ListDecisionsRequest{PageToken: "%%%"}), codes.InvalidArgument, "page_token"},
		{"page token of another filter", list(&treatyv1.ListDecisionsRequest{Subject: "w2", PageToken: paged.GetNextPageToken()}), codes.InvalidArgument, "page_token"},
		{"negative backlog", tail(&treatyv1.TailDecisionsRequest{Backlog: -1}), codes.InvalidArgument, "backlog"},
		{"backlog too large", tail(&treatyv1.TailDecisionsRequest{Backlog: decisionlog.MaxBacklog + 1}), codes.InvalidArgument, "backlog"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			st := status.Convert(err)
			if st.Code() != tt.code {
				t.Fatalf("code = %s (%v), want %s", st.Code(), err, tt.code)
			}
			if field := violatedField(st); field != tt.field {
				t.Fatalf("field = %q, want %q (%v)", field, tt.field, err)
			}
		})
	}
}

func violatedField(st *status.Status) string {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

// testDecisionID is the decision id of test decision n.
func testDecisionID(n int) pdp.DecisionID {
	var id pdp.DecisionID
	binary.BigEndian.PutUint64(id[8:], uint64(n))
	return id
}
