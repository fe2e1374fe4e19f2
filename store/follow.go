package store

import (
	"context"
	"log/slog"
	"time"
)

// Follow keeps a process's in-memory copy of a shared bucket current: it calls read whenever w
// says bucket changed (another process wrote it; the watch also notifies when it starts and when
// it resumes after a failure, so nothing written meanwhile is missed), every `every` in case a
// notification is lost without the watch failing, and again after retry when read failed (the
// store unreachable). It logs once when read starts failing, naming what, and once when it
// succeeds again. It returns when ctx ends or the store is closed.
func Follow(ctx context.Context, w Watcher, bucket string, every, retry time.Duration, read func() error, log *slog.Logger, what string) {
	changed := w.Watch(ctx, bucket)
	tick := time.NewTicker(every)
	defer tick.Stop()
	again := time.NewTimer(retry)
	again.Stop()
	defer again.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changed:
			if !ok {
				return // ctx ended, or the store was closed
			}
		case <-tick.C:
		case <-again.C:
		}
		err := read()
		switch {
		case err != nil && ctx.Err() == nil:
			again.Reset(retry)
			if !failing {
				failing = true
				log.Warn("cannot follow "+what+" in the shared store; retrying", "err", err, "retry_in", retry)
			}
		case err == nil && failing:
			failing = false
			log.Info("following " + what + " in the shared store again")
		}
	}
}
