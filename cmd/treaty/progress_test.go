package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// Progress on a pipe (a CI log) or a buffer is plain lines; the bar is for terminals only.
func TestProgressOffTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) || isTerminal(&bytes.Buffer{}) {
		t.Fatal("a pipe or a buffer taken for a terminal")
	}
	for _, tt := range []struct {
		name string
		run  func(p *progress)
		want string
	}{
		{"done", func(p *progress) {
			for range 1000 {
				p.add(5)
			}
			p.finish()
			p.finish()
		}, "treaty: importing: 5000 to do\ntreaty: importing: 5000/5000 done\n"},
		{"stopped", func(p *progress) { p.add(250); p.stop(); p.finish() }, "treaty: importing: 5000 to do\ntreaty: importing: stopped at 250/5000\n"},
		{"growing total", func(p *progress) { p.set(6000, 6000); p.finish() }, "treaty: importing: 5000 to do\ntreaty: importing: 6000/6000 done\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c := &cli{stderr: &stderr}
			tt.run(c.newProgress(5000, "importing"))
			if got := stderr.String(); got != tt.want || strings.ContainsRune(got, '\r') {
				t.Errorf("stderr = %q, want %q", got, tt.want)
			}
		})
	}
}
