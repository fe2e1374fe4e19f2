package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows how far a long operation (an import, an offboarding step) has got, on stderr:
// a bar redrawn in place on a terminal; anywhere else (a CI log, a pipe, a file) carriage-return
// redraws would pile up as noise, so it writes one plain line when the operation starts and one
// when it ends.
type progress struct {
	w           io.Writer
	what        string
	bar         *progressbar.ProgressBar // nil off a terminal
	done, total int64
	ended       bool
}

// isTerminal reports whether w is a terminal: a character device (so /dev/null counts too, where
// a bar costs nothing). Pipes, files and buffers are not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newProgress starts showing the progress of total steps of what.
func (c *cli) newProgress(total int64, what string) *progress {
	p := &progress{w: c.stderr, what: what, total: total}
	if !isTerminal(c.stderr) {
		fmt.Fprintf(p.w, "treaty: %s: %d to do\n", what, total)
		return p
	}
	p.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(c.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(c.stderr) }),
	)
	return p
}

// add counts n more steps done.
func (p *progress) add(n int) {
	p.set(p.done+int64(n), max(p.total, p.done+int64(n)))
}

// set records done steps of total (the total may grow as the operation learns it).
func (p *progress) set(done, total int64) {
	p.done, p.total = done, total
	if p.bar != nil {
		p.bar.ChangeMax64(max(total, 1))
		_ = p.bar.Set64(done)
	}
}

// finish ends the display with the operation done.
func (p *progress) finish() {
	if p.ended {
		return
	}
	p.ended = true
	if p.bar != nil {
		_ = p.bar.Finish()
		return
	}
	fmt.Fprintf(p.w, "treaty: %s: %d/%d done\n", p.what, p.done, p.total)
}

// stop ends the display with the operation cut short (an error follows on stderr).
func (p *progress) stop() {
	if p.ended {
		return
	}
	p.ended = true
	if p.bar != nil {
		_ = p.bar.Exit()
		fmt.Fprintln(p.w)
		return
	}
	fmt.Fprintf(p.w, "treaty: %s: stopped at %d/%d\n", p.what, p.done, p.total)
}
