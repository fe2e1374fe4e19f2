// Package e2e drives the real treaty binary: servers started as processes on free loopback ports
// with temp data folders, and the CLI run exactly as an operator would run it.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/treaty-dev/treaty/access"
	"github.com/treaty-dev/treaty/services/authn"
)

// The treaty binary under test is built once, on first use, with buildFlags.
var (
	buildFlags []string
	buildDir   string
	buildOnce  sync.Once
	binary     string
	buildErr   error
)

func TestMain(m *testing.M) {
	var err error
	if buildDir, err = os.MkdirTemp("", "treaty-e2e"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(buildDir)
	os.Exit(code)
}

// treatyBinary builds the binary the first time a test needs it. It first reads every source file
// of the module from inside the test, so that go test's result cache, which sees only what the
// test process itself reads, reruns these tests whenever the code they exercise changes.
func treatyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildErr = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != ".." {
				return filepath.SkipDir
			}
			if name := d.Name(); strings.HasSuffix(name, ".go") || name == "go.mod" || name == "go.sum" {
				_, err = os.ReadFile(path)
			}
			return err
		})
		if buildErr != nil {
			return
		}
		binary = filepath.Join(buildDir, "treaty")
		build := exec.Command("go", append(append([]string{"build"}, buildFlags...), "-o", binary, "../cmd/treaty")...)
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// credentials holds, per top-level test, the file with the admin token every server of that test
// adopts at its first start (see access.Bootstrap), so that one CLI credential reaches every
// process of a split deployment and each process reaches its peers with it.
var credentials sync.Map // test name -> path

// credentialFile returns the test's admin credential file, creating it on first use.
func credentialFile(t *testing.T) string {
	t.Helper()
	name, _, _ := strings.Cut(t.Name(), "/")
	if path, ok := credentials.Load(name); ok {
		return path.(string)
	}
	tok, err := access.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(buildDir, "credential")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin.credential")
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	actual, _ := credentials.LoadOrStore(name, path)
	return actual.(string)
}

// provision places the test's admin credential in the data folder args name, before the first
// start, and has a server with peers present it to them.
func provision(t *testing.T, args []string) []string {
	t.Helper()
	cred := credentialFile(t)
	for i, a := range args {
		if a == "--data" && i+1 < len(args) {
			data := args[i+1]
			if err := os.MkdirAll(data, 0o700); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(data, "admin.credential")
			if _, err := os.Stat(dst); errors.Is(err, fs.ErrNotExist) {
				raw, err := os.ReadFile(cred)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dst, raw, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, a := range args {
		switch a {
		case "--registry", "--issuer", "--pdp", "--revoker":
			return append(slices.Clip(args), "--peer-credential-file", cred)
		}
	}
	return args
}

// withCredential adds the test's admin credential to a CLI environment that names none.
func withCredential(t *testing.T, env []string) []string {
	t.Helper()
	for _, e := range env {
		if strings.HasPrefix(e, "TREATY_CREDENTIAL_FILE=") {
			return env
		}
	}
	return append(slices.Clip(env), "TREATY_CREDENTIAL_FILE="+credentialFile(t))
}

// dial returns a gRPC connection to addr authenticated as the test's admin, closed when the test
// ends.
func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	creds, err := authn.TokenFile(credentialFile(t))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// bearer returns the Authorization header value of the test's admin token, for the HTTP APIs.
func bearer(t *testing.T) string {
	t.Helper()
	tok, err := access.ReadTokenFile(credentialFile(t))
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

// server is one `treaty serve` process.
type server struct {
	t    *testing.T
	env  []string // added to the environment
	args []string
	addr string
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan error
}

// startServer runs `treaty serve --listen addr args...` and waits until its health check reports
// SERVING (for a PDP, that means caught up with the feed).
func startServer(t *testing.T, addr string, args ...string) *server {
	t.Helper()
	return startServerEnv(t, nil, addr, args...)
}

// startServerEnv is startServer with variables added to the server's environment.
func startServerEnv(t *testing.T, env []string, addr string, args ...string) *server {
	t.Helper()
	s := &server{t: t, env: env, addr: addr, args: provision(t, args)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	s.logs = new(bytes.Buffer)
	s.cmd = exec.Command(treatyBinary(s.t), append([]string{"serve", "--listen", s.addr, "--log-level", "warn"}, s.args...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	s.cmd.Env = append(os.Environ(), s.env...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	waitServing(s.t, s.addr, s.done, s.logs)
}

// stop ends the process with SIGTERM, as an init system would, and waits for a clean exit.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("treaty serve on %s exited with %v after SIGTERM; logs:\n%s", s.addr, err, s.logs)
		}
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		s.t.Errorf("treaty serve on %s ignored SIGTERM", s.addr)
	}
	s.cmd = nil
}

func (s *server) restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

func waitServing(t *testing.T, addr string, exited <-chan error, logs *bytes.Buffer) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("treaty serve on %s exited before it was ready: %v; logs:\n%s", addr, err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("treaty serve on %s not ready after 30s (last: %v, %v); logs:\n%s", addr, resp.GetStatus(), err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// result is what one CLI run produced.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// treaty runs the CLI with env (KEY=VALUE entries) and returns what it printed and its exit
// status.
func treaty(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(treatyBinary(t), args...)
	cmd.Env = append(os.Environ(), withCredential(t, env)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run treaty %v: %v", args, err)
	}
	return r
}

// watch runs `treaty watch -o json args...` and returns the first n events it prints, failing
// after a generous wait. If during is set, it runs once the watch is connected (its first line is
// awaited only after during returns).
func watch(t *testing.T, env []string, n int, args ...string) []map[string]any {
	t.Helper()
	return watchDuring(t, env, n, nil, args...)
}

func watchDuring(t *testing.T, env []string, n int, during func(), args ...string) []map[string]any {
	t.Helper()
	cmd := exec.Command(treatyBinary(t), append([]string{"watch", "-o", "json"}, args...)...)
	cmd.Env = append(os.Environ(), withCredential(t, env)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// watch says on stderr when its subscription is live; only then may the caller act.
	connected := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var all []string
		for sc.Scan() {
			all = append(all, sc.Text())
			if strings.Contains(sc.Text(), "watching") {
				connected <- ""
			}
		}
		connected <- strings.Join(all, "\n")
	}()
	lines := make(chan map[string]any)
	go func() {
		dec := json.NewDecoder(stdout)
		for {
			var ev map[string]any
			if err := dec.Decode(&ev); err != nil {
				close(lines)
				return
			}
			lines <- ev
		}
	}()
	timeout := time.After(20 * time.Second)
	select {
	case msg := <-connected:
		if msg != "" {
			t.Fatalf("treaty watch failed: %s", msg)
		}
	case <-timeout:
		t.Fatal("treaty watch did not connect")
	}
	if during != nil {
		during()
	}
	var events []map[string]any
	for len(events) < n {
		select {
		case ev, ok := <-lines:
			if !ok {
				t.Fatalf("treaty watch ended after %d events", len(events))
			}
			events = append(events, ev)
		case <-timeout:
			t.Fatalf("treaty watch printed %d events, want %d", len(events), n)
		}
	}
	return events
}
