package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/backup"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/services"
	"github.com/treaty-dev/treaty/store"
)

func (c *cli) backupCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Copy every store of a running server into one file on the server's machine, while it serves",
		Long: `Copy every store of the running server (--server) into one file, consistently and without
stopping it. The file is written by the server, on its own filesystem, with mode 0600: it holds the
issuer's signing keys, so it never travels over the network. FILE must not exist. In a split
deployment, back up each process (--server ADDR). Restore with "treaty restore-backup".`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "out"); err != nil {
				return err
			}
			abs, err := filepath.Abs(out)
			if err != nil {
				return usagef("--out %q: %v", out, err)
			}
			conn, err := c.conn("admin")
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := treatyv1.NewAdminServiceClient(conn).Backup(ctx, &treatyv1.BackupRequest{OutPath: abs})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return c.printProto(resp)
			}
			fmt.Fprintf(c.stdout, "backup written to %s\n", resp.GetPath())
			for _, s := range resp.GetStores() {
				fmt.Fprintf(c.stdout, "  %-12s %d bytes\n", s.GetName(), s.GetSizeBytes())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the backup file to create, on the server's machine")
	return cmd
}

func (c *cli) restoreBackupCmd() *cobra.Command {
	var from, data string
	var moveAside bool
	cmd := &cobra.Command{
		Use:   "restore-backup --from FILE --data DIR [--move-aside]",
		Short: "Restore a backup into a data folder (the server must be stopped)",
		Long: `Check a backup file against its manifest and unpack it into a data folder, then give the
revocation log a new epoch. Run it with the server stopped, then start "treaty serve --data DIR".

The restored log is older than what its subscribers have seen, so it gets a new epoch: PDPs and
other subscribers see the log was replaced, keep every revocation they hold, and resync from a
snapshot. Tokens issued before the restore are denied (reason epoch_mismatch); partners fetch new
ones. Store files already in DIR are refused unless --move-aside moves them into
DIR/pre-restore-TIME (never deleted).`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "from", "data"); err != nil {
				return err
			}
			m, err := backup.Restore(from, data, moveAside, time.Now())
			if err != nil {
				return err
			}
			var old, epoch string
			for _, e := range m.Stores {
				if e.Name != services.Revoker {
					continue
				}
				st, err := store.OpenBolt(filepath.Join(data, e.Name+".db"), revoker.Schema)
				if err != nil {
					return err
				}
				old, epoch, err = revoker.Reepoch(st)
				if cerr := st.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
			}
			if c.output == "json" {
				return c.printJSON(map[string]any{"created": m.Created, "stores": m.Stores, "old_epoch": old, "epoch": epoch})
			}
			fmt.Fprintf(c.stdout, "restored the backup of %s into %s\n", m.Created.Format(time.RFC3339), data)
			for _, e := range m.Stores {
				fmt.Fprintf(c.stdout, "  %-12s %d bytes\n", e.Name, e.Size)
			}
			if epoch != "" {
				fmt.Fprintf(c.stdout, "the revocation log's epoch is now %s (was %s): subscribers will resync\n", epoch, old)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the backup file")
	cmd.Flags().StringVar(&data, "data", "", "the data folder to restore into")
	cmd.Flags().BoolVar(&moveAside, "move-aside", false, "move store files already in DIR into DIR/pre-restore-TIME")
	return cmd
}

func (c *cli) newEpochCmd() *cobra.Command {
	sc := services.StoreConfig{Backend: services.BackendEtcd}
	cmd := &cobra.Command{
		Use:   "new-epoch --etcd-endpoints URLS [--etcd-prefix P]",
		Short: "Give the revocation log in etcd a new epoch after the cluster was restored from a snapshot",
		Long: `Give the revocation log kept in an etcd cluster (serve --store etcd) a new epoch. Run it after
restoring the cluster from a snapshot (etcdctl snapshot save, etcdutl snapshot restore), with every
revoker replica stopped, then start them again.

The restored log is older than what its subscribers have seen, so, as after "treaty
restore-backup", PDPs and other subscribers see the log was replaced, keep every revocation they
hold, and resync from a snapshot. Tokens issued before the restore are denied (reason
epoch_mismatch); partners fetch new ones.`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "etcd-endpoints"); err != nil {
				return err
			}
			old, epoch, err := services.NewEpoch(sc)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return c.printJSON(map[string]any{"old_epoch": old, "epoch": epoch})
			}
			fmt.Fprintf(c.stdout, "the revocation log's epoch is now %s (was %s): subscribers will resync\n", epoch, old)
			return nil
		},
	}
	etcdFlags(cmd.Flags(), &sc)
	return cmd
}
