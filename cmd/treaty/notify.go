package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
)

// The webhook notifier runs beside the registry, so these commands talk to the registry's address.

func (c *cli) notifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Webhook notifications: read the delivery log, send a test notification",
		Long: `Treaty tells partners' owners and security contacts, by signed webhooks (treaty serve
--webhook-url), of contract ends approaching, kill-switch events on their partner, offboarding
progress and new high-severity findings. These commands read the delivery log, send a test, and
queue dead deliveries again once a receiver is fixed.`,
		Args: args(0, ""),
	}
	cmd.AddCommand(c.notifyDeliveriesCmd(), c.notifyTestCmd(), c.notifyRetryCmd())
	return cmd
}

var deliveryStates = map[string]treatyv1.DeliveryState{
	"pending":   treatyv1.DeliveryState_DELIVERY_STATE_PENDING,
	"delivered": treatyv1.DeliveryState_DELIVERY_STATE_DELIVERED,
	"dead":      treatyv1.DeliveryState_DELIVERY_STATE_DEAD,
}

func (c *cli) notifyDeliveriesCmd() *cobra.Command {
	var state, partner string
	var limit int
	cmd := &cobra.Command{
		Use:   "deliveries [--state pending|delivered|dead] [--partner ID] [--limit N]",
		Short: "List webhook deliveries, newest first, with their attempts",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &treatyv1.ListDeliveriesRequest{PartnerId: partner}
			if state != "" {
				st, ok := deliveryStates[state]
				if !ok {
					return usagef("--state must be pending, delivered or dead, not %q", state)
				}
				req.State = st
			}
			if partner != "" {
				if err := checkIDArg("partner", partner); err != nil {
					return err
				}
			}
			if limit < 0 {
				return usagef("--limit must not be negative (0 lists every match)")
			}
			conn, err := c.conn("registry")
			if err != nil {
				return err
			}
			client := treatyv1.NewNotifyServiceClient(conn)
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			var all []*treatyv1.WebhookDelivery
			for {
				req.PageSize = 1000
				if limit > 0 {
					req.PageSize = int32(min(limit-len(all), 1000))
				}
				resp, err := client.ListDeliveries(ctx, req)
				if err != nil {
					return err
				}
				all = append(all, resp.GetDeliveries()...)
				if resp.GetNextPageToken() == "" || (limit > 0 && len(all) >= limit) {
					break
				}
				req.PageToken = resp.GetNextPageToken()
			}
			v := view{header: []string{"queued", "type", "partner", "endpoint", "state", "attempts", "last", "delivery", "notification"},
				brief: []string{"queued", "type", "partner", "endpoint", "state", "attempts", "last", "delivery"}}
			for _, d := range all {
				v.rows = append(v.rows, []string{
					ts(d.GetCreateTime()), d.GetType(), orDash(d.GetPartnerId()), d.GetEndpoint(),
					strings.TrimPrefix(strings.ToLower(d.GetState().String()), "delivery_state_"),
					fmt.Sprint(len(d.GetAttempts())), lastAttempt(d), d.GetDeliveryId(), d.GetNotificationId(),
				})
			}
			return c.render(&treatyv1.ListDeliveriesResponse{Deliveries: all}, v, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "only deliveries in this state: pending, delivered or dead")
	f.StringVar(&partner, "partner", "", "only deliveries of notifications about this partner")
	f.IntVar(&limit, "limit", 100, "the most deliveries to list (0 lists every one)")
	return recordFormats(cmd)
}

// lastAttempt sums up a delivery's last attempt: its status code or error, and for a pending
// delivery when it is tried next.
func lastAttempt(d *treatyv1.WebhookDelivery) string {
	a := d.GetAttempts()
	out := "-"
	if len(a) > 0 {
		last := a[len(a)-1]
		switch {
		case last.GetError() != "":
			out = last.GetError()
		default:
			out = fmt.Sprint(last.GetStatusCode())
		}
	}
	if next := d.GetNextAttemptTime(); next != nil && len(a) > 0 {
		out += "; next " + next.AsTime().UTC().Format(time.RFC3339)
	}
	return out
}

func (c *cli) notifyTestCmd() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "test [--wait]",
		Short: "Send a test notification to every configured webhook",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := c.conn("registry")
			if err != nil {
				return err
			}
			client := treatyv1.NewNotifyServiceClient(conn)
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := client.SendTest(ctx, &treatyv1.SendTestRequest{Actor: c.actor})
			if err != nil {
				return err
			}
			if len(resp.GetEndpoints()) == 0 {
				return fmt.Errorf("no webhook is configured: start treaty serve with --webhook-url and --webhook-secret-file")
			}
			var settled []*treatyv1.WebhookDelivery
			if wait {
				if settled, err = c.waitDeliveries(cmd, client, resp.GetNotificationId(), len(resp.GetEndpoints())); err != nil {
					return err
				}
			}
			if c.output == "json" {
				return c.printProto(&treatyv1.ListDeliveriesResponse{Deliveries: settled, Endpoints: resp.GetEndpoints()})
			}
			fmt.Fprintf(c.stdout, "notification %s queued for %s\n", resp.GetNotificationId(), strings.Join(resp.GetEndpoints(), ", "))
			for _, d := range settled {
				fmt.Fprintf(c.stdout, "%s: %s after %d attempt(s) (%s)\n", d.GetEndpoint(),
					strings.TrimPrefix(strings.ToLower(d.GetState().String()), "delivery_state_"), len(d.GetAttempts()), lastAttempt(d))
			}
			for _, d := range settled {
				if d.GetState() != treatyv1.DeliveryState_DELIVERY_STATE_DELIVERED {
					return &exitErr{code: exitError, err: fmt.Errorf("the test notification was not delivered to %s", d.GetEndpoint())}
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait (up to --timeout) until every delivery is delivered or dead, and fail unless all were delivered")
	return cmd
}

// waitDeliveries polls the delivery log until the n deliveries of notification id are settled.
func (c *cli) waitDeliveries(cmd *cobra.Command, client treatyv1.NotifyServiceClient, id string, n int) ([]*treatyv1.WebhookDelivery, error) {
	ctx, cancel := c.ctx(cmd)
	defer cancel()
	for {
		// The test notification is the newest, or nearly: its deliveries are on the first page.
		resp, err := client.ListDeliveries(ctx, &treatyv1.ListDeliveriesRequest{PageSize: 1000})
		if err != nil {
			return nil, err
		}
		var mine []*treatyv1.WebhookDelivery
		settled := 0
		for _, d := range resp.GetDeliveries() {
			if d.GetNotificationId() == id {
				mine = append(mine, d)
				if d.GetState() != treatyv1.DeliveryState_DELIVERY_STATE_PENDING {
					settled++
				}
			}
		}
		if settled == n {
			return mine, nil
		}
		select {
		case <-ctx.Done():
			return mine, fmt.Errorf("the test notification is still pending after %s; see treaty notify deliveries", c.timeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *cli) notifyRetryCmd() *cobra.Command {
	var allDead bool
	cmd := &cobra.Command{
		Use:   "retry (DELIVERY_ID | --all-dead)",
		Short: "Queue dead deliveries again, for a new round of attempts (once the receiver is fixed)",
		Args: func(cmd *cobra.Command, a []string) error {
			if allDead == (len(a) == 1) || len(a) > 1 {
				return usagef("usage: %s (DELIVERY_ID | --all-dead)", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			req := &treatyv1.RetryDeliveriesRequest{AllDead: allDead}
			if len(a) == 1 {
				req.DeliveryId = a[0]
			}
			conn, err := c.conn("registry")
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd)
			defer cancel()
			resp, err := treatyv1.NewNotifyServiceClient(conn).RetryDeliveries(ctx, req)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return c.printProto(resp)
			}
			fmt.Fprintf(c.stdout, "%d dead deliveries queued again\n", resp.GetRetried())
			return nil
		},
	}
	cmd.Flags().BoolVar(&allDead, "all-dead", false, "queue every dead delivery again")
	return cmd
}
