package revoker

import (
	"context"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// HoldCommits blocks every commit until release is called, so a test can queue requests into one
// batch behind a leader.
func HoldCommits(l *Log) (release func()) {
	l.mu.Lock()
	return l.mu.Unlock
}

// Queue reports how many requests wait for the group commit, and whether a caller leads it.
func Queue(l *Log) (queued int, leading bool) {
	l.queueMu.Lock()
	defer l.queueMu.Unlock()
	return len(l.queue), l.leading
}

// CommitPanicking appends a draft whose build panics.
func CommitPanicking(l *Log) ([]result, error) {
	return l.append(context.Background(), []draft{{build: func(*feed.State) (*treatyv1.Event, error) { panic("bug") }}})
}

// Batches returns how many batches the log committed.
func Batches(l *Log) uint64 { return l.batches.Load() }
