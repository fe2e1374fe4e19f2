package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWriteDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	files, err := WriteDev(dir, DevOptions{Hosts: []string{"treaty.internal", "10.0.0.7"}, Identities: []string{"admin", "pdp-1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := DevFiles{
		CA: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca-key.pem"),
		Server: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		Clients: []DevClient{
			{"admin", filepath.Join(dir, "admin.pem"), filepath.Join(dir, "admin-key.pem")},
			{"pdp-1", filepath.Join(dir, "pdp-1.pem"), filepath.Join(dir, "pdp-1-key.pem")},
		},
	}
	if !slices.Equal(files.Clients, want.Clients) || files.CA != want.CA || files.CAKey != want.CAKey ||
		files.Server != want.Server || files.ServerKey != want.ServerKey {
		t.Fatalf("WriteDev = %+v, want %+v", files, want)
	}

	t.Run("modes", func(t *testing.T) {
		for file, mode := range map[string]os.FileMode{
			dir: 0o700 | os.ModeDir, files.CA: 0o644, files.CAKey: 0o600, files.Server: 0o644, files.ServerKey: 0o600,
			files.Clients[0].Cert: 0o644, files.Clients[0].Key: 0o600, files.Clients[1].Cert: 0o644, files.Clients[1].Key: 0o600,
		} {
			fi, err := os.Stat(file)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != mode {
				t.Errorf("%s: mode %v, want %v", file, fi.Mode(), mode)
			}
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 8 {
			t.Errorf("%d files in %s, want 8 (no temporary files left)", len(entries), dir)
		}
	})

	ca := readCert(t, files.CA)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	t.Run("CA", func(t *testing.T) {
		if !ca.IsCA || !ca.MaxPathLenZero || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
			t.Errorf("CA: IsCA %v, MaxPathLenZero %v, key usage %v", ca.IsCA, ca.MaxPathLenZero, ca.KeyUsage)
		}
		checkCert(t, ca, 365*24*time.Hour)
		kp, err := tls.LoadX509KeyPair(files.CA, files.CAKey)
		if err != nil {
			t.Fatal(err)
		}
		if k, ok := kp.PrivateKey.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
			t.Errorf("CA key %T, want ECDSA P-256", kp.PrivateKey)
		}
	})

	t.Run("server", func(t *testing.T) {
		c := readCert(t, files.Server)
		checkCert(t, c, 90*24*time.Hour)
		if Name(c) != ServiceName {
			t.Errorf("Name = %q, want %q", Name(c), ServiceName)
		}
		if !slices.Equal(c.DNSNames, []string{"treaty.internal"}) || len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(net.ParseIP("10.0.0.7")) {
			t.Errorf("SANs %v %v", c.DNSNames, c.IPAddresses)
		}
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "treaty.internal", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("verify for %v: %v", usage, err)
			}
		}
	})

	t.Run("clients", func(t *testing.T) {
		for _, cl := range files.Clients {
			c := readCert(t, cl.Cert)
			checkCert(t, c, 90*24*time.Hour)
			if Name(c) != cl.Name || c.Subject.CommonName != cl.Name || len(c.URIs) != 0 {
				t.Errorf("%s: Name %q, want %q", cl.Cert, Name(c), cl.Name)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("%s: %v", cl.Cert, err)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots}); err == nil {
				t.Errorf("%s verifies as a server certificate", cl.Cert)
			}
			if _, err := tls.LoadX509KeyPair(cl.Cert, cl.Key); err != nil {
				t.Error(err)
			}
		}
	})
}

// checkCert checks a certificate's lifetime and serial number.
func checkCert(t *testing.T, c *x509.Certificate, life time.Duration) {
	t.Helper()
	if got := c.NotAfter.Sub(c.NotBefore); got < life || got > life+time.Hour {
		t.Errorf("%s: valid for %v, want %v", c.Subject.CommonName, got, life)
	}
	if time.Now().Before(c.NotBefore) || time.Now().After(c.NotAfter) {
		t.Errorf("%s: not valid now (%v to %v)", c.Subject.CommonName, c.NotBefore, c.NotAfter)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 || c.SerialNumber.BitLen() < 64 {
		t.Errorf("%s: serial %v is not a random 128-bit number", c.Subject.CommonName, c.SerialNumber)
	}
}

func TestWriteDevDefaults(t *testing.T) {
	dir := t.TempDir()
	files, err := WriteDev(dir, DevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(files.Clients) != 1 || files.Clients[0].Name != "admin" {
		t.Errorf("clients %+v, want admin", files.Clients)
	}
	c := readCert(t, files.Server)
	var ips []string
	for _, ip := range c.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(c.DNSNames, []string{"localhost"}) || !slices.Equal(ips, []string{"127.0.0.1", "::1"}) {
		t.Errorf("SANs %v %v, want localhost 127.0.0.1 ::1", c.DNSNames, ips)
	}
}

func TestWriteDevRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := WriteDev(dir, DevOptions{}); err != nil {
		t.Fatal(err)
	}
	before := readCert(t, filepath.Join(dir, "ca.pem")).SerialNumber
	for _, tt := range []struct {
		name string
		opts DevOptions
		want string
	}{
		{"existing files", DevOptions{}, "ca.pem exists; use --force to overwrite it"},
		{"one existing client", DevOptions{Identities: []string{"bob", "admin"}}, "exists; use --force"},
		{"identity with a slash", DevOptions{Identities: []string{"../x"}, Force: true}, `identity "../x"`},
		{"identity named like a file", DevOptions{Identities: []string{"ca-key"}, Force: true}, "would be written twice"},
		{"identity and its key", DevOptions{Identities: []string{"a", "a-key"}, Force: true}, "would be written twice"},
		{"empty identity", DevOptions{Identities: []string{""}, Force: true}, `identity ""`},
		{"bad host", DevOptions{Hosts: []string{"a b"}, Force: true}, `host "a b"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := WriteDev(dir, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("WriteDev error %v, want %q", err, tt.want)
			}
		})
	}
	if after := readCert(t, filepath.Join(dir, "ca.pem")).SerialNumber; after.Cmp(before) != 0 {
		t.Error("a refused WriteDev replaced the CA")
	}
	if _, err := os.Stat(filepath.Join(dir, "bob.pem")); err == nil {
		t.Error("a refused WriteDev wrote bob.pem")
	}

	// Force replaces, keeping the modes even of files that had others.
	if err := os.Chmod(filepath.Join(dir, "ca-key.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteDev(dir, DevOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if after := readCert(t, filepath.Join(dir, "ca.pem")).SerialNumber; after.Cmp(before) == 0 {
		t.Error("WriteDev with Force kept the old CA")
	}
	if fi, err := os.Stat(filepath.Join(dir, "ca-key.pem")); err != nil || fi.Mode() != 0o600 {
		t.Errorf("ca-key.pem after Force: %v %v, want mode 0600", fi.Mode(), err)
	}
}
