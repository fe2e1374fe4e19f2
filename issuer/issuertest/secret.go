package issuertest

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// CreateClientSecret creates a client secret for a workload that lives ttl (zero: the registry's
// default) and returns its id and the secret.
func (w *World) CreateClientSecret(workloadID string, ttl time.Duration) (id, secret string) {
	w.tb.Helper()
	req := &treatyv1.CreateClientSecretRequest{WorkloadId: workloadID, Actor: Actor}
	if ttl != 0 {
		req.Ttl = durationpb.New(ttl)
	}
	resp, err := w.Registry.CreateClientSecret(context.Background(), req)
	if err != nil {
		w.tb.Fatalf("CreateClientSecret %q: %v", workloadID, err)
	}
	return resp.GetClientSecret().GetId(), resp.GetSecret()
}

// RevokeClientSecret revokes a workload's client secret.
func (w *World) RevokeClientSecret(workloadID, secretID string) {
	w.tb.Helper()
	_, err := w.Registry.RevokeClientSecret(context.Background(), &treatyv1.RevokeClientSecretRequest{
		WorkloadId: workloadID, SecretId: secretID, Reason: "revoked in a test", Actor: Actor,
	})
	if err != nil {
		w.tb.Fatalf("RevokeClientSecret %q %q: %v", workloadID, secretID, err)
	}
}
