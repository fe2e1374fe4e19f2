package pdp

import (
	"context"

	"github.com/treaty-dev/treaty/feed"
)

// StateAt returns the enforcement state decisions are made on, once it has applied minSeq (zero:
// now), waiting as a Check does and failing with an Unavailable error as a Check does. Adapters
// that answer from the state itself (AuthZEN's search APIs) read it here; the state is immutable,
// so they may keep using it while the PDP swaps in newer ones. It says nothing of readiness: check
// Status before trusting it.
func (p *PDP) StateAt(ctx context.Context, minSeq uint64) (*feed.State, error) {
	return p.stateAt(ctx, minSeq)
}
