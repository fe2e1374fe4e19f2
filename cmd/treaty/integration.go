package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

func (c *cli) integrationCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "integration", Short: "Register and inspect integrations (a partner's scope ceiling and limits)"}
	var partner, id string
	var scopes, audiences []string
	var maxTTL time.Duration
	create := &cobra.Command{
		Use:   "create --partner ID --id ID --scopes a,b --audiences x,y --max-ttl 10m",
		Short: "Register an integration under a partner",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "partner", "id", "scopes", "audiences", "max-ttl"); err != nil {
				return err
			}
			for flag, v := range map[string]string{"partner": partner, "id": id} {
				if err := checkIDFlag(flag, v); err != nil {
					return err
				}
			}
			if maxTTL <= 0 {
				return usagef("--max-ttl must be positive, for example 10m")
			}
			client, err := c.registry()
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := client.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Actor: c.actor, Integration: &treatyv1.Integration{
				Id: id, PartnerId: partner, AllowedScopes: scopes, Audiences: audiences, MaxCredentialTtl: durationpb.New(maxTTL),
			}})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return c.printProto(resp)
			}
			c.showIntegration(resp.GetIntegration(), resp.GetSequence())
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&partner, "partner", "", "the partner's id")
	f.StringVar(&id, "id", "", "integration id")
	f.StringSliceVar(&scopes, "scopes", nil, "scope ceiling, comma-separated")
	f.StringSliceVar(&audiences, "audiences", nil, "audiences credentials may be issued for, comma-separated")
	f.DurationVar(&maxTTL, "max-ttl", 0, "longest credential lifetime, for example 10m")

	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show an integration",
		Args:  args(1, "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkIDArg("integration", a[0]); err != nil {
				return err
			}
			client, err := c.registry()
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := client.GetIntegration(ctx, &treatyv1.GetIntegrationRequest{Id: a[0]})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return c.printProto(resp)
			}
			c.showIntegration(resp.GetIntegration(), 0)
			return nil
		},
	}
	cmd.AddCommand(create, get)
	return cmd
}

func (c *cli) showIntegration(i *treatyv1.Integration, seq uint64) {
	kv := []string{"id", i.GetId(), "partner", i.GetPartnerId(), "state", stateName(i.GetState()),
		"scopes", strings.Join(i.GetAllowedScopes(), ","), "audiences", strings.Join(i.GetAudiences(), ","),
		"max ttl", i.GetMaxCredentialTtl().AsDuration().String(), "created", ts(i.GetCreateTime())}
	if seq != 0 {
		kv = append(kv, "sequence", fmt.Sprint(seq))
	}
	fields(c.stdout, kv...)
}

func (c *cli) workloadCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "workload", Short: "Register and inspect workloads (the identities acting for an integration)"}
	var integration, id, keyFile string
	create := &cobra.Command{
		Use:   "create --integration ID --id ID --public-key FILE.pub",
		Short: "Register a workload and its Ed25519 public key",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "integration", "id", "public-key"); err != nil {
				return err
			}
			for flag, v := range map[string]string{"integration": integration, "id": id} {
				if err := checkIDFlag(flag, v); err != nil {
					return err
				}
			}
			pemBytes, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("read public key: %w", err)
			}
			client, err := c.registry()
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := client.CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{Id: id, IntegrationId: integration, PublicKeyPem: string(pemBytes), Actor: c.actor})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return c.printProto(resp)
			}
			c.showWorkload(resp.GetWorkload(), resp.GetSequence())
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&integration, "integration", "", "the integration's id")
	f.StringVar(&id, "id", "", "workload id (also its OAuth client id)")
	f.StringVar(&keyFile, "public-key", "", "PEM file with the workload's Ed25519 public key (from 'treaty keygen')")

	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show a workload",
		Args:  args(1, "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkIDArg("workload", a[0]); err != nil {
				return err
			}
			client, err := c.registry()
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := client.GetWorkload(ctx, &treatyv1.GetWorkloadRequest{Id: a[0]})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return c.printProto(resp)
			}
			c.showWorkload(resp.GetWorkload(), 0)
			return nil
		},
	}
	cmd.AddCommand(create, get)
	return cmd
}

func (c *cli) showWorkload(w *treatyv1.Workload, seq uint64) {
	var keys []string
	for _, k := range w.GetPublicKeys() {
		keys = append(keys, k.GetAlgorithm()+":"+k.GetKeyId())
	}
	kv := []string{"id", w.GetId(), "integration", w.GetIntegrationId(), "partner", w.GetPartnerId(),
		"state", stateName(w.GetState()), "keys", strings.Join(keys, ","), "created", ts(w.GetCreateTime())}
	if seq != 0 {
		kv = append(kv, "sequence", fmt.Sprint(seq))
	}
	fields(c.stdout, kv...)
}
