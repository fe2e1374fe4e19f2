// Package logtest collects what a component logs, for tests that read the logs while the
// component's goroutines still write them (to check that no secret is logged, or that a warning
// was).
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer for a slog handler that tests may read at any time.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
