package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/certs"
	"github.com/treaty-dev/treaty/services"
	"github.com/treaty-dev/treaty/services/authn"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	exitDeny  = 3
)

// exitErr carries an exit status. A nil err with a status prints nothing (a deny says itself on
// stdout).
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// usagef reports a usage error: caught before anything reaches a server.
func usagef(format string, args ...any) error {
	return &exitErr{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// cli holds the global flags and the streams of one invocation.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	server  string
	peers   map[string]*string
	output  string
	actor   string
	timeout time.Duration
	// How the CLI authenticates: a token file, or a client certificate; ca verifies the server.
	credentialFile, certFile, keyFile, caFile string

	conns []*grpc.ClientConn
	creds []grpc.DialOption // built once from the flags above
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, peers: map[string]*string{}}
	root := c.root()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	for _, conn := range c.conns {
		conn.Close()
	}
	return c.exitCode(err)
}

func (c *cli) exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitErr
	if errors.As(err, &ee) {
		switch {
		case ee.err == nil:
		case ee.code == exitUsage:
			fmt.Fprintf(c.stderr, "treaty: %s (see 'treaty --help')\n", oneLine(ee.err))
		default:
			fmt.Fprintf(c.stderr, "treaty: %s\n", oneLine(ee.err))
		}
		return ee.code
	}
	if st, ok := status.FromError(err); ok {
		fmt.Fprintf(c.stderr, "treaty: %s (%s)\n", oneLine(errors.New(st.Message())), codeName(st.Code()))
		return exitError
	}
	// cobra reports unknown commands and bad arguments with plain errors.
	if msg := err.Error(); strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.Contains(msg, "arg(s)") {
		fmt.Fprintf(c.stderr, "treaty: %s (see 'treaty --help')\n", oneLine(err))
		return exitUsage
	}
	fmt.Fprintf(c.stderr, "treaty: %s\n", oneLine(err))
	return exitError
}

// codeName spells a status code the way the gRPC specification does: NOT_FOUND, not NotFound.
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func defaultActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

func (c *cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "treaty",
		Short: "Govern partners' machine credentials: inventory, least privilege, short lives, a kill switch",
		Long: `Treaty keeps every external partner's machine access inventoried, least-privilege,
short-lived and instantly revocable.

'treaty serve' runs the services; every other command is the admin CLI for them.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return c.checkOutput(cmd)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		if strings.Contains(err.Error(), "unknown shorthand flag") {
			// Key ids are base64url thumbprints and may begin with '-'.
			err = fmt.Errorf("%w; an argument that begins with '-' (a key id, say) goes after '--'", err)
		}
		return &exitErr{code: exitUsage, err: err}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&c.server, "server", envOr("TREATY_SERVER", services.DefaultListen), "address of the Treaty server (env TREATY_SERVER)")
	for _, name := range services.All {
		v := new(string)
		c.peers[name] = v
		env := "TREATY_" + strings.ToUpper(name)
		pf.StringVar(v, name, os.Getenv(env), fmt.Sprintf("address of the %s service, overriding --server (env %s)", name, env))
	}
	pf.StringVarP(&c.output, "output", "o", outputTable, "output format: table (or text), json, yaml or csv for records and lists; table or json for single values and streams")
	pf.StringVar(&c.actor, "actor", envOr("TREATY_ACTOR", defaultActor()), "who you are, recorded in the audit trail (env TREATY_ACTOR)")
	pf.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long to wait for the server")
	pf.StringVar(&c.credentialFile, "credential-file", os.Getenv("TREATY_CREDENTIAL_FILE"), "file holding your Treaty token, e.g. DATA/admin.credential written at the first 'treaty serve' (env TREATY_CREDENTIAL_FILE)")
	pf.StringVar(&c.certFile, "cert", os.Getenv("TREATY_CERT"), "client certificate (PEM) to authenticate with over TLS (env TREATY_CERT)")
	pf.StringVar(&c.keyFile, "key", os.Getenv("TREATY_KEY"), "private key of --cert (env TREATY_KEY)")
	pf.StringVar(&c.caFile, "ca", os.Getenv("TREATY_CA"), "CA certificates that verify the server's; setting it (or --cert) speaks TLS (env TREATY_CA)")
	root.AddCommand(c.serveCmd(), c.keygenCmd(), c.partnerCmd(), c.integrationCmd(), c.workloadCmd(),
		c.tokenCmd(), c.checkCmd(), c.revokeCmd(), c.restoreCmd(), c.watchCmd(), c.policyCmd(), c.decisionsCmd(),
		c.backupCmd(), c.restoreBackupCmd(), c.newEpochCmd(), c.credentialsCmd(), c.importCmd(), c.exportCmd())
	root.AddCommand(c.auditCmd())
	root.AddCommand(c.notifyCmd())
	root.AddCommand(c.reportCmd())
	root.AddCommand(c.devCertsCmd())
	root.AddCommand(c.accessCmd())
	c.addCompletions(root)
	return root
}

// conn returns a connection to the named service.
func (c *cli) conn(service string) (*grpc.ClientConn, error) {
	addr := c.server
	if v, ok := c.peers[service]; ok && *v != "" {
		addr = *v
	}
	if c.creds == nil {
		opts, err := c.dialCredentials()
		if err != nil {
			return nil, err
		}
		c.creds = opts
	}
	conn, err := grpc.NewClient(addr, c.creds...)
	if err != nil {
		return nil, usagef("bad address for the %s service %q: %v", service, addr, err)
	}
	c.conns = append(c.conns, conn)
	return conn, nil
}

// dialCredentials builds the transport security and caller credentials the flags ask for: TLS
// when --ca or --cert is given (plaintext otherwise, which servers accept on loopback only), and
// a token from --credential-file.
func (c *cli) dialCredentials() ([]grpc.DialOption, error) {
	transport := insecure.NewCredentials()
	if c.caFile != "" || c.certFile != "" || c.keyFile != "" {
		cfg, err := certs.ClientConfig(c.certFile, c.keyFile, c.caFile)
		if err != nil {
			return nil, usagef("%v", err)
		}
		transport = credentials.NewTLS(cfg)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(transport)}
	if c.credentialFile != "" {
		creds, err := authn.TokenFile(c.credentialFile)
		if err != nil {
			return nil, usagef("--credential-file: %v", err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(creds))
	}
	return opts, nil
}

// ctx returns the context for one command's calls.
func (c *cli) ctx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), c.timeout)
}

// need returns a usage error naming the first of the flags that was not given.
func need(cmd *cobra.Command, flags ...string) error {
	for _, f := range flags {
		if !cmd.Flags().Changed(f) {
			return usagef("%s: --%s is required", strings.TrimPrefix(cmd.CommandPath(), "treaty "), f)
		}
	}
	return nil
}

// args checks the number of positional arguments.
func args(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if len(a) != n {
			if n == 0 {
				return usagef("%s takes no arguments", strings.TrimPrefix(cmd.CommandPath(), "treaty "))
			}
			return usagef("usage: %s %s", cmd.CommandPath(), names)
		}
		return nil
	}
}
