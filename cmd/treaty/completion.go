package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// completionTimeout bounds the registry call that completes an id: a shell waits on it, so an
// unreachable server must cost little, and then nothing is offered.
const completionTimeout = 2 * time.Second

// enumFlags are the values of the flags that take one of a fixed set, wherever they appear.
var enumFlags = map[string][]string{
	"risk-tier":           {"low", "medium", "high", "critical"},
	"tier":                {"low", "medium", "high", "critical"},
	"min-severity":        {"low", "medium", "high", "critical"},
	"relationship":        {"vendor", "saas", "managed_service_provider", "data_sharing", "embedded_sdk"},
	"data-classification": {"public", "internal", "confidential", "restricted"},
	"sender-constraint":   {"none", "dpop", "mtls", "dpop_or_mtls"},
	"auth-methods":        {"private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth", "client_secret_basic", "client_secret_post"},
	"framework":           {"owasp", "csf", "800-207"},
	"log-format":          {"text", "json"},
}

// stateFlags are the values of --state, by the command that has it.
var stateFlags = map[string][]string{
	"treaty partner list":      {"proposed", "approved", "active", "suspended", "offboarding", "terminated"},
	"treaty integration list":  {"requested", "approved", "active", "suspended", "retired"},
	"treaty notify deliveries": {"pending", "delivered", "dead"},
}

// idFlags are the flags that name a registry record, and the kind of record.
var idFlags = map[string]string{"partner": "partner", "integration": "integration", "workload": "workload", "subject": "workload"}

// addCompletions registers dynamic completion on the whole command tree: -o with the formats of
// the command, the enum flags' values, and partner, integration and workload ids (asked of the
// registry) for the arguments and flags that name one.
func (c *cli) addCompletions(root *cobra.Command) {
	_ = root.RegisterFlagCompletionFunc("output", func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		return outputs(cmd), cobra.ShellCompDirectiveNoFileComp
	})
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			values := enumFlags[f.Name]
			if f.Name == "state" {
				values = stateFlags[cmd.CommandPath()]
			}
			if values != nil {
				_ = cmd.RegisterFlagCompletionFunc(f.Name, fixed(values))
			} else if kind, ok := idFlags[f.Name]; ok {
				_ = cmd.RegisterFlagCompletionFunc(f.Name, c.completeIDs(kind))
			}
		})
		if cmd.ValidArgsFunction == nil {
			if kind := argKind(cmd); kind != "" {
				cmd.ValidArgsFunction = func(cmd *cobra.Command, a []string, prefix string) ([]string, cobra.ShellCompDirective) {
					if len(a) > 0 {
						return nil, cobra.ShellCompDirectiveNoFileComp
					}
					return c.completeIDs(kind)(cmd, a, prefix)
				}
			}
		}
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// argKind is the kind of record a command's first argument names ("partner get ID", "workload
// secret list ID", "policy get PARTNER[@VERSION]"), or "".
func argKind(cmd *cobra.Command) string {
	use := strings.Fields(cmd.Use)
	if len(use) < 2 || !cmd.HasParent() {
		return ""
	}
	switch parent := cmd.Parent().Name(); {
	case use[1] != "ID":
		return ""
	case parent == "partner" || parent == "integration" || parent == "workload":
		return parent
	case parent == "secret":
		return "workload"
	case parent == "policy":
		return "partner"
	}
	return ""
}

// fixed completes one of values.
func fixed(values []string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

// killSwitchArgs completes `revoke|restore KIND ID`: the kinds, then the ids of a registry kind.
func (c *cli) killSwitchArgs(kinds []string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, a []string, prefix string) ([]string, cobra.ShellCompDirective) {
		switch {
		case len(a) == 0:
			return kinds, cobra.ShellCompDirectiveNoFileComp
		case len(a) == 1 && slices.Contains([]string{"partner", "integration", "workload"}, a[0]):
			return c.completeIDs(a[0])(cmd, a, prefix)
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeIDs completes the ids of a kind of registry record that begin with the word typed so
// far, from the first page of the registry's list; if the registry cannot be asked within
// completionTimeout it offers nothing, quietly.
func (c *cli) completeIDs(kind string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
		conn, err := c.conn("registry")
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		defer cancel()
		rc := treatyv1.NewRegistryServiceClient(conn)
		var ids []string
		switch kind {
		case "partner":
			resp, _ := rc.ListPartners(ctx, &treatyv1.ListPartnersRequest{PageSize: 1000}) // on error, nil: nothing to offer
			for _, p := range resp.GetPartners() {
				ids = append(ids, p.GetId())
			}
		case "integration":
			resp, _ := rc.ListIntegrations(ctx, &treatyv1.ListIntegrationsRequest{PageSize: 1000})
			for _, i := range resp.GetIntegrations() {
				ids = append(ids, i.GetId())
			}
		case "workload":
			resp, _ := rc.ListWorkloads(ctx, &treatyv1.ListWorkloadsRequest{PageSize: 1000})
			for _, w := range resp.GetWorkloads() {
				ids = append(ids, w.GetId())
			}
		}
		ids = slices.DeleteFunc(ids, func(id string) bool { return !strings.HasPrefix(id, prefix) })
		return ids, cobra.ShellCompDirectiveNoFileComp
	}
}
