package main

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// The inventory lives with the issuer, so these commands talk to the issuer service's address.

func (c *cli) credentialsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "credentials",
		Short: "Read the issuer's credential inventory: list credentials, count live ones per partner",
		Args:  args(0, ""),
	}
	cmd.AddCommand(c.credentialsListCmd(), c.credentialsCountCmd())
	return cmd
}

func (c *cli) credentialsListCmd() *cobra.Command {
	var partner, integration, workload string
	var live, expired bool
	var limit int
	cmd := &cobra.Command{
		Use:   "list [--partner P] [--integration I] [--workload W] [--live|--expired] [--limit N]",
		Short: "List credentials, newest first: who holds them, what for, until when, last seen",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for flag, id := range map[string]string{"partner": partner, "integration": integration, "workload": workload} {
				if id == "" {
					continue
				}
				if err := checkIDFlag(flag, id); err != nil {
					return err
				}
			}
			if live && expired {
				return usagef("--live and --expired exclude each other")
			}
			if limit < 0 {
				return usagef("--limit must not be negative (0 lists every match)")
			}
			conn, err := c.conn("issuer")
			if err != nil {
				return err
			}
			client := treatyv1.NewIssuerServiceClient(conn)
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			req := &treatyv1.ListCredentialsRequest{
				PartnerId: partner, IntegrationId: integration, WorkloadId: workload, LiveOnly: live, ExpiredOnly: expired,
			}
			var docs lines
			v := view{header: []string{"id", "partner", "integration", "workload", "scopes", "audience", "issued", "expires", "auth", "binding", "last_seen"}}
			for n := 0; limit == 0 || n < limit; {
				req.PageSize = 1000
				if limit > 0 {
					req.PageSize = int32(min(limit-n, 1000))
				}
				resp, err := client.ListCredentials(ctx, req)
				if err != nil {
					return err
				}
				for _, cr := range resp.GetCredentials() {
					docs = append(docs, cr)
					v.rows = append(v.rows, credentialRow(cr))
				}
				n += len(resp.GetCredentials())
				if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
					break
				}
			}
			return c.render(docs, v, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&partner, "partner", "", "only this partner's credentials")
	f.StringVar(&integration, "integration", "", "only credentials under this integration")
	f.StringVar(&workload, "workload", "", "only this workload's credentials")
	f.BoolVar(&live, "live", false, "only credentials that have not expired")
	f.BoolVar(&expired, "expired", false, "only credentials that have expired")
	f.IntVar(&limit, "limit", 100, "print at most N credentials (0 for every match)")
	return recordFormats(cmd)
}

// credentialRow is a credential's cells; binding and auth method are empty for credentials
// recorded before they were.
func credentialRow(cr *treatyv1.Credential) []string {
	return []string{
		cr.GetId(), cr.GetPartnerId(), cr.GetIntegrationId(), cr.GetWorkloadId(), strings.Join(cr.GetScopes(), " "),
		cr.GetAudience(), instant(cr.GetIssueTime()), instant(cr.GetExpireTime()), cr.GetAuthMethod(), cr.GetBinding(), instant(cr.GetLastSeenTime()),
	}
}

func (c *cli) credentialsCountCmd() *cobra.Command {
	return recordFormats(&cobra.Command{
		Use:   "count",
		Short: "Count live credentials per partner",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := c.conn("issuer")
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := treatyv1.NewIssuerServiceClient(conn).CountLiveCredentialsByPartner(ctx, &treatyv1.CountLiveCredentialsByPartnerRequest{})
			if err != nil {
				return err
			}
			v := view{header: []string{"partner", "live"}}
			for _, n := range resp.GetCounts() {
				v.rows = append(v.rows, []string{n.GetPartnerId(), strconv.FormatUint(n.GetLiveCount(), 10)})
			}
			return c.render(resp, v, nil)
		},
	})
}
