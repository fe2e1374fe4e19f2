package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/access"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// Identities are kept per process (each serve's access.db), or shared by replicas on one etcd
// prefix (--store etcd), so these commands talk to --server.

func (c *cli) accessCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "access",
		Short: "Manage who may call Treaty: identities, roles, tokens, and the log of refused calls",
		Long: `Every call to Treaty needs an identity with a role that allows it (health checks and the
issuer's token endpoints excepted). Roles: admin (everything), operator (revoke, restore,
suspend, resume, plus every read), auditor (reads, reports, audit, decisions), pdp-client
(decisions), subscriber (the revocation feed), service (Treaty's services calling each other).

An identity authenticates with a token (created with --token, shown once) or with a client
certificate whose first URI SAN, else its CN, is the identity's name. The first 'treaty serve'
on an empty data folder creates the identity admin and writes its token to
<data>/admin.credential.`,
		Args: args(0, ""),
	}
	cmd.AddCommand(c.accessCreateCmd(), c.accessListCmd(), c.accessGetCmd(), c.accessDeleteCmd(), c.accessRotateCmd(), c.accessWhoAmICmd(),
		c.accessRefusalsCmd())
	return cmd
}

// accessCall runs one AccessService call and renders its answer.
func accessCall[R proto.Message](c *cli, cmd *cobra.Command, call func(context.Context, treatyv1.AccessServiceClient) (R, error),
	toView func(R) view, show func(R)) error {
	conn, err := c.conn("access")
	if err != nil {
		return err
	}
	ctx, cancel := c.ctx(cmd)
	defer cancel()
	resp, err := call(ctx, treatyv1.NewAccessServiceClient(conn))
	if err != nil {
		return err
	}
	var text func()
	if show != nil {
		text = func() { show(resp) }
	}
	return c.render(resp, toView(resp), text)
}

func checkNameArg(name string) error {
	if err := access.CheckName("name", name); err != nil {
		return usagef("identity name %q is not valid: use lower-case letters, digits, '-', '.' and '_', or a URI such as spiffe://example.org/pdp", name)
	}
	return nil
}

var identityHeader = []string{"name", "roles", "token", "created", "created_by", "reason", "token_issued"}

func identityRow(id *treatyv1.Identity) []string {
	tok := "no"
	if id.GetHasToken() {
		tok = "yes"
	}
	issued := ""
	if id.GetTokenIssueTime() != nil {
		issued = ts(id.GetTokenIssueTime())
	}
	return []string{id.GetName(), strings.Join(id.GetRoles(), ","), tok, ts(id.GetCreateTime()), id.GetCreatedBy(), id.GetReason(), issued}
}

func identitiesView(ids ...*treatyv1.Identity) view {
	v := view{header: identityHeader, brief: []string{"name", "roles", "token", "created", "created_by"}}
	for _, id := range ids {
		v.rows = append(v.rows, identityRow(id))
	}
	return v
}

func (c *cli) showIdentity(id *treatyv1.Identity) {
	row := identityRow(id)
	kv := make([]string, 0, 2*len(identityHeader))
	for i, h := range identityHeader {
		kv = append(kv, strings.ReplaceAll(h, "_", " "), orDash(row[i]))
	}
	fields(c.stdout, kv...)
}

