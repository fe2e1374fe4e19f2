package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// devDir writes a development CA with the identities admin and bob into a temporary folder.
func devDir(t *testing.T) (string, DevFiles) {
	t.Helper()
	dir := t.TempDir()
	files, err := WriteDev(dir, DevOptions{Identities: []string{"admin", "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	return dir, files
}

// load loads a server's files from a dev folder, looking at them on every handshake, logging to log.
func load(t *testing.T, dir string, log *bytes.Buffer) *Files {
	t.Helper()
	f, err := Load(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"),
		filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.pem"),
		WithCheckInterval(0), WithLogger(slogTo(log)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func slogTo(buf *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(buf, nil)) }

func cliConfig(t *testing.T, certFile, keyFile, caFile string) *tls.Config {
	t.Helper()
	cfg, err := ClientConfig(certFile, keyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// handshake runs one TLS handshake over loopback TCP and returns what the server and the client
// saw; err joins both sides' errors.
func handshake(t *testing.T, server, client *tls.Config) (srv, cli tls.ConnectionState, err error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		state tls.ConnectionState
		err   error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, server)
		err = tc.Handshake()
		if err == nil {
			// One byte each way: the client's proves the server accepted its last flight (TLS
			// 1.3 clients finish first), the server's makes the client read its session tickets.
			if _, err = tc.Read(make([]byte, 1)); err == nil {
				_, err = tc.Write([]byte{1})
			}
		}
		done <- result{tc.ConnectionState(), err}
	}()
	conn, cerr := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), client)
	if cerr == nil {
		if _, cerr = conn.Write([]byte{1}); cerr == nil {
			_, cerr = conn.Read(make([]byte, 1))
		}
		cli = conn.ConnectionState()
	}
	r := <-done
	if conn != nil {
		conn.Close()
	}
	return r.state, cli, errors.Join(cerr, r.err)
}

// peerName is the identity name of the verified client certificate the server saw, if any.
func peerName(st tls.ConnectionState) string {
	if len(st.VerifiedChains) == 0 {
		return ""
	}
	return Name(st.VerifiedChains[0][0])
}

func TestHandshake(t *testing.T) {
	dir, dev := devDir(t)
	_, other := devDir(t)
	var log bytes.Buffer
	server := load(t, dir, &log)
	peer := load(t, dir, &log)

	for _, tt := range []struct {
		name     string
		client   *tls.Config
		wantErr  bool
		wantName string
	}{
		{"client certificate", cliConfig(t, dev.Clients[0].Cert, dev.Clients[0].Key, dev.CA), false, "admin"},
		{"another identity", cliConfig(t, dev.Clients[1].Cert, dev.Clients[1].Key, dev.CA), false, "bob"},
		{"peer presents the server certificate", peer.ClientConfig(), false, ServiceName},
		{"no client certificate (a token instead)", cliConfig(t, "", "", dev.CA), false, ""},
		{"client certificate from another CA", cliConfig(t, other.Clients[0].Cert, other.Clients[0].Key, dev.CA), true, ""},
		{"server from another CA", cliConfig(t, "", "", other.CA), true, ""},
		{"server's name not in its certificate", func() *tls.Config {
			c := cliConfig(t, "", "", dev.CA)
			c.ServerName = "treaty.example"
			return c
		}(), true, ""},
		{"TLS 1.1", func() *tls.Config {
			c := cliConfig(t, "", "", dev.CA)
			c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
			return c
		}(), true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, _, err := handshake(t, server.ServerConfig(), tt.client)
			if (err != nil) != tt.wantErr {
				t.Fatalf("handshake error %v, want error %v", err, tt.wantErr)
			}
			if err == nil && peerName(srv) != tt.wantName {
				t.Errorf("server saw client %q, want %q", peerName(srv), tt.wantName)
			}
		})
	}
	if log.Len() != 0 {
		t.Errorf("unexpected log:\n%s", log.String())
	}
}

func TestServerConfigProtocols(t *testing.T) {
	dir, dev := devDir(t)
	var log bytes.Buffer
	server := load(t, dir, &log)
	for _, tt := range []struct {
		name    string
		offer   []string
		max     uint16
		want    string
		version uint16
	}{
		{"gRPC", []string{"h2"}, 0, "h2", tls.VersionTLS13},
		{"HTTP/1.1", []string{"http/1.1"}, 0, "http/1.1", tls.VersionTLS13},
		{"browser-like prefers h2", []string{"h2", "http/1.1"}, 0, "h2", tls.VersionTLS13},
		{"TLS 1.2 client", []string{"h2"}, tls.VersionTLS12, "h2", tls.VersionTLS12},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := cliConfig(t, "", "", dev.CA)
			c.NextProtos, c.MaxVersion = tt.offer, tt.max
			_, cli, err := handshake(t, server.ServerConfig(), c)
			if err != nil {
				t.Fatal(err)
			}
			if cli.NegotiatedProtocol != tt.want || cli.Version != tt.version {
				t.Errorf("negotiated %q over %s, want %q over %s", cli.NegotiatedProtocol,
					tls.VersionName(cli.Version), tt.want, tls.VersionName(tt.version))
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir, dev := devDir(t)
	notPEM := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	admin := dev.Clients[0]
	for _, tt := range []struct {
		name                string
		cert, key, clientCA string
		ca                  string
		want                string
	}{
		{"certificate without key", dev.Server, "", "", "", "--tls-cert and --tls-key go together"},
		{"key without certificate", "", dev.ServerKey, "", "", "--tls-cert and --tls-key go together"},
		{"client CA without certificate", "", "", dev.CA, "", "--client-ca verifies clients of a TLS listener"},
		{"missing certificate", missing, dev.ServerKey, "", "", "--tls-cert: open " + missing},
		{"certificate file not PEM", notPEM, dev.ServerKey, "", "", "--tls-cert " + notPEM + ": no PEM certificate"},
		{"key file holds a certificate", dev.Server, dev.Server, "", "", "--tls-key " + dev.Server + ": no PEM private key"},
		{"key of another certificate", dev.Server, admin.Key, "", "", "--tls-cert " + dev.Server + " and --tls-key " + admin.Key + ": tls: private key does not match public key"},
		{"missing key", dev.Server, missing, "", "", "--tls-key: open " + missing},
		{"client CA not PEM", dev.Server, dev.ServerKey, notPEM, "", "--client-ca " + notPEM + ": no PEM certificate"},
		{"CA is a key", "", "", "", dev.CAKey, "--ca " + dev.CAKey + ": no PEM certificate"},
		{"missing CA", "", "", "", missing, "--ca: open " + missing},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.cert, tt.key, tt.clientCA, tt.ca)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), "MIG") {
				t.Errorf("error quotes key material: %v", err)
			}
		})
	}

	t.Run("nothing", func(t *testing.T) {
		f, err := Load("", "", "", "")
		if err != nil {
			t.Fatal(err)
		}
		if f.ServerConfig() != nil {
			t.Error("ServerConfig without a certificate is not nil")
		}
		if c := f.ClientConfig(); c.RootCAs != nil || c.GetClientCertificate != nil {
			t.Error("ClientConfig without files does not use the system roots and no certificate")
		}
	})

	for _, tt := range []struct {
		name, cert, key, ca, want string
	}{
		{"cert without key", admin.Cert, "", "", "--cert and --key go together"},
		{"cert not PEM", notPEM, admin.Key, "", "--cert " + notPEM + ": no PEM certificate"},
		{"mismatched key", admin.Cert, dev.ServerKey, "", "private key does not match"},
		{"CA not PEM", "", "", notPEM, "--ca " + notPEM + ": no PEM certificate"},
	} {
		t.Run("ClientConfig/"+tt.name, func(t *testing.T) {
			_, err := ClientConfig(tt.cert, tt.key, tt.ca)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ClientConfig error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestName(t *testing.T) {
	u, _ := url.Parse("spiffe://example/pdp")
	u2, _ := url.Parse("https://example/other")
	for _, tt := range []struct {
		name string
		cert *x509.Certificate
		want string
	}{
		{"nil", nil, ""},
		{"CN only", &x509.Certificate{Subject: pkix.Name{CommonName: "alice"}}, "alice"},
		{"URI SAN wins over CN", &x509.Certificate{Subject: pkix.Name{CommonName: "alice"}, URIs: []*url.URL{u, u2}}, "spiffe://example/pdp"},
		{"neither", &x509.Certificate{}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Name(tt.cert); got != tt.want {
				t.Errorf("Name = %q, want %q", got, tt.want)
			}
		})
	}
}

// reissue writes a new leaf certificate and key over certFile and keyFile, signed by the dev CA
// in dir, named by uri (a server certificate for 127.0.0.1) or, when uri is empty, by cn (a
// client certificate). It returns the new certificate's serial number.
func reissue(t *testing.T, dir, certFile, keyFile, cn, uri string) string {
	t.Helper()
	ca, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := serial()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if uri != "" {
		u, _ := url.Parse(uri)
		tmpl.URIs, tmpl.IPAddresses = []*url.URL{u}, []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Leaf, key.Public(), ca.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	// In place, as an editor or cp would: same file, new size and modification time.
	if err := os.WriteFile(certFile, certPEM(der), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, kp, 0o600); err != nil {
		t.Fatal(err)
	}
	touch(t, certFile, keyFile)
	return sn.String()
}

// touch moves the files' modification time a second on, so a rewrite shows whatever the file
// system's timestamp granularity and even if the size did not change.
func touch(t *testing.T, files ...string) {
	t.Helper()
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		mt := fi.ModTime().Add(time.Second)
		if err := os.Chtimes(f, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
}
