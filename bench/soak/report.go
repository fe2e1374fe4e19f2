package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ops lists the operations in report order.
var ops = []string{"check", "issue", "revoke", "check-revoked"}

// stats collects each operation's latencies and failures.
type stats struct {
	mu        sync.Mutex
	latencies map[string][]time.Duration
	errors    map[string]int
	firstErr  map[string]error
}

func newStats() *stats {
	return &stats{latencies: map[string][]time.Duration{}, errors: map[string]int{}, firstErr: map[string]error{}}
}

func (s *stats) record(op string, d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errors[op]++
		if s.firstErr[op] == nil {
			s.firstErr[op] = err
		}
		return
	}
	s.latencies[op] = append(s.latencies[op], d)
}

// brief is a one-line progress summary.
func (s *stats) brief() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for _, op := range ops {
		parts = append(parts, fmt.Sprintf("%s %d (%d errors)", op, len(s.latencies[op]), s.errors[op]))
	}
	return strings.Join(parts, ", ")
}

// report prints the table and the memory comparison, and returns the number of failed calls.
func (s *stats) report(w io.Writer, elapsed time.Duration, start, end memory) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(w, "\n%-14s %9s %8s %9s %10s %10s %10s\n", "operation", "calls", "errors", "calls/s", "p50", "p99", "max")
	failed := 0
	for _, op := range ops {
		l := s.latencies[op]
		slices.Sort(l)
		var p50, p99, top time.Duration
		if n := len(l); n > 0 {
			p50, p99, top = l[n/2], l[n*99/100], l[n-1]
		}
		fmt.Fprintf(w, "%-14s %9d %8d %9.1f %10v %10v %10v\n", op, len(l)+s.errors[op], s.errors[op],
			float64(len(l)+s.errors[op])/elapsed.Seconds(), p50.Round(time.Microsecond), p99.Round(time.Microsecond), top.Round(time.Microsecond))
		failed += s.errors[op]
	}
	for _, op := range ops {
		if err := s.firstErr[op]; err != nil {
			fmt.Fprintf(w, "first %s error: %v\n", op, err)
		}
	}
	fmt.Fprintf(w, "\nmemory        %12s %12s %12s\n", "start", "end", "growth")
	if start.heap > 0 {
		fmt.Fprintf(w, "heap in use   %12s %12s %12s\n", mib(start.heap), mib(end.heap), growth(start.heap, end.heap))
	}
	if start.rss > 0 {
		fmt.Fprintf(w, "RSS           %12s %12s %12s\n", mib(start.rss), mib(end.rss), growth(start.rss, end.rss))
	}
	fmt.Fprintf(w, "goroutines    %12d %12d\n", start.goroutines, end.goroutines)
	if failed == 0 {
		fmt.Fprintf(w, "\nno errors in %v\n", elapsed.Round(time.Second))
	}
	return failed
}

// memory is one sample: the heap in use after a collection (this process, which holds the
// server too when it runs in-process), the resident set of pid, and this process's goroutines.
type memory struct {
	heap, rss  uint64
	goroutines int
}

func sampleMemory(pid int) memory {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memory{goroutines: runtime.NumGoroutine()}
	if pid == os.Getpid() {
		m.heap = ms.HeapInuse
	}
	m.rss = residentSet(pid)
	return m
}

// residentSet reads VmRSS of pid from /proc (Linux); 0 when it cannot.
func residentSet(pid int) uint64 {
	if pid == 0 {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func growth(a, b uint64) string {
	return fmt.Sprintf("%+.1f MiB", (float64(b)-float64(a))/(1<<20))
}
