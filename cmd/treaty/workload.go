package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

func (c *cli) workloadCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "workload", Short: "Register, inspect and retire workloads (the identities acting for an integration)"}
	var integration, id, keyFile string
	create := &cobra.Command{
		Use:   "create --integration ID --id ID --public-key FILE.pub",
		Short: "Register a workload and its Ed25519 public key",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "integration", "id", "public-key"); err != nil {
				return err
			}
			for _, f := range [][2]string{{"integration", integration}, {"id", id}} {
				if err := checkIDFlag(f[0], f[1]); err != nil {
					return err
				}
			}
			pemBytes, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("read public key: %w", err)
			}
			return registryCall(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.CreateWorkloadResponse, error) {
				return rc.CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{Id: id, IntegrationId: integration, PublicKeyPem: string(pemBytes), Actor: c.actor})
			}, func(r *treatyv1.CreateWorkloadResponse) { c.showWorkload(r.GetWorkload(), r.GetSequence()) })
		},
	}
	f := create.Flags()
	f.StringVar(&integration, "integration", "", "the integration's id")
	f.StringVar(&id, "id", "", "workload id (also its OAuth client id)")
	f.StringVar(&keyFile, "public-key", "", "PEM file with the workload's Ed25519 public key (from 'treaty keygen')")

	cmd.AddCommand(create, c.workloadRetireCmd(), c.workloadSecretCmd(), registryGetCmd(c, "workload",
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id string) (*treatyv1.GetWorkloadResponse, error) {
			return rc.GetWorkload(ctx, &treatyv1.GetWorkloadRequest{Id: id})
		}, func(r *treatyv1.GetWorkloadResponse) { c.showWorkload(r.GetWorkload(), 0) }))
	return cmd
}

func (c *cli) showWorkload(w *treatyv1.Workload, seq uint64) {
	var keys []string
	for _, k := range w.GetPublicKeys() {
		keys = append(keys, k.GetAlgorithm()+":"+k.GetKeyId())
	}
	fields(c.stdout, withSequence([]string{"id", w.GetId(), "integration", w.GetIntegrationId(), "partner", w.GetPartnerId(),
		"state", stateName(w.GetState()), "keys", strings.Join(keys, ","), "created", ts(w.GetCreateTime())}, seq)...)
}
