package notify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Headers every delivery carries.
const (
	// HeaderSignature is "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
	HeaderSignature = "Treaty-Signature"
	// HeaderDelivery is the delivery id: the same on every retry of one delivery, so a receiver
	// can drop a redelivery.
	HeaderDelivery = "Treaty-Delivery"
	// HeaderEvent is the notification's type.
	HeaderEvent = "Treaty-Event"
)

// MinSecretBytes is the shortest signing secret accepted.
const MinSecretBytes = 16

// DefaultTolerance is how far a signature's timestamp may be from a receiver's clock by default.
const DefaultTolerance = 5 * time.Minute

// ReadSecret reads the signing secret from a file: its content without surrounding whitespace,
// at least MinSecretBytes long. Errors never quote the content.
func ReadSecret(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	secret := bytes.TrimSpace(raw)
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("webhook secret in %s must be at least %d bytes", path, MinSecretBytes)
	}
	return secret, nil
}

// Sign returns the Treaty-Signature header value for body sent at t. The timestamp is signed
// with the body, so a captured delivery cannot be replayed later than a receiver's tolerance.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte("."))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// Errors Verify returns.
var (
	ErrBadSignature = errors.New("notify: the signature does not match the body")
	ErrStale        = errors.New("notify: the signature's timestamp is outside the tolerance")
	ErrMalformed    = errors.New("notify: the signature header is malformed")
)

// Verify checks a Treaty-Signature header against body, as a receiver does: one of its v1
// signatures (several appear while a secret rotates) must match, and its timestamp must be
// within tolerance of now (DefaultTolerance when zero).
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrMalformed
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrMalformed
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	want := []byte(mac(secret, ts, body))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), want) {
			return nil
		}
	}
	return ErrBadSignature
}
