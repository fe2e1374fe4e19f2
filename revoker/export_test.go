package revoker

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
