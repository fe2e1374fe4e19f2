package decisionlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/treaty-dev/treaty/decisionlog"
)

// next reads n entries from a tail and returns their request ids.
func next(t *testing.T, tail *decisionlog.Tail, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	for range n {
		e, err := tail.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %v: %v", got, err)
		}
		got = append(got, e.RequestID)
	}
	return got
}

func TestTailSendsTheBacklogThenLiveEntries(t *testing.T) {
	l := open(t, decisionlog.Config{})
	for i := range 5 {
		record(l, i, "w1", false)
	}
	eventually(t, "the first five are written", written(l, 5))
	tail, err := l.Tail(2)
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close()
	for i := 5; i < 8; i++ {
		record(l, i, "w2", i%2 == 0)
	}
	if diff := cmp.Diff(reqs(3, 4, 5, 6, 7), next(t, tail, 5)); diff != "" {
		t.Fatalf("tail (-want +got):\n%s", diff)
	}

	// Without a backlog, only what is written from now on.
	live, err := l.Tail(0)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	record(l, 8, "w1", false)
	if diff := cmp.Diff(reqs(8), next(t, live, 1)); diff != "" {
		t.Fatalf("live tail (-want +got):\n%s", diff)
	}
}

func TestTailThatFallsBehindIsCutOff(t *testing.T) {
	l := open(t, decisionlog.Config{TailBuffer: 2})
	slow, err := l.Tail(0)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	keen, err := l.Tail(0)
	if err != nil {
		t.Fatal(err)
	}
	defer keen.Close()
	var got []string
	for i := range 5 {
		record(l, i, "w1", false)
		got = append(got, next(t, keen, 1)...)
	}
	// The keen reader saw everything: the slow one did not hold the log back.
	if diff := cmp.Diff(reqs(0, 1, 2, 3, 4), got); diff != "" {
		t.Fatalf("keen tail (-want +got):\n%s", diff)
	}
	ctx := context.Background()
	var err2 error
	for range 3 { // what fitted in its buffer, then the error
		if _, err2 = slow.Next(ctx); err2 != nil {
			break
		}
	}
	if !errors.Is(err2, decisionlog.ErrTooSlow) {
		t.Fatalf("slow tail ended with %v, want ErrTooSlow", err2)
	}
}

func TestCloseEndsTails(t *testing.T) {
	l := open(t, decisionlog.Config{})
	tail, err := l.Tail(10)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { _, err := tail.Next(context.Background()); done <- err }()
	l.Close()
	if err := <-done; !errors.Is(err, decisionlog.ErrClosed) {
		t.Fatalf("Next after Close = %v, want ErrClosed", err)
	}
	if _, err := l.Tail(0); !errors.Is(err, decisionlog.ErrClosed) {
		t.Fatalf("Tail after Close = %v, want ErrClosed", err)
	}
	tail.Close() // harmless after the log closed
}
