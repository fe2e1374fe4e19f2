package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/decisionlog"
	"github.com/treaty-dev/treaty/internal/logtest"
	"github.com/treaty-dev/treaty/pdp"
	"github.com/treaty-dev/treaty/services/decisionlogsvc"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/store/storetest"
)

// decisionServer serves a real decision log on loopback and returns it, its service and its address.
func decisionServer(t *testing.T) (*decisionlog.Log, *decisionlogsvc.Service, string) {
	t.Helper()
	l, err := decisionlog.Open(decisionlog.Config{Store: storetest.OpenBolt(t, decisionlog.Schema)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	svc := decisionlogsvc.New(decisionlogsvc.Config{Log: l})
	t.Cleanup(svc.Close)
	conn := grpctest.Serve(t, svc.Register)
	return l, svc, conn.Target()
}

func logDecision(l *decisionlog.Log, n int, subject string, allow bool) {
	reasons := []string{pdp.ReasonRevoked}
	if allow {
		reasons = []string{pdp.ReasonGranted}
	}
	l.Record(pdp.CheckRequest{Action: "orders:read", Resource: "https://api.test", RequestID: fmt.Sprintf("req-%d", n)},
		pdp.Decision{Allow: allow, Reasons: reasons, DecisionID: testDecisionID(n), Subject: subject, Partner: "acme"}, time.Millisecond)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDecisionsList(t *testing.T) {
	l, _, addr := decisionServer(t)
	for i := range 5 {
		logDecision(l, i, []string{"w1", "w2"}[i%2], i%2 == 0)
	}
	waitFor(t, "five decisions written", func() bool { return l.Stats().Written == 5 })

	tests := []struct {
		name string
		args []string
		want []string // request ids, in order
	}{
		{"all", nil, []string{"req-0", "req-1", "req-2", "req-3", "req-4"}},
		{"subject", []string{"--subject", "w2"}, []string{"req-1", "req-3"}},
		{"limit", []string{"--limit", "2"}, []string{"req-0", "req-1"}},
		{"since a duration ago", []string{"--since", "1h"}, []string{"req-0", "req-1", "req-2", "req-3", "req-4"}},
		{"until a date long past", []string{"--until", "2001-01-01"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(append([]string{"--pdp", addr, "decisions", "list", "-o", "json"}, tt.args...)...)
			if code != exitOK || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if line == "" {
					continue
				}
				var rec struct {
					RequestID string `json:"request_id"`
					Decision  string `json:"decision"`
				}
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("line %q is not JSON: %v", line, err)
				}
				got = append(got, rec.RequestID)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("request ids %v, want %v", got, tt.want)
			}
		})
	}

	code, out, _ := runCLI("--pdp", addr, "decisions", "list", "--subject", "w1", "--limit", "1")
	if code != exitOK || !strings.Contains(out, "\tallow\tw1\torders:read\thttps://api.test\tgranted\tpartner=acme") || strings.Count(out, "\n") != 1 {
		t.Fatalf("text output (exit %d):\n%s", code, out)
	}
}

func TestDecisionsUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"decisions", "list", "--since", "yesterday"},
		{"decisions", "list", "--until", "-5m"},
		{"decisions", "list", "--since", "2026-03-02", "--until", "2026-03-01"},
		{"decisions", "list", "--subject", "Not An Id"},
		{"decisions", "list", "--limit", "-1"},
		{"decisions", "tail", "--backlog", "1001"},
		{"decisions", "tail", "extra"},
	} {
		code, out, errOut := runCLI(args...)
		if code != exitUsage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "treaty: ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one stderr line", args, code, out, errOut)
		}
	}
}

func TestDecisionsTail(t *testing.T) {
	l, svc, addr := decisionServer(t)
	logDecision(l, 0, "w1", false)
	waitFor(t, "the first decision written", func() bool { return l.Stats().Written == 1 })
	var out, errOut logtest.Buffer
	exited := make(chan int)
	go func() {
		exited <- run([]string{"--pdp", addr, "decisions", "tail", "--backlog", "1"}, strings.NewReader(""), &out, &errOut)
	}()
	waitFor(t, "the backlog line", func() bool { return strings.Contains(out.String(), "request=req-0") })
	logDecision(l, 1, "w2", true)
	waitFor(t, "the live line", func() bool { return strings.Contains(out.String(), "request=req-1") })
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 ||
		!strings.Contains(lines[0], "\tdeny\tw1\t") || !strings.Contains(lines[1], "\tallow\tw2\t") {
		t.Fatalf("tail output:\n%s", out.String())
	}
	svc.Close() // the server going away ends the tail with one line on stderr
	select {
	case code := <-exited:
		if code != exitError || strings.Count(errOut.String(), "\n") != 1 || !strings.Contains(errOut.String(), "(UNAVAILABLE)") {
			t.Fatalf("exit %d, stderr %q; want 1 and one UNAVAILABLE line", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not end when the server closed it")
	}
}

// testDecisionID is the decision id of test decision n.
func testDecisionID(n int) pdp.DecisionID {
	var id pdp.DecisionID
	binary.BigEndian.PutUint64(id[8:], uint64(n))
	return id
}
