package decisionlog_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/decisionlog"
	"github.com/treaty-dev/treaty/fail"
)

// logOfTen writes ten decisions a minute apart, alternating subjects w1 (even) and w2 (odd),
// and returns the log and the time of the first.
func logOfTen(t *testing.T) (*decisionlog.Log, time.Time) {
	t.Helper()
	clk := newClock()
	t0 := clk.Now()
	l := open(t, decisionlog.Config{Now: clk.Now})
	for i := range 10 {
		record(l, i, []string{"w1", "w2"}[i%2], i%3 == 0)
		clk.Advance(time.Minute)
	}
	eventually(t, "all ten are written", written(l, 10))
	return l, t0
}

func TestListBySubjectAndTime(t *testing.T) {
	l, t0 := logOfTen(t)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	tests := []struct {
		name string
		q    decisionlog.Query
		want []string
	}{
		{"everything", decisionlog.Query{}, reqs(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{"one subject", decisionlog.Query{Subject: "w1"}, reqs(0, 2, 4, 6, 8)},
		{"unknown subject", decisionlog.Query{Subject: "w3"}, reqs()},
		{"a subject that prefixes another", decisionlog.Query{Subject: "w"}, reqs()},
		{"from a time, inclusive", decisionlog.Query{Start: at(7)}, reqs(7, 8, 9)},
		{"until a time, exclusive", decisionlog.Query{End: at(3)}, reqs(0, 1, 2)},
		{"a range", decisionlog.Query{Start: at(2), End: at(6)}, reqs(2, 3, 4, 5)},
		{"a subject in a range", decisionlog.Query{Subject: "w2", Start: at(2), End: at(8)}, reqs(3, 5, 7)},
		{"an empty range", decisionlog.Query{Start: at(4), End: at(4)}, reqs()},
		{"end before start", decisionlog.Query{Start: at(6), End: at(2)}, reqs()},
	}
	for _, tt := range tests {
		for _, size := range []int{0, 1, 3} {
			q := tt.q
			q.PageSize = size
			assertRequests(t, l, q, tt.want...)
		}
	}
}

func reqs(ns ...int) []string {
	out := []string{}
	for _, n := range ns {
		out = append(out, "req-"+strconv.Itoa(n))
	}
	return out
}

func TestListPages(t *testing.T) {
	l, _ := logOfTen(t)
	page, err := l.List(decisionlog.Query{Subject: "w1", PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 2 || page.NextPageToken == "" {
		t.Fatalf("first page: %d entries, token %q", len(page.Entries), page.NextPageToken)
	}
	page, err = l.List(decisionlog.Query{Subject: "w1", PageSize: 3, PageToken: page.NextPageToken})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Entries {
		got = append(got, e.RequestID)
	}
	if diff := cmp.Diff(reqs(4, 6, 8), got); diff != "" || page.NextPageToken != "" {
		t.Fatalf("last page (-want +got):\n%s token %q", diff, page.NextPageToken)
	}

	first, _ := l.List(decisionlog.Query{Subject: "w1", PageSize: 1})
	for name, q := range map[string]decisionlog.Query{
		"garbage":         {PageToken: "not-a-token!"},
		"another subject": {Subject: "w2", PageToken: first.NextPageToken},
		"another range":   {Subject: "w1", Start: time.Unix(1, 0), PageToken: first.NextPageToken},
	} {
		_, err := l.List(q)
		var fe *fail.Error
		if !errors.As(err, &fe) || fe.Kind != fail.Invalid || fe.Field != "page_token" {
			t.Errorf("%s: List error = %v, want Invalid on page_token", name, err)
		}
	}
}
