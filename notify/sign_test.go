package notify_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/notify"
)

func TestVerify(t *testing.T) {
	body := []byte(`{"id":"ntf_1","type":"test"}`)
	at := time.Unix(1_900_000_000, 0)
	good := notify.Sign(secret, at, body)
	other := notify.Sign([]byte("the-previous-secret-0123456789"), at, body)
	for _, tc := range []struct {
		name   string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"good", good, body, at, nil},
		{"within tolerance", good, body, at.Add(4 * time.Minute), nil},
		{"rotating: one of two matches", other + "," + strings.Split(good, ",")[1], body, at, nil},
		{"tampered body", good, []byte(`{"id":"ntf_1","type":"tesT"}`), at, notify.ErrBadSignature},
		{"another secret", other, body, at, notify.ErrBadSignature},
		{"timestamp moved", strings.Replace(good, "t=1900000000", "t=1900000001", 1), body, at, notify.ErrBadSignature},
		{"stale", good, body, at.Add(6 * time.Minute), notify.ErrStale},
		{"from the future", good, body, at.Add(-6 * time.Minute), notify.ErrStale},
		{"empty", "", body, at, notify.ErrMalformed},
		{"no signature", "t=1900000000", body, at, notify.ErrMalformed},
		{"no timestamp", strings.Split(good, ",")[1], body, at, notify.ErrMalformed},
		{"garbage", "t=x,v1=y", body, at, notify.ErrMalformed},
		{"no equals", "t1900000000,v1", body, at, notify.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := notify.Verify(secret, tc.header, tc.body, tc.now, 0); !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("t=1900000000,v1=00", []byte("{}"))
	f.Add(notify.Sign(secret, time.Unix(1_900_000_000, 0), []byte("{}")), []byte("{}"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		_ = notify.Verify(secret, header, body, time.Unix(1_900_000_000, 0), 0) // never panics
	})
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := notify.ReadSecret(write("ok", "  "+string(secret)+"\n"))
	if err != nil || string(got) != string(secret) {
		t.Errorf("ReadSecret = %q, %v", got, err)
	}
	for name, path := range map[string]string{
		"short":   write("short", "tooshort-secret\n"),
		"empty":   write("empty", "\n"),
		"missing": filepath.Join(dir, "missing"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := notify.ReadSecret(path)
			if err == nil {
				t.Fatal("ReadSecret succeeded")
			}
			if strings.Contains(err.Error(), "tooshort") {
				t.Errorf("the error quotes the file: %v", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.example.com":                                "https://hooks.example.com",
		"https://hooks.example.com/":                               "https://hooks.example.com",
		"https://hooks.example.com/services/T0/B0/" + webhookToken: "https://hooks.example.com/...",
		"https://hooks.example.com?token=" + webhookToken:          "https://hooks.example.com/...",
		"https://user:" + webhookToken + "@example.com":            "https://example.com/...",
		"::not a url": "(invalid URL)",
	} {
		if got := notify.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
