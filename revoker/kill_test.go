package revoker_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// killChildEnv names the log file the child process of TestKillNineKeepsAcknowledgedRevocations
// revokes into; TestKillNineChild runs only when it is set.
const killChildEnv = "TREATY_REVOKER_KILL_CHILD"

// TestKillNineKeepsAcknowledgedRevocations runs a revoker log in a child process with 64 callers
// revoking distinct credentials, kills it with SIGKILL mid-flight, reopens the file and checks
// that every revocation the child acknowledged is there with its sequence, that the sequences run
// from 1 to the head without a gap, and that the file passes bbolt's consistency check.
func TestKillNineKeepsAcknowledgedRevocations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revoker.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillNineChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]uint64{}
	lines := bufio.NewScanner(out)
	killed := false
	kill := func() {
		if !killed {
			killed = true
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Errorf("kill child: %v", err)
			}
		}
	}
	timer := time.AfterFunc(3*time.Second, kill)
	defer timer.Stop()
	// Every line read after the kill was acknowledged before it: the child writes a line only
	// after its revocation returned.
	for lines.Scan() {
		jti, seq, ok := strings.Cut(lines.Text(), " ")
		if !ok || !strings.HasPrefix(jti, "jti-") {
			continue // the test framework's own output
		}
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			t.Fatalf("child wrote %q", lines.Text())
		}
		acked[jti] = n
		if len(acked) == 2000 {
			timer.Stop()
			kill()
		}
	}
	if err := cmd.Wait(); err == nil || !killed {
		t.Fatalf("child ended by itself (%v) before it was killed", err)
	}
	if len(acked) == 0 {
		t.Fatal("the child acknowledged no revocation before it was killed")
	}

	st := storetest.OpenBoltAt(t, path, revoker.Schema)
	if err := st.Check(); err != nil {
		t.Fatalf("consistency check after kill -9: %v", err)
	}
	l, err := revoker.Open(st, revoker.Config{})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	head := l.Head()
	evs, err := l.Read(0, int(head)+1)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(evs)) != head {
		t.Fatalf("read %d events, head is %d", len(evs), head)
	}
	bySeq := map[uint64]string{}
	for i, ev := range evs {
		if ev.GetSequence() != uint64(i)+1 {
			t.Fatalf("event %d has sequence %d: a gap", i+1, ev.GetSequence())
		}
		bySeq[ev.GetSequence()] = ev.GetCredentialRevoked().GetJti()
	}
	for jti, seq := range acked {
		if bySeq[seq] != jti {
			t.Errorf("acknowledged %s at %d, the log has %q there", jti, seq, bySeq[seq])
		}
		if r, ok := l.State().RevokedCredential(jti); !ok || r.Sequence != seq {
			t.Errorf("acknowledged %s at %d is not in the state (%+v)", jti, seq, r)
		}
	}
	t.Logf("%d revocations acknowledged before the kill, %d in the log after it", len(acked), head)
}

// TestKillNineChild is the child process of TestKillNineKeepsAcknowledgedRevocations: 64 callers
// revoke distinct credentials until the process is killed, printing "jti sequence" for each
// acknowledged one.
func TestKillNineChild(t *testing.T) {
	path := os.Getenv(killChildEnv)
	if path == "" {
		t.Skip("runs only as the child of TestKillNineKeepsAcknowledgedRevocations")
	}
	st, err := store.OpenBolt(path, revoker.Schema)
	if err != nil {
		t.Fatal(err)
	}
	l, err := revoker.Open(st, revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for c := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100_000; i++ {
				jti := fmt.Sprintf("jti-%d-%d", c, i)
				out, err := l.Revoke(context.Background(), revoker.Request{Kind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, Target: jti, Reason: "kill -9 test"})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				// os.Stdout is unbuffered: the line is in the pipe when Fprintf returns.
				fmt.Fprintf(os.Stdout, "%s %d\n", jti, out.Sequence)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
