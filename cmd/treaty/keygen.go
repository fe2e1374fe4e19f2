package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"
)

func (c *cli) keygenCmd() *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen --out FILE [--force]",
		Short: "Create an Ed25519 key pair for a workload (private key in FILE, public key in FILE.pub)",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(cmd, "out"); err != nil {
				return err
			}
			if !force {
				for _, f := range []string{out, out + ".pub"} {
					if _, err := os.Stat(f); err == nil {
						return fmt.Errorf("%s exists; use --force to overwrite it", f)
					}
				}
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			privDER, err := x509.MarshalPKCS8PrivateKey(priv)
			if err != nil {
				return err
			}
			pubDER, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				return err
			}
			if err := writeNew(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600, force); err != nil {
				return err
			}
			if err := writeNew(out+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644, force); err != nil {
				return err
			}
			if c.output == "json" {
				return c.printJSON(map[string]string{"private_key_file": out, "public_key_file": out + ".pub"})
			}
			fmt.Fprintf(c.stdout, "private key: %s (mode 0600; keep it secret)\npublic key:  %s (register it with 'treaty workload create')\n", out, out+".pub")
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file for the private key; the public key goes to FILE.pub")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing files")
	return cmd
}

// writeNew writes data to path with mode perm, refusing to replace an existing file unless force.
// The mode is set explicitly, whatever the umask or an existing file's mode.
func writeNew(path string, data []byte, perm os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; use --force to overwrite it", path)
	}
	if err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
