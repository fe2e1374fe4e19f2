package reportsvc

import (
	"context"

	"google.golang.org/grpc"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/edge"
)

// Revocations is what the compliance report shows of the kill switch.
type Revocations struct {
	// RevokedCredentials counts the credentials on the denylist now.
	RevokedCredentials uint64
	// Blocks counts the partner, integration and workload blocks in force.
	Blocks uint64
	// Sequence is the feed's head.
	Sequence uint64
}

// RevocationsFromRevoker returns a Config.Revocations that reads the revoker's materialized state
// over conn (RevocationService.Snapshot) and counts its revocations and blocks.
func RevocationsFromRevoker(conn grpc.ClientConnInterface) func(context.Context) (Revocations, error) {
	client := treatyv1.NewRevocationServiceClient(conn)
	return func(ctx context.Context) (Revocations, error) {
		resp, err := client.Snapshot(ctx, &treatyv1.SnapshotRequest{}, grpc.MaxCallRecvMsgSize(256<<20))
		if err != nil {
			return Revocations{}, edge.FromStatus(err)
		}
		st := resp.GetState()
		out := Revocations{RevokedCredentials: uint64(len(st.GetRevokedCredentials())), Sequence: st.GetSequence()}
		for _, p := range st.GetPartners() {
			if p.GetBlock() != nil {
				out.Blocks++
			}
		}
		for _, i := range st.GetIntegrations() {
			if i.GetBlock() != nil {
				out.Blocks++
			}
		}
		for _, w := range st.GetWorkloads() {
			if w.GetBlock() != nil {
				out.Blocks++
			}
		}
		return out, nil
	}
}
