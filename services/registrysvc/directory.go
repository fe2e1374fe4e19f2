package registrysvc

import (
	"context"

	"google.golang.org/grpc"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/edge"
)

// directory is issuer.Directory over a RegistryService client.
type directory struct {
	client treatyv1.RegistryServiceClient
}

// NewDirectory returns the issuer's view of the registry reached through conn. Unknown ids yield
// fail.NotFound errors and other statuses their fail kinds (edge.FromStatus); a workload key that
// does not parse or does not match its key id is an internal error, so the issuer fails closed.
func NewDirectory(conn grpc.ClientConnInterface) issuer.Directory {
	return directory{client: treatyv1.NewRegistryServiceClient(conn)}
}

// Workload implements issuer.Directory.
func (d directory) Workload(ctx context.Context, id string) (issuer.Workload, error) {
	resp, err := d.client.GetWorkload(ctx, &treatyv1.GetWorkloadRequest{Id: id, View: treatyv1.WorkloadView_WORKLOAD_VIEW_BASIC})
	if err != nil {
		return issuer.Workload{}, edge.FromStatus(err)
	}
	return workloadForIssuer(resp.GetWorkload())
}

// Integration implements issuer.Directory.
func (d directory) Integration(ctx context.Context, id string) (issuer.Integration, error) {
	resp, err := d.client.GetIntegration(ctx, &treatyv1.GetIntegrationRequest{Id: id})
	if err != nil {
		return issuer.Integration{}, edge.FromStatus(err)
	}
	return integrationForIssuer(resp.GetIntegration()), nil
}

// Partner implements issuer.Directory.
func (d directory) Partner(ctx context.Context, id string) (issuer.Partner, error) {
	resp, err := d.client.GetPartner(ctx, &treatyv1.GetPartnerRequest{Id: id})
	if err != nil {
		return issuer.Partner{}, edge.FromStatus(err)
	}
	return partnerForIssuer(resp.GetPartner()), nil
}

// ClientSecrets implements issuer.Directory: the hashes of the workload's live secrets, over the
// registry's ListClientSecretVerifiers (the plaintext secrets exist nowhere to be sent).
func (d directory) ClientSecrets(ctx context.Context, workloadID string) ([]issuer.ClientSecretVerifier, error) {
	resp, err := d.client.ListClientSecretVerifiers(ctx, &treatyv1.ListClientSecretVerifiersRequest{WorkloadId: workloadID})
	if err != nil {
		return nil, edge.FromStatus(err)
	}
	return verifiersForIssuer(workloadID, resp.GetVerifiers())
}
