package certs

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serverSerial is the serial number of the certificate the server presented.
func serverSerial(st tls.ConnectionState) string { return st.PeerCertificates[0].SerialNumber.String() }

// keep copies files into a new temporary folder and returns their new paths.
func keep(t *testing.T, files ...string) []string {
	t.Helper()
	dir := t.TempDir()
	var out []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func TestReloadServer(t *testing.T) {
	dir, dev := devDir(t)
	var log bytes.Buffer
	server := load(t, dir, &log)
	serverCfg := server.ServerConfig() // one config for the listener's whole life
	client := cliConfig(t, dev.Clients[0].Cert, dev.Clients[0].Key, dev.CA)

	_, cli, err := handshake(t, serverCfg, client)
	if err != nil {
		t.Fatal(err)
	}
	first := serverSerial(cli)

	// A new leaf from the same CA: the same client config keeps working and sees it.
	want := reissue(t, dir, dev.Server, dev.ServerKey, "", ServiceName)
	srv, cli, err := handshake(t, serverCfg, client)
	if err != nil {
		t.Fatal(err)
	}
	if got := serverSerial(cli); got != want || got == first {
		t.Fatalf("after reissue the server presented serial %s, want %s (was %s)", got, want, first)
	}
	if peerName(srv) != "admin" {
		t.Errorf("server saw client %q, want admin", peerName(srv))
	}
	if !strings.Contains(log.String(), "TLS files reloaded") {
		t.Errorf("reload not logged:\n%s", log.String())
	}

	// A whole new CA and set (dev-certs --force): the new CA's clients get in, the old CA's
	// client certificates no longer do (the client CA reloaded too).
	old := keep(t, dev.Clients[0].Cert, dev.Clients[0].Key)
	if _, err := WriteDev(dir, DevOptions{Identities: []string{"admin", "bob"}, Force: true}); err != nil {
		t.Fatal(err)
	}
	srv, cli, err = handshake(t, serverCfg, cliConfig(t, dev.Clients[1].Cert, dev.Clients[1].Key, dev.CA))
	if err != nil {
		t.Fatal(err)
	}
	if serverSerial(cli) == want || peerName(srv) != "bob" {
		t.Errorf("after a new CA: server serial %s (old %s), client %q", serverSerial(cli), want, peerName(srv))
	}
	if _, _, err := handshake(t, serverCfg, cliConfig(t, old[0], old[1], dev.CA)); err == nil {
		t.Error("a client certificate of the replaced CA still gets in")
	}
}

func TestReloadPeerClientCertificate(t *testing.T) {
	dir, dev := devDir(t)
	var log bytes.Buffer
	server := load(t, dir, &log)
	peer := load(t, dir, &log)
	peerCfg := peer.ClientConfig() // one config for the peer connection's whole life

	srv, _, err := handshake(t, server.ServerConfig(), peerCfg)
	if err != nil {
		t.Fatal(err)
	}
	first := srv.PeerCertificates[0].SerialNumber.String()
	want := reissue(t, dir, dev.Server, dev.ServerKey, "", ServiceName)
	srv, _, err = handshake(t, server.ServerConfig(), peerCfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.PeerCertificates[0].SerialNumber.String(); got != want || got == first {
		t.Errorf("peer presented serial %s after reissue, want %s (was %s)", got, want, first)
	}
	if peerName(srv) != ServiceName {
		t.Errorf("server saw peer %q, want %q", peerName(srv), ServiceName)
	}

	// A new CA: a live config keeps the CA bundle it was made with (see ClientConfig), so it no
	// longer trusts the server; a new one reads the new bundle.
	if _, err := WriteDev(dir, DevOptions{Identities: []string{"admin", "bob"}, Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := handshake(t, server.ServerConfig(), peerCfg); err == nil {
		t.Error("a live client config took up a new CA bundle")
	}
	srv, _, err = handshake(t, server.ServerConfig(), peer.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	if peerName(srv) != ServiceName {
		t.Errorf("server saw peer %q, want %q", peerName(srv), ServiceName)
	}
}

func TestReloadFailureKeepsPrevious(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, dev DevFiles)
		want   string
		count  int // failures logged: one per unit of files (ca.pem is both --client-ca and --ca)
	}{
		{"half-written certificate", func(t *testing.T, dev DevFiles) {
			raw, _ := os.ReadFile(dev.Server)
			rewrite(t, dev.Server, raw[:len(raw)/2])
		}, "--tls-cert ", 1},
		{"certificate without its new key", func(t *testing.T, dev DevFiles) {
			raw, _ := os.ReadFile(dev.Clients[0].Key)
			rewrite(t, dev.ServerKey, raw)
		}, "private key does not match", 1},
		{"empty key", func(t *testing.T, dev DevFiles) { rewrite(t, dev.ServerKey, nil) }, "no PEM private key", 1},
		{"empty client CA", func(t *testing.T, dev DevFiles) { rewrite(t, dev.CA, nil) }, "--client-ca ", 2},
		{"removed certificate", func(t *testing.T, dev DevFiles) { os.Remove(dev.Server) }, "no such file", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, dev := devDir(t)
			var log bytes.Buffer
			server := load(t, dir, &log)
			serverCfg := server.ServerConfig()
			client := cliConfig(t, dev.Clients[0].Cert, dev.Clients[0].Key, dev.CA)
			_, cli, err := handshake(t, serverCfg, client)
			if err != nil {
				t.Fatal(err)
			}
			first := serverSerial(cli)

			tt.damage(t, dev)
			for range 3 {
				srv, cli, err := handshake(t, serverCfg, client)
				if err != nil {
					t.Fatalf("handshake after a broken replacement: %v", err)
				}
				if serverSerial(cli) != first || peerName(srv) != "admin" {
					t.Fatalf("server serial %s (want %s), client %q", serverSerial(cli), first, peerName(srv))
				}
			}
			logged := log.String()
			if strings.Count(logged, "could not be loaded") != tt.count || !strings.Contains(logged, tt.want) {
				t.Errorf("want the failure logged once per unit, naming %q:\n%s", tt.want, logged)
			}
			if strings.Contains(logged, "PRIVATE KEY") {
				t.Errorf("log quotes key material:\n%s", logged)
			}

			// Good files again: picked up.
			if _, err := WriteDev(dir, DevOptions{Identities: []string{"admin", "bob"}, Force: true}); err != nil {
				t.Fatal(err)
			}
			_, cli, err = handshake(t, serverCfg, cliConfig(t, dev.Clients[0].Cert, dev.Clients[0].Key, dev.CA))
			if err != nil {
				t.Fatal(err)
			}
			if serverSerial(cli) == first {
				t.Error("the repaired files were not picked up")
			}
		})
	}
}

// rewrite replaces a file's content in place and moves its modification time on.
func rewrite(t *testing.T, file string, data []byte) {
	t.Helper()
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	touch(t, file)
}

func TestReloadInterval(t *testing.T) {
	dir, dev := devDir(t)
	var log bytes.Buffer
	server, err := Load(dev.Server, dev.ServerKey, dev.CA, "", WithCheckInterval(time.Hour),
		WithLogger(slogTo(&log)))
	if err != nil {
		t.Fatal(err)
	}
	client := cliConfig(t, "", "", dev.CA)
	_, cli, err := handshake(t, server.ServerConfig(), client)
	if err != nil {
		t.Fatal(err)
	}
	first := serverSerial(cli)
	reissue(t, dir, dev.Server, dev.ServerKey, "", ServiceName)
	_, cli, err = handshake(t, server.ServerConfig(), client)
	if err != nil {
		t.Fatal(err)
	}
	if serverSerial(cli) != first {
		t.Error("files looked at again before the check interval passed")
	}

	// Once the interval has passed, the next handshake looks.
	server.opts.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	_, cli, err = handshake(t, server.ServerConfig(), client)
	if err != nil {
		t.Fatal(err)
	}
	if serverSerial(cli) == first {
		t.Error("files not looked at after the check interval")
	}
}

func TestExpiryWarning(t *testing.T) {
	_, dev := devDir(t)
	for _, tt := range []struct {
		name  string
		after time.Duration
		want  string
	}{
		{"fresh", 0, ""},
		{"expires soon", 85 * 24 * time.Hour, "TLS certificate expires soon"},
		{"expired", 91 * 24 * time.Hour, "TLS certificate has expired"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			now := func() time.Time { return time.Now().Add(tt.after) }
			if _, err := Load(dev.Server, dev.ServerKey, "", "", WithLogger(slogTo(&log)), withClock(now)); err != nil {
				t.Fatal(err)
			}
			if tt.want == "" && log.Len() != 0 || !strings.Contains(log.String(), tt.want) {
				t.Errorf("log %q, want %q", log.String(), tt.want)
			}
		})
	}
}

// TestReloadClientCAEndsResumedSessions checks that a client certificate's identity does not
// outlive the client CA that vouched for it through TLS session resumption (crypto/tls checks a
// resumed session's chains against the config's current ClientCAs).
func TestReloadClientCAEndsResumedSessions(t *testing.T) {
	dir, dev := devDir(t)
	_, other := devDir(t)
	clientCA := filepath.Join(dir, "client-ca.pem")
	raw, err := os.ReadFile(dev.CA)
	if err != nil {
		t.Fatal(err)
	}
	rewrite(t, clientCA, raw)
	var log bytes.Buffer
	server, err := Load(dev.Server, dev.ServerKey, clientCA, "", WithCheckInterval(0), WithLogger(slogTo(&log)))
	if err != nil {
		t.Fatal(err)
	}
	serverCfg := server.ServerConfig()
	client := cliConfig(t, dev.Clients[0].Cert, dev.Clients[0].Key, dev.CA)
	client.ClientSessionCache = tls.NewLRUClientSessionCache(4)

	for i, wantResumed := range []bool{false, true} {
		srv, cli, err := handshake(t, serverCfg, client)
		if err != nil {
			t.Fatal(err)
		}
		if cli.DidResume != wantResumed || peerName(srv) != "admin" {
			t.Fatalf("handshake %d: resumed %v (want %v), client %q", i, cli.DidResume, wantResumed, peerName(srv))
		}
	}

	otherCA, err := os.ReadFile(other.CA)
	if err != nil {
		t.Fatal(err)
	}
	rewrite(t, clientCA, otherCA)
	srv, cli, err := handshake(t, serverCfg, client)
	if err == nil && (cli.DidResume || peerName(srv) == "admin") {
		t.Errorf("after the client CA changed: resumed %v as %q", cli.DidResume, peerName(srv))
	}
}
