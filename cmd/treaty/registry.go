package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// registryView makes one registry call with the command's deadline and renders the response:
// toView gives its records' rows for -o csv, and for the default table when show is nil.
func registryView[R proto.Message](c *cli, cmd *cobra.Command, call func(context.Context, treatyv1.RegistryServiceClient) (R, error),
	toView func(R) view, show func(R)) error {
	conn, err := c.conn("registry")
	if err != nil {
		return err
	}
	ctx, cancel := c.ctx(cmd)
	defer cancel()
	resp, err := call(ctx, treatyv1.NewRegistryServiceClient(conn))
	if err != nil {
		return err
	}
	v := toView(resp)
	var text func()
	if show != nil {
		text = func() { show(resp) }
	}
	return c.render(resp, v, text)
}

// registryGetCmd builds `KIND get ID`.
func registryGetCmd[R proto.Message](c *cli, kind string, get func(context.Context, treatyv1.RegistryServiceClient, string) (R, error),
	toView func(R) view, show func(R)) *cobra.Command {
	return recordFormats(&cobra.Command{
		Use:   "get ID",
		Short: "Show a " + kind,
		Args:  args(1, "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkIDArg(kind, a[0]); err != nil {
				return err
			}
			return registryView(c, cmd, func(ctx context.Context, rc treatyv1.RegistryServiceClient) (R, error) {
				return get(ctx, rc, a[0])
			}, toView, show)
		},
	})
}

func checkIDFlag(flag, id string) error {
	if !fail.ValidID(id) {
		return usagef("--%s %q is not a valid id: use 1-63 lower-case letters, digits and dashes, starting with a letter or digit", flag, id)
	}
	return nil
}

func checkIDArg(kind, id string) error {
	if !fail.ValidID(id) {
		return usagef("%s id %q is not valid: use 1-63 lower-case letters, digits and dashes, starting with a letter or digit", kind, id)
	}
	return nil
}

// withSequence appends the feed sequence a write landed at to a record's fields.
func withSequence(kv []string, seq uint64) []string {
	if seq != 0 {
		kv = append(kv, "sequence", fmt.Sprint(seq))
	}
	return kv
}

// upper spells a lower-case flag value as its enum suffix: "offboarding" → "OFFBOARDING".
func upper(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }
