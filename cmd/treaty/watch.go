package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

func (c *cli) watchCmd() *cobra.Command {
	var from uint64
	cmd := &cobra.Command{
		Use:   "watch [--from N]",
		Short: "Follow the revocation feed: live events, or every event from sequence N on",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := c.conn("revoker")
			if err != nil {
				return err
			}
			client := treatyv1.NewRevocationServiceClient(conn)
			ctx := cmd.Context()
			after := uint64(0)
			if cmd.Flags().Changed("from") {
				if from > 0 {
					after = from - 1
				}
			} else if after, err = head(ctx, client, c.timeout); err != nil {
				return err
			}
			stream, err := client.Subscribe(ctx, &treatyv1.SubscribeRequest{AfterSequence: after})
			if err != nil {
				return err
			}
			for connected := false; ; {
				m, err := stream.Recv()
				if errors.Is(err, io.EOF) || ctx.Err() != nil {
					return nil
				}
				if err != nil {
					return err
				}
				if hb := m.GetHeartbeat(); hb != nil && !connected {
					connected = true
					fmt.Fprintf(c.stderr, "treaty: watching the feed after sequence %d (head %d, epoch %s)\n", after, hb.GetHeadSequence(), hb.GetEpoch())
				}
				if ev := m.GetEvent(); ev != nil {
					if err := c.printEvent(ev); err != nil {
						return err
					}
				}
			}
		},
	}
	cmd.Flags().Uint64Var(&from, "from", 0, "print every event from this sequence (inclusive), then follow")
	return cmd
}

// head learns the feed's head from the first heartbeat of a subscription.
func head(ctx context.Context, client treatyv1.RevocationServiceClient, timeout time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stream, err := client.Subscribe(ctx, &treatyv1.SubscribeRequest{AfterSequence: 0})
	if err != nil {
		return 0, err
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return 0, err
		}
		if hb := m.GetHeartbeat(); hb != nil {
			return hb.GetHeadSequence(), nil
		}
	}
}

func (c *cli) printEvent(ev *treatyv1.Event) error {
	kind, target := feed.Describe(ev)
	if c.output == "json" {
		return c.printJSON(map[string]any{
			"sequence": ev.GetSequence(), "kind": kind, "target": target, "reason": ev.GetReason(),
			"actor": ev.GetActor(), "time": ts(ev.GetTime()),
		})
	}
	_, err := fmt.Fprintf(c.stdout, "%d\t%s\t%s\t%s\t%q\tby %s\n", ev.GetSequence(), ts(ev.GetTime()), kind, target, ev.GetReason(), ev.GetActor())
	return err
}
