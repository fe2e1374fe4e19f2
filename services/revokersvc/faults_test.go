package revokersvc_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// The revoker's disk fills while 32 callers revoke at once, so batches of the group commit fail
// mid-way, then heals. Every call is answered: acknowledged with a sequence, or UNAVAILABLE saying
// the disk is full. Snapshot reads go on throughout. Afterwards, reopened from the file: every
// acknowledged revocation is there at its sequence, no refused one is (nothing half-applied), the
// sequences have no gap, and the file passes bbolt's consistency check.
func TestRevokerDiskFullUnderGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revoker.db")
	bolt, err := store.OpenBolt(path, revoker.Schema)
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.Faulty(bolt)
	log, err := revoker.Open(st, revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	svc := revokersvc.New(revokersvc.Config{Log: log, Heartbeat: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	defer svc.Close()
	client := treatyv1.NewRevocationServiceClient(grpctest.Serve(t, svc.Register))

	var (
		mu      sync.Mutex
		acked   = map[string]uint64{}
		refused = map[string]bool{}
		wrong   []string
	)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for c := range 32 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				jti := fmt.Sprintf("jti-%02d-%05d", c, i)
				cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := client.Revoke(cctx, &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL,
					TargetId: jti, Reason: "fault test", Actor: "test"})
				cancel()
				mu.Lock()
				switch {
				case err == nil:
					acked[jti] = resp.GetSequence()
				case status.Code(err) == codes.Unavailable && strings.Contains(status.Convert(err).Message(), "no space left on device"):
					refused[jti] = true
				default:
					wrong = append(wrong, fmt.Sprintf("%s: %v", jti, err))
				}
				mu.Unlock()
			}
		})
	}
	count := func() (int, int) { mu.Lock(); defer mu.Unlock(); return len(acked), len(refused) }
	waitFor := func(what string, cond func(a, r int) bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if a, r := count(); cond(a, r) {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("not after 20s: %s (acked %d, refused %d)", what, a, r)
			}
		}
	}
	waitFor("200 revocations acknowledged", func(a, _ int) bool { return a >= 200 })
	st.FailWrites(nil)
	before, _ := count()
	waitFor("200 revocations refused", func(_, r int) bool { return r >= 200 })
	if snap, err := client.Snapshot(context.Background(), &treatyv1.SnapshotRequest{}); err != nil {
		t.Fatalf("Snapshot while the disk is full: %v", err)
	} else if head := snap.GetState().GetSequence(); head < uint64(before) {
		t.Fatalf("snapshot head %d while the disk is full, below the %d acknowledged before", head, before)
	}
	st.Heal()
	healed, _ := count()
	waitFor("200 more acknowledged after healing", func(a, _ int) bool { return a >= healed+200 })
	stop()
	wg.Wait()
	if len(wrong) > 0 {
		t.Fatalf("%d calls neither acknowledged nor UNAVAILABLE, e.g. %s", len(wrong), wrong[0])
	}
	head := log.Head()
	if err := bolt.Check(); err != nil {
		t.Fatalf("consistency check: %v", err)
	}
	bolt.Close()

	re, err := revoker.Open(storetest.OpenBoltAt(t, path, revoker.Schema), revoker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	state := re.State()
	if re.Head() != head || head != uint64(len(acked)) {
		t.Fatalf("reopened head %d, head before %d, %d acknowledged: want all equal (no gap, nothing refused appended)", re.Head(), head, len(acked))
	}
	for jti, seq := range acked {
		if rc, ok := state.RevokedCredential(jti); !ok || rc.Sequence != seq {
			t.Fatalf("acknowledged revocation of %s at %d: reopened log has %+v, %v", jti, seq, rc, ok)
		}
	}
	for jti := range refused {
		if _, ok := state.RevokedCredential(jti); ok {
			t.Fatalf("refused revocation of %s is in the log", jti)
		}
	}
	events, err := re.Read(0, int(head)+1)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range events {
		if ev.GetSequence() != uint64(i+1) {
			t.Fatalf("event %d has sequence %d: a gap", i, ev.GetSequence())
		}
	}
	t.Logf("%d acknowledged, %d refused while the disk was full, head %d", len(acked), len(refused), head)
}
