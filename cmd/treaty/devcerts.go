package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/certs"
)

func (c *cli) devCertsCmd() *cobra.Command {
	var out string
	var opts certs.DevOptions
	cmd := &cobra.Command{
		Use:   "dev-certs --out DIR [--host H ...] [--identity NAME ...] [--force]",
		Short: "Create a development CA, a server certificate and client certificates for a test deployment",
		Long: `Create in DIR a development CA (ca.pem, ca-key.pem; ECDSA P-256, valid a year), a server
certificate (server.pem, server-key.pem; valid 90 days) for the --host names that Treaty servers
also present to each other as their client certificate, named by the URI SAN
` + certs.ServiceName + `, and one client certificate per --identity (NAME.pem, NAME-key.pem;
clientAuth only, CN = NAME). Keys are written 0600.

For tests only: anyone holding ca-key.pem can mint certificates the servers will trust.`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "out"); err != nil {
				return err
			}
			files, err := certs.WriteDev(out, opts)
			if err != nil {
				return err
			}
			if c.output == outputJSON {
				return c.printJSON(devCertsJSON(files))
			}
			hosts := opts.Hosts
			if len(hosts) == 0 {
				hosts = certs.DefaultDevHosts
			}
			w := c.stdout
			rows := [][2]string{
				{files.CA, "CA certificate"},
				{files.CAKey, "CA private key (mode 0600)"},
				{files.Server, fmt.Sprintf("server certificate for %s, identity %s", strings.Join(hosts, ", "), certs.ServiceName)},
				{files.ServerKey, "its private key (mode 0600)"},
			}
			for _, cl := range files.Clients {
				rows = append(rows, [2]string{cl.Cert, "client certificate for identity " + cl.Name}, [2]string{cl.Key, "its private key (mode 0600)"})
			}
			width := 0
			for _, r := range rows {
				width = max(width, len(r[0]))
			}
			fmt.Fprintf(w, "wrote a development CA and certificates (for tests only: ca-key.pem signs certificates the servers trust):\n")
			for _, r := range rows {
				fmt.Fprintf(w, "  %-*s  %s\n", width, r[0], r[1])
			}
			fmt.Fprintf(w, "\nserve with:\n  treaty serve --tls-cert %s --tls-key %s --client-ca %s --ca %s\n",
				files.Server, files.ServerKey, files.CA, files.CA)
			for _, cl := range files.Clients {
				fmt.Fprintf(w, "call it as %s with:\n  treaty --cert %s --key %s --ca %s ...\n", cl.Name, cl.Cert, cl.Key, files.CA)
			}
			fmt.Fprintf(w, "\nServers that call each other authenticate as %s: give that identity the role service.\n", certs.ServiceName)
			fmt.Fprintf(w, "Identities other than the bootstrap admin must be created, with their roles, before their certificates get in.\n")
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "folder for the files (created 0700 if missing)")
	cmd.Flags().StringSliceVar(&opts.Hosts, "host", nil, "DNS name or IP address for the server certificate, repeatable (default localhost, 127.0.0.1, ::1)")
	cmd.Flags().StringSliceVar(&opts.Identities, "identity", nil, "identity name for a client certificate, repeatable (default admin)")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "overwrite existing files")
	return cmd
}

// devCertsJSON is what dev-certs -o json prints.
func devCertsJSON(f certs.DevFiles) any {
	type client struct {
		Name string `json:"name"`
		Cert string `json:"cert"`
		Key  string `json:"key"`
	}
	clients := []client{}
	for _, c := range f.Clients {
		clients = append(clients, client{c.Name, c.Cert, c.Key})
	}
	return struct {
		CA        string   `json:"ca"`
		CAKey     string   `json:"ca_key"`
		Server    string   `json:"server"`
		ServerKey string   `json:"server_key"`
		Service   string   `json:"service_identity"`
		Clients   []client `json:"clients"`
	}{f.CA, f.CAKey, f.Server, f.ServerKey, certs.ServiceName, clients}
}
