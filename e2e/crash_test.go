package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
)

// kill ends the process with SIGKILL: no shutdown code runs.
func (s *server) kill() {
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// follow subscribes after a sequence and sends each event's sequence and target to out until the
// stream ends; it returns the last sequence received.
func follow(ctx context.Context, client treatyv1.RevocationServiceClient, after uint64, out func(seq uint64, jti string)) uint64 {
	stream, err := client.Subscribe(ctx, &treatyv1.SubscribeRequest{AfterSequence: after})
	if err != nil {
		return after
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return after
		}
		if ev := msg.GetEvent(); ev != nil {
			after = ev.GetSequence()
			out(after, ev.GetCredentialRevoked().GetJti())
		}
	}
}

// TestKillNineWhileRevoking kills the server with SIGKILL while 64 callers revoke and a subscriber
// follows, restarts it, and checks that every acknowledged revocation is there at the sequence it
// was acknowledged with, that the sequences have no gaps, that the store passes bbolt's
// consistency check, and that the subscriber resumes with every event exactly once.
func TestKillNineWhileRevoking(t *testing.T) {
	t.Parallel()
	addr, data := freeAddr(t), t.TempDir()
	srv := startServer(t, addr, "--data", data, "--services", "revoker")
	conn := dial(t, addr)
	client := treatyv1.NewRevocationServiceClient(conn)

	// The subscriber: every event it receives, across both streams, with a count per sequence.
	var mu sync.Mutex
	seen := map[uint64]int{}
	record := func(seq uint64, _ string) { mu.Lock(); seen[seq]++; mu.Unlock() }
	subCtx, subCancel := context.WithCancel(context.Background())
	subDone := make(chan uint64)
	go func() { subDone <- follow(subCtx, client, 0, record) }()

	// 64 callers revoke distinct credentials until the server dies.
	acked := map[string]uint64{}
	var ackMu sync.Mutex
	var wg sync.WaitGroup
	for c := 0; c < 64; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				jti := fmt.Sprintf("crash-%02d-%05d", c, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := client.Revoke(ctx, &treatyv1.RevokeRequest{
					TargetKind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, TargetId: jti, Reason: "crash test", Actor: "e2e",
				})
				cancel()
				if err != nil {
					return // the server is gone
				}
				ackMu.Lock()
				acked[jti] = resp.GetSequence()
				ackMu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	srv.kill()
	wg.Wait()
	last := <-subDone
	if len(acked) < 100 {
		t.Fatalf("only %d revocations were acknowledged before the kill; the test proves little", len(acked))
	}

	// The store survived: bbolt's consistency check on the file, with the server down.
	st, err := store.OpenBolt(filepath.Join(data, "revoker.db"), revoker.Schema)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Check(); err != nil {
		t.Fatalf("revoker.db after SIGKILL: %v", err)
	}
	st.Close()

	srv.start()
	// The subscriber resumes after the last sequence it saw.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var head uint64
	stream, err := client.Subscribe(ctx, &treatyv1.SubscribeRequest{AfterSequence: last})
	if err != nil {
		t.Fatal(err)
	}
	byJTI := map[string]uint64{}
	for {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("resumed subscription: %v", err)
		}
		if hb := msg.GetHeartbeat(); hb != nil && head == 0 {
			head = hb.GetHeadSequence()
		}
		if ev := msg.GetEvent(); ev != nil {
			record(ev.GetSequence(), "")
		}
		mu.Lock()
		done := head > 0 && uint64(len(seen)) >= head
		mu.Unlock()
		if done {
			break
		}
	}
	subCancel()

	// Every sequence 1..head exactly once across the two streams, nothing beyond the head.
	for seq := uint64(1); seq <= head; seq++ {
		if seen[seq] != 1 {
			t.Fatalf("the subscriber received sequence %d %d times across the two streams (head %d)", seq, seen[seq], head)
		}
	}
	if uint64(len(seen)) != head {
		t.Fatalf("the subscriber received %d distinct sequences, the head is %d", len(seen), head)
	}
	// Every acknowledged revocation is in the log at its acknowledged sequence.
	full, err := client.Subscribe(ctx, &treatyv1.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for uint64(len(byJTI)) < head {
		msg, err := full.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev := msg.GetEvent(); ev != nil {
			byJTI[ev.GetCredentialRevoked().GetJti()] = ev.GetSequence()
		}
	}
	for jti, seq := range acked {
		if byJTI[jti] != seq {
			t.Fatalf("acknowledged revocation of %s at %d is at %d after the restart", jti, seq, byJTI[jti])
		}
	}
	t.Logf("%d revocations acknowledged before SIGKILL, head %d after the restart", len(acked), head)
}
