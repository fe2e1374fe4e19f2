package ssf

import (
	"encoding/json"
	"net/url"
	"testing"
)

// FuzzParseStreamRequest feeds arbitrary bodies through the parsing and validation a create,
// PATCH or PUT request goes through. Whatever is accepted must be a deliverable configuration.
func FuzzParseStreamRequest(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"delivery":{"method":"urn:ietf:rfc:8935","endpoint_url":"https://r.example.com/e","authorization_header":"Bearer x"}}`,
		`{"delivery":{"method":"urn:ietf:rfc:8936"},"events_requested":["https://schemas.openid.net/secevent/caep/event-type/session-revoked"],"description":"d"}`,
		`{"stream_id":"00112233445566778899aabbccddeeff","aud":["a","b"],"iss":"https://t.example.com","events_delivered":[]}`,
		`{"delivery":{"method":"urn:ietf:rfc:8935","endpoint_url":"http://127.0.0.1:1/e"}}`,
		`[1,2]`, `{"delivery":null}`, `{"events_requested":null}`,
	} {
		f.Add([]byte(seed))
	}
	tr := &Transmitter{cfg: Config{Issuer: "https://t.example.com"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseStreamRequest(body)
		if err != nil {
			return
		}
		cfg := StreamConfig{StreamID: "00112233445566778899aabbccddeeff", Iss: tr.cfg.Issuer, Aud: "urn:a", EventsSupported: EventsSupported}
		_ = checkTransmitterFields(cfg, r)
		for _, replace := range []bool{true, false} {
			c := cfg
			if err := tr.applyReceiverFields(&c, r, replace); err != nil {
				continue
			}
			switch c.Delivery.Method {
			case MethodPoll:
				if c.Delivery.EndpointURL != tr.pollURL(c.StreamID) {
					t.Fatalf("poll stream with endpoint %q", c.Delivery.EndpointURL)
				}
			case MethodPush:
				if _, err := url.Parse(c.Delivery.EndpointURL); err != nil || checkPushURL(c.Delivery.EndpointURL) != nil {
					t.Fatalf("accepted push endpoint %q", c.Delivery.EndpointURL)
				}
			default:
				if replace {
					t.Fatalf("accepted delivery method %q", c.Delivery.Method)
				}
			}
			if len(c.Description) > maxDescription || len(c.EventsRequested) > maxEvents {
				t.Fatalf("accepted an oversized configuration")
			}
			if _, err := json.Marshal(c); err != nil {
				t.Fatalf("accepted configuration does not marshal: %v", err)
			}
		}
	})
}

// FuzzParsePollRequest checks that whatever a poll body holds, an accepted request is bounded.
func FuzzParsePollRequest(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `{"ack":["a","b"],"maxEvents":10,"returnImmediately":true}`,
		`{"maxEvents":0}`, `{"setErrs":{"j1":{"err":"invalid_key","description":"d"}}}`,
		`{"maxEvents":-1}`, `{"maxEvents":1e3}`, `{"ack":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParsePollRequest(body)
		if err != nil {
			return
		}
		if r.MaxEvents != nil && (*r.MaxEvents < 0 || *r.MaxEvents > MaxPollEvents) {
			t.Fatalf("accepted maxEvents %d", *r.MaxEvents)
		}
		if len(r.Ack)+len(r.SetErrs) > maxAcks {
			t.Fatalf("accepted %d acks", len(r.Ack)+len(r.SetErrs))
		}
		for _, j := range r.Ack {
			if len(j) > maxJTI {
				t.Fatalf("accepted a jti of %d bytes", len(j))
			}
		}
	})
}

// FuzzParseStatusRequest checks the status and verification bodies never panic.
func FuzzParseStatusRequest(f *testing.F) {
	for _, seed := range []string{`{"stream_id":"x","status":"paused","reason":"r"}`, `{"stream_id":"x","state":"s"}`, `{`, `"x"`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _ = ParseStatusRequest(body)
		_, _, _ = ParseVerifyRequest(body)
	})
}
