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
	var integration, id, keyFile, reason string
	var tlsSub treatyv1.TlsClientAuth
	create := &cobra.Command{
		Use:   "create --integration ID --id ID (--public-key FILE.pub | --tls-subject-dn DN | --tls-san-dns NAME | --tls-san-uri URI)",
		Short: "Register a workload with its public key (Ed25519, ECDSA P-256 or RSA) and/or its TLS client certificate subject",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "integration", "id"); err != nil {
				return err
			}
			var sub *treatyv1.TlsClientAuth
			if tlsSub.GetSubjectDn() != "" || tlsSub.GetSanDns() != "" || tlsSub.GetSanUri() != "" {
				sub = &tlsSub
			}
			if keyFile == "" && sub == nil {
				return usagef("workload create: --public-key is required unless --tls-subject-dn, --tls-san-dns or --tls-san-uri names the client certificate")
			}
			for _, f := range [][2]string{{"integration", integration}, {"id", id}} {
				if err := checkIDFlag(f[0], f[1]); err != nil {
					return err
				}
			}
			var pemBytes []byte
			if keyFile != "" {
				var err error
				if pemBytes, err = os.ReadFile(keyFile); err != nil {
					return fmt.Errorf("read public key: %w", err)
				}
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.CreateWorkloadResponse, error) {
				return rc.CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{Id: id, IntegrationId: integration, PublicKeyPem: string(pemBytes),
					TlsClientAuth: sub, Reason: reason, Actor: c.actor})
			}, func(r *treatyv1.CreateWorkloadResponse) view { return workloadView(r.GetWorkload()) },
				func(r *treatyv1.CreateWorkloadResponse) { c.showWorkload(r.GetWorkload(), r.GetSequence()) })
		},
	}
	f := create.Flags()
	f.StringVar(&reason, "reason", "", "why, for the audit trail (optional)")
	f.StringVar(&integration, "integration", "", "the integration's id")
	f.StringVar(&id, "id", "", "workload id (also its OAuth client id)")
	f.StringVar(&keyFile, "public-key", "", "PEM file with the workload's public key (from 'treaty keygen')")
	f.StringVar(&tlsSub.SubjectDn, "tls-subject-dn", "", "tls_client_auth: the client certificate's subject DN, e.g. CN=orders,O=Acme")
	f.StringVar(&tlsSub.SanDns, "tls-san-dns", "", "tls_client_auth: a DNS name in the client certificate's SANs")
	f.StringVar(&tlsSub.SanUri, "tls-san-uri", "", "tls_client_auth: a URI in the client certificate's SANs, e.g. a SPIFFE id")

	recordFormats(create)
	cmd.AddCommand(create, c.workloadListCmd(), c.workloadRetireCmd(), c.workloadAddKeyCmd(), c.workloadRemoveKeyCmd(), c.workloadSecretCmd(), registryGetCmd(c, "workload",
		func(ctx context.Context, rc treatyv1.RegistryServiceClient, id string) (*treatyv1.GetWorkloadResponse, error) {
			return rc.GetWorkload(ctx, &treatyv1.GetWorkloadRequest{Id: id})
		}, func(r *treatyv1.GetWorkloadResponse) view { return workloadView(r.GetWorkload()) },
		func(r *treatyv1.GetWorkloadResponse) { c.showWorkload(r.GetWorkload(), 0) }))
	return cmd
}

func (c *cli) showWorkload(w *treatyv1.Workload, seq uint64) {
	var keys []string
	for _, k := range w.GetPublicKeys() {
		keys = append(keys, k.GetAlgorithm()+":"+k.GetKeyId())
	}
	fields(c.stdout, withSequence([]string{"id", w.GetId(), "integration", w.GetIntegrationId(), "partner", w.GetPartnerId(),
		"state", stateName(w.GetState()), "keys", strings.Join(keys, ","), "tls subject", tlsName(w.GetTlsClientAuth()),
		"created", ts(w.GetCreateTime()), "created by", orDash(w.GetCreatedBy()), "last used", ts(w.GetLastUseTime())}, seq)...)
}

func tlsName(t *treatyv1.TlsClientAuth) string {
	switch {
	case t.GetSubjectDn() != "":
		return "subject_dn=" + t.GetSubjectDn()
	case t.GetSanDns() != "":
		return "san_dns=" + t.GetSanDns()
	case t.GetSanUri() != "":
		return "san_uri=" + t.GetSanUri()
	}
	return "-"
}

var (
	workloadColumns = []string{"id", "integration", "partner", "state", "keys", "tls_subject", "created", "created_by", "last_used"}
	workloadBrief   = []string{"id", "integration", "partner", "state", "keys", "last_used"}
)

func workloadView(ws ...*treatyv1.Workload) view {
	v := view{header: workloadColumns, brief: workloadBrief}
	for _, w := range ws {
		var keys []string
		for _, k := range w.GetPublicKeys() {
			keys = append(keys, k.GetAlgorithm()+":"+k.GetKeyId())
		}
		tls := tlsName(w.GetTlsClientAuth())
		if tls == "-" {
			tls = ""
		}
		v.rows = append(v.rows, []string{w.GetId(), w.GetIntegrationId(), w.GetPartnerId(), stateName(w.GetState()), strings.Join(keys, " "),
			tls, instant(w.GetCreateTime()), w.GetCreatedBy(), instant(w.GetLastUseTime())})
	}
	return v
}

func (c *cli) workloadListCmd() *cobra.Command {
	var integration string
	cmd := &cobra.Command{
		Use:   "list [--integration ID]",
		Short: "List workloads, optionally of one integration",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if integration != "" {
				if err := checkIDFlag("integration", integration); err != nil {
					return err
				}
			}
			req := &treatyv1.ListWorkloadsRequest{IntegrationId: integration, PageSize: 1000}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (*treatyv1.ListWorkloadsResponse, error) {
				all := &treatyv1.ListWorkloadsResponse{}
				for {
					resp, err := rc.ListWorkloads(ctx, req)
					if err != nil {
						return nil, err
					}
					all.Workloads = append(all.Workloads, resp.GetWorkloads()...)
					if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
						return all, nil
					}
				}
			}, func(all *treatyv1.ListWorkloadsResponse) view { return workloadView(all.GetWorkloads()...) }, nil)
		},
	}
	cmd.Flags().StringVar(&integration, "integration", "", "only this integration's workloads")
	return recordFormats(cmd)
}