func (c *cli) accessCreateCmd() *cobra.Command {
	var roles []string
	var token bool
	var reason string
	cmd := &cobra.Command{
		Use:   "create NAME --role ROLE [--role ROLE2] [--token] --reason TEXT",
		Short: "Create an identity; with --token its token is printed once and never shown again",
		Args:  args(1, "NAME --role ROLE --reason TEXT"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkNameArg(a[0]); err != nil {
				return err
			}
			if err := need(cmd, "role", "reason"); err != nil {
				return err
			}
			for _, r := range roles {
				if _, err := access.ParseRole(r); err != nil {
					return usagef("--role %q is not a role: use admin, operator, auditor, pdp-client, subscriber or service", r)
				}
			}
			req := &treatyv1.CreateIdentityRequest{Name: a[0], Roles: roles, IssueToken: token, Reason: reason, Actor: c.actor}
			return accessCall(c, cmd, func(ctx context.Context, ac treatyv1.AccessServiceClient) (*treatyv1.CreateIdentityResponse, error) {
				return ac.CreateIdentity(ctx, req)
			}, func(r *treatyv1.CreateIdentityResponse) view { return tokenView(r.GetIdentity(), r.GetToken()) },
				func(r *treatyv1.CreateIdentityResponse) { c.showIdentityToken(r.GetIdentity(), r.GetToken()) })
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&roles, "role", nil, "a role: admin, operator, auditor, pdp-client, subscriber or service (repeat for several)")
	f.BoolVar(&token, "token", false, "issue a token; without, the identity authenticates only with a client certificate bearing its name")
	f.StringVar(&reason, "reason", "", "why, for the record (required)")
	return recordFormats(cmd)
}

func (c *cli) accessListCmd() *cobra.Command {
	return recordFormats(&cobra.Command{
		Use:   "list",
		Short: "List identities and their roles",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return accessCall(c, cmd, func(ctx context.Context, ac treatyv1.AccessServiceClient) (*treatyv1.ListIdentitiesResponse, error) {
				return ac.ListIdentities(ctx, &treatyv1.ListIdentitiesRequest{})
			}, func(r *treatyv1.ListIdentitiesResponse) view { return identitiesView(r.GetIdentities()...) }, nil)
		},
	})
}

func (c *cli) accessGetCmd() *cobra.Command {
	return recordFormats(&cobra.Command{
		Use:   "get NAME",
		Short: "Show an identity",
		Args:  args(1, "NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkNameArg(a[0]); err != nil {
				return err
			}
			return accessCall(c, cmd, func(ctx context.Context, ac treatyv1.AccessServiceClient) (*treatyv1.GetIdentityResponse, error) {
				return ac.GetIdentity(ctx, &treatyv1.GetIdentityRequest{Name: a[0]})
			}, func(r *treatyv1.GetIdentityResponse) view { return identitiesView(r.GetIdentity()) },
				func(r *treatyv1.GetIdentityResponse) { c.showIdentity(r.GetIdentity()) })
		},
	})
}

func (c *cli) accessDeleteCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "delete NAME --reason TEXT",
		Short: "Delete an identity: its token and certificate stop working at once",
		Args:  args(1, "NAME --reason TEXT"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkNameArg(a[0]); err != nil {
				return err
			}
			if err := need(cmd, "reason"); err != nil {
				return err
			}
			return accessCall(c, cmd, func(ctx context.Context, ac treatyv1.AccessServiceClient) (*treatyv1.DeleteIdentityResponse, error) {
				return ac.DeleteIdentity(ctx, &treatyv1.DeleteIdentityRequest{Name: a[0], Reason: reason, Actor: c.actor})
			}, func(*treatyv1.DeleteIdentityResponse) view {
				return view{header: []string{"deleted"}, rows: [][]string{{a[0]}}}
			}, func(*treatyv1.DeleteIdentityResponse) { fmt.Fprintf(c.stdout, "identity %s deleted\n", a[0]) })
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the record (required)")
	return cmd
}

func (c *cli) accessRotateCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "rotate NAME --reason TEXT",
		Short: "Issue an identity a new token, printed once; its previous token stops working at once",
		Args:  args(1, "NAME --reason TEXT"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkNameArg(a[0]); err != nil {
				return err
			}
			if err := need(cmd, "reason"); err != nil {
				return err
			}
			return accessCall(c, cmd, func(ctx context.Context, ac treatyv1.AccessServiceClient) (*treatyv1.RotateTokenResponse, error) {
				return ac.RotateToken(ctx, &treatyv1.RotateTokenRequest{Name: a[0], Reason: reason, Actor: c.actor})
			}, func(r *treatyv1.RotateTokenResponse) view { return tokenView(r.GetIdentity(), r.GetToken()) },
				func(r *treatyv1.RotateTokenResponse) { c.showIdentityToken(r.GetIdentity(), r.GetToken()) })
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the record (required)")
	return recordFormats(cmd)
}

