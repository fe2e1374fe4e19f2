package notify

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// Delivery is one notification's delivery to one endpoint, as the delivery log shows it.
type Delivery struct {
	// ID is the delivery id (header Treaty-Delivery).
	ID string
	// NotificationID, Type and PartnerID describe the notification delivered.
	NotificationID, Type, PartnerID string
	// Endpoint is the webhook, redacted to its scheme and host.
	Endpoint string
	// State is StatePending, StateDelivered or StateDead.
	State string
	// Attempts are every attempt made, oldest first; a delivery whose endpoint was removed from
	// the configuration ends with an entry saying so.
	Attempts []Attempt
	// Created is when the delivery was queued; NextAttempt when a pending one is tried next.
	Created, NextAttempt time.Time
}

// DeliveryQuery selects deliveries, newest first.
type DeliveryQuery struct {
	// State, if set, keeps only deliveries in that state.
	State string
	// PartnerID, if set, keeps only deliveries of notifications about that partner.
	PartnerID string
	// PageSize bounds the answer: 0 means 100, more than 1000 means 1000.
	PageSize int
	// PageToken continues a previous answer.
	PageToken string
}

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// ListDeliveries returns the delivery log, newest first, and a token for the next page ("" on
// the last).
func (n *Notifier) ListDeliveries(ctx context.Context, q DeliveryQuery) ([]Delivery, string, error) {
	if q.State != "" && !slices.Contains([]string{StatePending, StateDelivered, StateDead}, q.State) {
		return nil, "", fail.Invalidf("state", "state must be %s, %s or %s", StatePending, StateDelivered, StateDead)
	}
	switch {
	case q.PageSize < 0:
		return nil, "", fail.Invalidf("page_size", "page_size must not be negative")
	case q.PageSize == 0:
		q.PageSize = defaultPageSize
	case q.PageSize > maxPageSize:
		q.PageSize = maxPageSize
	}
	var start []byte
	if q.PageToken != "" {
		b, err := hex.DecodeString(q.PageToken)
		if err != nil || len(b) != 16 {
			return nil, "", fail.Invalidf("page_token", "page_token is not one this server issued")
		}
		start = b
	}
	var (
		out  []Delivery
		next string
	)
	err := n.st.View(func(tx store.Tx) error {
		return tx.Scan(bucketDeliveries, nil, start, func(k, v []byte) (bool, error) {
			if len(out) == q.PageSize {
				next = hex.EncodeToString(k)
				return false, nil
			}
			var d deliveryRecord
			if err := json.Unmarshal(v, &d); err != nil {
				return false, fmt.Errorf("decode delivery: %w", err)
			}
			if (q.State != "" && d.State != q.State) || (q.PartnerID != "" && d.PartnerID != q.PartnerID) {
				return true, nil
			}
			out = append(out, d.view())
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("notify: list deliveries: %w", err)
	}
	return out, next, nil
}

func (d deliveryRecord) view() Delivery {
	return Delivery{
		ID: d.ID, NotificationID: d.NotificationID, Type: d.Type, PartnerID: d.PartnerID, Endpoint: Redact(d.Endpoint),
		State: d.State, Attempts: d.Attempts, Created: d.Created, NextAttempt: d.NextAttempt,
	}
}

// SendTest raises a test notification to every endpoint, so an operator can check the receiver
// and its signature verification; it returns the notification id.
func (n *Notifier) SendTest(ctx context.Context, actor string) (string, error) {
	if actor == "" {
		actor = "an operator"
	}
	id, _, err := n.Enqueue(ctx, Event{
		Type: TypeTest, Summary: "Test notification from Treaty, requested by " + actor + ".",
		Details: map[string]string{"actor": actor},
	})
	return id, err
}

// Endpoints returns the configured webhooks, redacted.
func (n *Notifier) Endpoints() []string {
	out := make([]string, len(n.endpoints))
	for i, ep := range n.endpoints {
		out[i] = ep.redacted
	}
	return out
}
