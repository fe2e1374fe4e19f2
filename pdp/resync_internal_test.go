package pdp

import (
	"testing"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// TestResyncKeepsTheGlobalWatermarkOfTheSameEpoch: a log restored from an older backup (same
// epoch) must not bring back credentials a lost break-glass revoked; a new epoch's log starts its
// own sequence space, where the old watermark means nothing.
func TestResyncKeepsTheGlobalWatermarkOfTheSameEpoch(t *testing.T) {
	state := func(epoch string, seq, global uint64) *feed.State {
		return feed.FromProto(&treatyv1.EnforcementState{Epoch: epoch, Sequence: seq, GlobalWatermark: global})
	}
	for _, tc := range []struct {
		name      string
		old, snap *feed.State
		want      uint64
	}{
		{"same epoch, the backup missed the break-glass", state("e1", 50, 40), state("e1", 30, 0), 40},
		{"same epoch, the snapshot's is higher", state("e1", 50, 10), state("e1", 30, 20), 20},
		{"new epoch: the old sequence space is gone", state("e1", 50, 40), state("e2", 30, 5), 5},
	} {
		got, _ := keepRevocations(tc.old, tc.snap)
		if got.GlobalWatermark() != tc.want {
			t.Errorf("%s: watermark %d, want %d", tc.name, got.GlobalWatermark(), tc.want)
		}
	}
}