// tokenView is an identity with the token just issued to it, for -o json|yaml|csv.
func tokenView(id *treatyv1.Identity, tok string) view {
	v := identitiesView(id)
	v.header = append(v.header, "token_value")
	v.rows[0] = append(v.rows[0], tok)
	return v
}

// showIdentityToken prints an identity and the token just issued to it (shown once), and says
// so on stderr.
func (c *cli) showIdentityToken(id *treatyv1.Identity, tok string) {
	c.showIdentity(id)
	if tok == "" {
		return
	}
	fields(c.stdout, "token value", tok)
	fmt.Fprintln(c.stderr, "treaty: store this token now (a file with mode 0600, for --credential-file): Treaty keeps only its hash and does not show it again")
}

func (c *cli) accessWhoAmICmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the identity, roles and means of authentication Treaty sees for you",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return accessCall(c, cmd, func(ctx context.Context, ac treatyv1.AccessServiceClient) (*treatyv1.WhoAmIResponse, error) {
				return ac.WhoAmI(ctx, &treatyv1.WhoAmIRequest{})
			}, func(*treatyv1.WhoAmIResponse) view { return view{} }, func(r *treatyv1.WhoAmIResponse) {
				fields(c.stdout, "name", r.GetName(), "roles", strings.Join(r.GetRoles(), ","), "via", r.GetVia())
			})
		},
	}
}

func (c *cli) accessRefusalsCmd() *cobra.Command {
	var after uint64
	var limit int
	cmd := &cobra.Command{
		Use:   "refusals [--after SEQUENCE] [--limit N]",
		Short: "List refused calls, oldest first: who, how, what, and why",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usagef("--limit must not be negative (0 lists every refusal)")
			}
			conn, err := c.conn("access")
			if err != nil {
				return err
			}
			client := treatyv1.NewAccessServiceClient(conn)
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			out := &treatyv1.ListRefusalsResponse{}
			for {
				size := access.MaxRefusalPage
				if limit > 0 {
					size = min(limit-len(out.Refusals), size)
				}
				resp, err := client.ListRefusals(ctx, &treatyv1.ListRefusalsRequest{AfterSequence: after, PageSize: int32(size)})
				if err != nil {
					return err
				}
				out.Refusals, out.Dropped = append(out.Refusals, resp.GetRefusals()...), resp.GetDropped()
				if len(resp.GetRefusals()) < size || (limit > 0 && len(out.Refusals) >= limit) {
					break
				}
				after = resp.GetRefusals()[len(resp.GetRefusals())-1].GetSequence()
			}
			v := view{header: []string{"sequence", "time", "code", "caller", "via", "method", "peer", "reason"},
				brief: []string{"sequence", "time", "code", "caller", "method", "peer"}}
			for _, r := range out.Refusals {
				v.rows = append(v.rows, []string{fmt.Sprint(r.GetSequence()), ts(r.GetTime()), r.GetCode(), r.GetCaller(), r.GetVia(),
					r.GetMethod(), r.GetPeer(), r.GetReason()})
			}
			if out.Dropped > 0 && c.output == outputTable {
				fmt.Fprintf(c.stderr, "treaty: %d refusals were dropped since the server started (its refusal queue was full)\n", out.Dropped)
			}
			return c.render(out, v, nil)
		},
	}
	cmd.Flags().Uint64Var(&after, "after", 0, "only refusals after this sequence")
	cmd.Flags().IntVar(&limit, "limit", 100, "the most refusals to list (0 lists every one)")
	return recordFormats(cmd)
}
