package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// workloadAddKeyCmd registers a workload's next key, the first step of a key rotation.
func (c *cli) workloadAddKeyCmd() *cobra.Command {
	var id, keyFile, reason string
	cmd := &cobra.Command{
		Use:   "add-key --id ID --public-key FILE.pub",
		Short: "Register a workload's next public key (at most two at once): sign with it, then remove-key the old one",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "id", "public-key"); err != nil {
				return err
			}
			if err := checkIDFlag("id", id); err != nil {
				return err
			}
			pemBytes, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("read public key: %w", err)
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.AddWorkloadKeyResponse, error) {
				return rc.AddWorkloadKey(ctx, &treatyv1.AddWorkloadKeyRequest{Id: id, PublicKeyPem: string(pemBytes), Reason: reason, Actor: c.actor})
			}, func(r *treatyv1.AddWorkloadKeyResponse) view { return workloadView(r.GetWorkload()) },
				func(r *treatyv1.AddWorkloadKeyResponse) { c.showWorkload(r.GetWorkload(), 0) })
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "the workload's id")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit trail (optional)")
	cmd.Flags().StringVar(&keyFile, "public-key", "", "PEM file with the new public key (Ed25519, ECDSA P-256 or RSA of at least 2048 bits)")
	return recordFormats(cmd)
}

// workloadRemoveKeyCmd removes one of a workload's keys, the last step of a key rotation.
func (c *cli) workloadRemoveKeyCmd() *cobra.Command {
	var id, kid, reason string
	cmd := &cobra.Command{
		Use:   "remove-key --id ID --key-id KID --reason TEXT",
		Short: "Remove one of a workload's public keys (never its last)",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "id", "key-id", "reason"); err != nil {
				return err
			}
			if err := checkIDFlag("id", id); err != nil {
				return err
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.RemoveWorkloadKeyResponse, error) {
				return rc.RemoveWorkloadKey(ctx, &treatyv1.RemoveWorkloadKeyRequest{Id: id, KeyId: kid, Reason: reason, Actor: c.actor})
			}, func(r *treatyv1.RemoveWorkloadKeyResponse) view { return workloadView(r.GetWorkload()) },
				func(r *treatyv1.RemoveWorkloadKeyResponse) { c.showWorkload(r.GetWorkload(), 0) })
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "the workload's id")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit trail (required: removing a key is a security action)")
	cmd.Flags().StringVar(&kid, "key-id", "", "the key's id (its thumbprint, as 'treaty workload get' shows)")
	return recordFormats(cmd)
}
