package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
)

// assertionTTL is how long the client assertions the CLI signs stay valid: long enough for one
// call, far below the 5-minute limit.
const assertionTTL = time.Minute

func (c *cli) tokenCmd() *cobra.Command {
	var workload, keyFile, audience string
	var scopes []string
	var ttl time.Duration
	var minSeq uint64
	cmd := &cobra.Command{
		Use:   "token --workload ID --key FILE --scopes a,b --audience X [--ttl 5m]",
		Short: "Obtain an access token as a workload (prints the token alone)",
		Long: `Authenticates as the workload with a private_key_jwt client assertion signed by FILE
(from 'treaty keygen') and prints the access token alone on stdout.`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "workload", "key", "scopes", "audience"); err != nil {
				return err
			}
			if err := checkIDFlag("workload", workload); err != nil {
				return err
			}
			if ttl <= 0 {
				return usagef("--ttl must be positive, for example 5m")
			}
			key, err := readPrivateKey(keyFile)
			if err != nil {
				return err
			}
			conn, err := c.conn("issuer")
			if err != nil {
				return err
			}
			client := treatyv1.NewIssuerServiceClient(conn)
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			info, err := client.GetIssuer(ctx, &treatyv1.GetIssuerRequest{})
			if err != nil {
				return err
			}
			assertion, err := issuer.SignAssertion(workload, info.GetIssuer(), key, time.Now(), assertionTTL)
			if err != nil {
				return err
			}
			resp, err := client.IssueToken(ctx, &treatyv1.IssueTokenRequest{
				ClientAssertion: assertion, Scopes: scopes, Audience: audience, Ttl: durationpb.New(ttl), MinSequence: minSeq,
			})
			if err != nil {
				return err
			}
			if c.output == "json" {
				cred := resp.GetCredential()
				return c.printJSON(map[string]any{
					"access_token": resp.GetAccessToken(), "token_type": resp.GetTokenType(), "jti": cred.GetId(),
					"expires_at": ts(cred.GetExpireTime()), "scopes": cred.GetScopes(), "audience": cred.GetAudience(),
					"sequence": cred.GetSequence(),
				})
			}
			_, err = fmt.Fprintln(c.stdout, resp.GetAccessToken())
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&workload, "workload", "", "the workload to authenticate as")
	f.StringVar(&keyFile, "key", "", "the workload's private key (PKCS#8 PEM from 'treaty keygen')")
	f.StringSliceVar(&scopes, "scopes", nil, "scopes to request, comma-separated")
	f.StringVar(&audience, "audience", "", "the audience (resource) the token is for")
	f.DurationVar(&ttl, "ttl", 5*time.Minute, "requested lifetime; capped by the integration and the contract")
	f.Uint64Var(&minSeq, "min-sequence", 0, "decide issuance only once the PDP has applied this feed sequence")
	return cmd
}

func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s is not a PKCS#8 PEM private key (create one with 'treaty keygen')", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s is not an Ed25519 private key", path)
	}
	return priv, nil
}

func (c *cli) checkCmd() *cobra.Command {
	var tok, tokFile, action, resource string
	var minSeq uint64
	cmd := &cobra.Command{
		Use:   "check (--token TOKEN | --token-file FILE | --token-file -) --action A --resource R [--min-sequence N]",
		Short: "Ask the decision point whether a token may perform an action on a resource",
		Long: `Prints the decision; exits 0 on allow and 3 on deny (including syncing and stale).
--min-sequence makes the decision point first apply the feed up to that sequence (read your writes).`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "action", "resource"); err != nil {
				return err
			}
			haveTok, haveFile := cmd.Flags().Changed("token"), cmd.Flags().Changed("token-file")
			if haveTok == haveFile {
				return usagef("give exactly one of --token and --token-file")
			}
			if haveFile {
				var raw []byte
				var err error
				if tokFile == "-" {
					raw, err = io.ReadAll(io.LimitReader(c.stdin, 1<<20))
				} else {
					raw, err = os.ReadFile(tokFile)
				}
				if err != nil {
					return fmt.Errorf("read token: %w", err)
				}
				tok = strings.TrimSpace(string(raw))
			}
			if tok == "" {
				return usagef("the token is empty")
			}
			conn, err := c.conn("pdp")
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := treatyv1.NewDecisionServiceClient(conn).Check(ctx, &treatyv1.CheckRequest{
				Subject: &treatyv1.CheckRequest_Token{Token: tok}, Action: action, Resource: resource, MinSequence: minSeq,
			})
			if err != nil {
				return err
			}
			decision := "deny"
			if resp.GetDecision() == treatyv1.Decision_DECISION_ALLOW {
				decision = "allow"
			}
			if c.output == "json" {
				err = c.printJSON(map[string]any{"decision": decision, "reasons": resp.GetReasons(), "sequence": resp.GetSequence(), "decision_id": resp.GetDecisionId()})
			} else {
				_, err = fmt.Fprintf(c.stdout, "%s: %s (sequence %d)\n", decision, strings.Join(resp.GetReasons(), ", "), resp.GetSequence())
			}
			if err != nil {
				return err
			}
			if decision == "deny" {
				return &exitErr{code: exitDeny}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&tok, "token", "", "the access token")
	f.StringVar(&tokFile, "token-file", "", "a file holding the access token, or - for stdin")
	f.StringVar(&action, "action", "", "the action (one of the token's scopes)")
	f.StringVar(&resource, "resource", "", "the resource (the token's audience)")
	f.Uint64Var(&minSeq, "min-sequence", 0, "wait until the decision point has applied this feed sequence")
	return cmd
}
