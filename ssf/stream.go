package ssf

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"time"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// Delivery is a stream's delivery configuration (SSF 1.0 section 6.1).
type Delivery struct {
	// Method is MethodPush or MethodPoll.
	Method string `json:"method"`
	// EndpointURL is where SETs are pushed (set by the receiver) or polled from (set by the
	// transmitter).
	EndpointURL string `json:"endpoint_url,omitempty"`
	// AuthorizationHeader, for push, is sent as the Authorization header with every SET.
	AuthorizationHeader string `json:"authorization_header,omitempty"`
}

// StreamConfig is a stream's configuration as the API shows it (SSF 1.0 section 8.1.1).
type StreamConfig struct {
	StreamID        string   `json:"stream_id"`
	Iss             string   `json:"iss"`
	Aud             string   `json:"aud"`
	EventsSupported []string `json:"events_supported"`
	EventsRequested []string `json:"events_requested,omitempty"`
	EventsDelivered []string `json:"events_delivered"`
	Delivery        Delivery `json:"delivery"`
	// MinVerificationInterval is in seconds; see Config.MinVerificationInterval.
	MinVerificationInterval int64  `json:"min_verification_interval,omitempty"`
	Description             string `json:"description,omitempty"`
}

// StreamStatus is a stream's status (SSF 1.0 section 8.1.2).
type StreamStatus struct {
	StreamID string `json:"stream_id"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
}

// StreamRequest is a create, update (PATCH) or replace (PUT) request. Pointer and nil fields
// tell a property that is absent from one that is empty.
type StreamRequest struct {
	StreamID        string          `json:"stream_id"`
	Delivery        *Delivery       `json:"delivery"`
	EventsRequested *[]string       `json:"events_requested"`
	Description     *string         `json:"description"`
	Iss             *string         `json:"iss"`
	Aud             json.RawMessage `json:"aud"`
	EventsSupported *[]string       `json:"events_supported"`
	EventsDelivered *[]string       `json:"events_delivered"`
}

// Bounds on what a receiver may store in a stream.
const (
	maxDescription = 1024
	maxEvents      = 32
	maxURI         = 2048
	maxAuthHeader  = 4096
	maxState       = 1024
	maxReason      = 1024
	streamIDLen    = 32 // hex of 16 random bytes
)

// ParseStreamRequest decodes a stream configuration request body. Unknown members are ignored,
// as SSF requires.
func ParseStreamRequest(body []byte) (StreamRequest, error) {
	var r StreamRequest
	if err := decodeObject(body, &r); err != nil {
		return StreamRequest{}, err
	}
	return r, nil
}

// decodeObject decodes one JSON object, refusing anything else.
func decodeObject(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return fail.Invalidf("body", "the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return fail.Invalidf("body", "the request body is not a valid stream request: %v", err)
	}
	if dec.More() {
		return fail.Invalidf("body", "the request body must hold one JSON object and nothing after it")
	}
	return nil
}

// stored is a stream as the store keeps it.
type stored struct {
	Config  StreamConfig `json:"config"`
	Status  string       `json:"status"`
	Reason  string       `json:"reason,omitempty"`
	Next    uint64       `json:"next"` // the queue position of the next SET
	Created time.Time    `json:"created"`
}

func getStream(tx store.Tx, id string) (*stored, error) {
	raw := tx.Get(bucketStreams, []byte(id))
	if raw == nil {
		return nil, fail.NotFoundf("there is no stream %q", id)
	}
	s := new(stored)
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("stream %s: %w", id, err)
	}
	return s, nil
}

func putStream(tx store.Tx, s *stored) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return tx.Put(bucketStreams, []byte(s.Config.StreamID), raw)
}

func allStreams(tx store.Tx) ([]*stored, error) {
	var out []*stored
	err := tx.Scan(bucketStreams, nil, nil, func(k, v []byte) (bool, error) {
		s := new(stored)
		if err := json.Unmarshal(v, s); err != nil {
			return false, fmt.Errorf("stream %s: %w", k, err)
		}
		out = append(out, s)
		return true, nil
	})
	return out, err
}

// CheckStreamID validates a stream id from a request.
func CheckStreamID(id string) error {
	if id == "" {
		return fail.Invalidf("stream_id", "stream_id is required")
	}
	if len(id) != streamIDLen {
		return fail.NotFoundf("there is no stream %q", id)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return fail.NotFoundf("there is no stream %q", id)
	}
	return nil
}

// CreateStream creates a stream from a receiver's request. Without a delivery the stream is
// polled (SSF 1.0 section 8.1.1.1). The stream is enabled and receives the SETs of every feed
// event after the transmitter's position in the feed at creation.
func (t *Transmitter) CreateStream(ctx context.Context, r StreamRequest) (StreamConfig, error) {
	b := make([]byte, streamIDLen/2)
	rand.Read(b)
	id := hex.EncodeToString(b)
	aud := t.cfg.Audience
	if aud == "" {
		aud = "urn:treaty:ssf:stream:" + id
	}
	cfg := StreamConfig{StreamID: id, Iss: t.cfg.Issuer, Aud: aud, EventsSupported: EventsSupported,
		MinVerificationInterval: int64((t.cfg.MinVerificationInterval + time.Second - 1) / time.Second)}
	if err := t.applyReceiverFields(&cfg, r, true); err != nil {
		return StreamConfig{}, err
	}
	s := &stored{Config: cfg, Status: StatusEnabled, Created: t.cfg.Now().UTC()}
	if err := t.st.Update(func(tx store.Tx) error { return putStream(tx, s) }); err != nil {
		return StreamConfig{}, fmt.Errorf("create stream: %w", err)
	}
	t.log.Info("ssf stream created", "stream_id", id, "method", cfg.Delivery.Method, "events", cfg.EventsDelivered)
	t.wake()
	return cfg, nil
}

// applyReceiverFields sets the receiver-supplied properties of cfg from r. With replace, absent
// properties are reset (create and PUT); without, they are left alone (PATCH).
func (t *Transmitter) applyReceiverFields(cfg *StreamConfig, r StreamRequest, replace bool) error {
	switch {
	case r.Delivery != nil:
		d, err := t.checkDelivery(cfg.StreamID, *r.Delivery)
		if err != nil {
			return err
		}
		cfg.Delivery = d
	case replace:
		cfg.Delivery = Delivery{Method: MethodPoll, EndpointURL: t.pollURL(cfg.StreamID)}
	}
	switch {
	case r.EventsRequested != nil:
		if len(*r.EventsRequested) > maxEvents {
			return fail.Invalidf("events_requested", "events_requested lists more than %d event types", maxEvents)
		}
		for _, e := range *r.EventsRequested {
			if len(e) > maxURI {
				return fail.Invalidf("events_requested", "an event type is longer than %d bytes", maxURI)
			}
		}
		cfg.EventsRequested = slices.Clone(*r.EventsRequested)
	case replace:
		cfg.EventsRequested = nil
	}
	switch {
	case r.Description != nil:
		if len(*r.Description) > maxDescription {
			return fail.Invalidf("description", "description is longer than %d bytes", maxDescription)
		}
		cfg.Description = *r.Description
	case replace:
		cfg.Description = ""
	}
	cfg.EventsDelivered = delivered(cfg.EventsRequested)
	return nil
}

// delivered is the intersection of the supported and requested events; a receiver that requests
// nothing in particular gets every supported event.
func delivered(requested []string) []string {
	if requested == nil {
		return slices.Clone(EventsSupported)
	}
	out := []string{}
	for _, e := range EventsSupported {
		if slices.Contains(requested, e) {
			out = append(out, e)
		}
	}
	return out
}

// checkDelivery validates a receiver's delivery configuration.
func (t *Transmitter) checkDelivery(id string, d Delivery) (Delivery, error) {
	switch d.Method {
	case MethodPoll:
		// The transmitter supplies the poll endpoint; a receiver echoing it back is fine.
		if d.EndpointURL != "" && d.EndpointURL != t.pollURL(id) {
			return Delivery{}, fail.Invalidf("delivery.endpoint_url", "the poll endpoint_url is supplied by the transmitter; omit it")
		}
		return Delivery{Method: MethodPoll, EndpointURL: t.pollURL(id)}, nil
	case MethodPush:
		if err := checkPushURL(d.EndpointURL); err != nil {
			return Delivery{}, err
		}
		if len(d.AuthorizationHeader) > maxAuthHeader {
			return Delivery{}, fail.Invalidf("delivery.authorization_header", "authorization_header is longer than %d bytes", maxAuthHeader)
		}
		for _, c := range d.AuthorizationHeader {
			if c < 0x20 || c == 0x7f {
				return Delivery{}, fail.Invalidf("delivery.authorization_header", "authorization_header holds a control character")
			}
		}
		return Delivery{Method: MethodPush, EndpointURL: d.EndpointURL, AuthorizationHeader: d.AuthorizationHeader}, nil
	case "":
		return Delivery{}, fail.Invalidf("delivery.method", "delivery.method is required: %s (push) or %s (poll)", MethodPush, MethodPoll)
	}
	return Delivery{}, fail.Invalidf("delivery.method", "delivery method %q is not supported: use %s (push) or %s (poll)", d.Method, MethodPush, MethodPoll)
}

// checkPushURL requires an absolute https URL, or http to a loopback host (a receiver on the
// same machine, as in development and tests).
func checkPushURL(raw string) error {
	if raw == "" {
		return fail.Invalidf("delivery.endpoint_url", "delivery.endpoint_url is required for push delivery")
	}
	if len(raw) > maxURI {
		return fail.Invalidf("delivery.endpoint_url", "delivery.endpoint_url is longer than %d bytes", maxURI)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Fragment != "" || u.User != nil {
		return fail.Invalidf("delivery.endpoint_url", "delivery.endpoint_url must be an absolute https URL without credentials or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
	}
	return fail.Invalidf("delivery.endpoint_url", "delivery.endpoint_url must use https (http only to a loopback address)")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Stream returns a stream's configuration.
func (t *Transmitter) Stream(ctx context.Context, id string) (StreamConfig, error) {
	if err := CheckStreamID(id); err != nil {
		return StreamConfig{}, err
	}
	var s *stored
	err := t.st.View(func(tx store.Tx) (err error) { s, err = getStream(tx, id); return err })
	if err != nil {
		return StreamConfig{}, err
	}
	return s.Config, nil
}

// Streams returns every stream's configuration, in stream id order.
func (t *Transmitter) Streams(ctx context.Context) ([]StreamConfig, error) {
	var all []*stored
	if err := t.st.View(func(tx store.Tx) (err error) { all, err = allStreams(tx); return err }); err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	out := make([]StreamConfig, 0, len(all))
	for _, s := range all {
		out = append(out, s.Config)
	}
	return out, nil
}

// UpdateStream applies a PATCH (replace false) or PUT (replace true) to a stream. The stream's
// queued SETs stay queued, and are delivered by the new delivery method.
func (t *Transmitter) UpdateStream(ctx context.Context, r StreamRequest, replace bool) (StreamConfig, error) {
	if err := CheckStreamID(r.StreamID); err != nil {
		return StreamConfig{}, err
	}
	var cfg StreamConfig
	err := t.st.Update(func(tx store.Tx) error {
		s, err := getStream(tx, r.StreamID)
		if err != nil {
			return err
		}
		if err := checkTransmitterFields(s.Config, r); err != nil {
			return err
		}
		if err := t.applyReceiverFields(&s.Config, r, replace); err != nil {
			return err
		}
		cfg = s.Config
		return putStream(tx, s)
	})
	if err != nil {
		return StreamConfig{}, err
	}
	t.wake()
	return cfg, nil
}

// checkTransmitterFields enforces that transmitter-supplied properties in an update match.
func checkTransmitterFields(cur StreamConfig, r StreamRequest) error {
	if r.Iss != nil && *r.Iss != cur.Iss {
		return fail.Invalidf("iss", "iss is supplied by the transmitter and cannot change")
	}
	if len(r.Aud) > 0 && !audMatches(r.Aud, cur.Aud) {
		return fail.Invalidf("aud", "aud is supplied by the transmitter and cannot change")
	}
	if r.EventsSupported != nil && !sameSet(*r.EventsSupported, cur.EventsSupported) {
		return fail.Invalidf("events_supported", "events_supported is supplied by the transmitter and cannot change")
	}
	if r.EventsDelivered != nil && !sameSet(*r.EventsDelivered, cur.EventsDelivered) {
		return fail.Invalidf("events_delivered", "events_delivered does not match the stream's current value")
	}
	return nil
}

func audMatches(raw json.RawMessage, aud string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == aud
	}
	var many []string
	return json.Unmarshal(raw, &many) == nil && len(many) == 1 && many[0] == aud
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// DeleteStream deletes a stream and every SET queued for it.
func (t *Transmitter) DeleteStream(ctx context.Context, id string) error {
	if err := CheckStreamID(id); err != nil {
		return err
	}
	err := t.st.Update(func(tx store.Tx) error {
		if _, err := getStream(tx, id); err != nil {
			return err
		}
		if err := clearQueue(tx, id); err != nil {
			return err
		}
		return tx.Delete(bucketStreams, []byte(id))
	})
	if err != nil {
		return err
	}
	t.log.Info("ssf stream deleted", "stream_id", id)
	t.wake()
	return nil
}

// Status returns a stream's status.
func (t *Transmitter) Status(ctx context.Context, id string) (StreamStatus, error) {
	if err := CheckStreamID(id); err != nil {
		return StreamStatus{}, err
	}
	var s *stored
	if err := t.st.View(func(tx store.Tx) (err error) { s, err = getStream(tx, id); return err }); err != nil {
		return StreamStatus{}, err
	}
	return StreamStatus{StreamID: id, Status: s.Status, Reason: s.Reason}, nil
}

// ParseStatusRequest decodes an update stream status request body.
func ParseStatusRequest(body []byte) (StreamStatus, error) {
	var r StreamStatus
	if err := decodeObject(body, &r); err != nil {
		return StreamStatus{}, err
	}
	return r, nil
}

// SetStatus changes a stream's status. A paused stream keeps queueing SETs and delivers them
// when enabled again; disabling a stream drops its queue and queues nothing until it is enabled.
func (t *Transmitter) SetStatus(ctx context.Context, r StreamStatus) (StreamStatus, error) {
	if err := CheckStreamID(r.StreamID); err != nil {
		return StreamStatus{}, err
	}
	switch r.Status {
	case StatusEnabled, StatusPaused, StatusDisabled:
	case "":
		return StreamStatus{}, fail.Invalidf("status", "status is required: enabled, paused or disabled")
	default:
		return StreamStatus{}, fail.Invalidf("status", "status %q is not one of enabled, paused, disabled", r.Status)
	}
	if len(r.Reason) > maxReason {
		return StreamStatus{}, fail.Invalidf("reason", "reason is longer than %d bytes", maxReason)
	}
	err := t.st.Update(func(tx store.Tx) error {
		s, err := getStream(tx, r.StreamID)
		if err != nil {
			return err
		}
		if r.Status == StatusDisabled && s.Status != StatusDisabled {
			if err := clearQueue(tx, r.StreamID); err != nil {
				return err
			}
		}
		s.Status, s.Reason = r.Status, r.Reason
		return putStream(tx, s)
	})
	if err != nil {
		return StreamStatus{}, err
	}
	t.log.Info("ssf stream status changed", "stream_id", r.StreamID, "status", r.Status)
	t.wake()
	return r, nil
}
