package issuer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/treaty-dev/treaty/fail"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/issuer/issuertest"
)

// testCA is a certificate authority for client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

var serial int64 = 1

func newCA(t *testing.T) testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "Test Client CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	serial++
	cert := mustCert(t, tmpl, tmpl, key.Public(), key)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return testCA{cert: cert, key: key, pool: pool}
}

// issue returns a client certificate for subject (and dnsName, if set) signed by the CA.
func (ca testCA) issue(t *testing.T, subject pkix.Name, dnsName string, usage x509.ExtKeyUsage) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	if dnsName != "" {
		tmpl.DNSNames = []string{dnsName}
	}
	serial++
	return mustCert(t, tmpl, ca.cert, key.Public(), ca.key), key
}

// selfSigned returns a self-signed certificate for key.
func selfSigned(t *testing.T, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "self"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	serial++
	return mustCert(t, tmpl, tmpl, key.Public(), key)
}

func mustCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// createTLSWorkload registers a workload authenticated by a CA-issued certificate's subject only.
func createTLSWorkload(t *testing.T, w *issuertest.World, id, integ string, sub *treatyv1.TlsClientAuth) {
	t.Helper()
	_, err := w.Registry.CreateWorkload(context.Background(), &treatyv1.CreateWorkloadRequest{
		Id: id, IntegrationId: integ, TlsClientAuth: sub, Actor: issuertest.Actor,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// tlsRequest asks for a credential for clientID, authenticating by the certificate chain.
func tlsRequest(clientID string, chain ...*x509.Certificate) issuer.Request {
	return issuer.Request{ClientID: clientID, ClientCertificates: chain, Scopes: []string{"invoices:read"}, Audience: audience}
}

func TestTLSClientAuthentication(t *testing.T) {
	ca, stranger := newCA(t), newCA(t)
	e := newEnv(t, func(c *issuer.Config) { c.ClientCAs = ca.pool })
	createTLSWorkload(t, e.world, "acme-dn", integration, &treatyv1.TlsClientAuth{SubjectDn: "CN=acme-dn,O=Acme"})
	createTLSWorkload(t, e.world, "acme-san", integration, &treatyv1.TlsClientAuth{SanDns: "sync.acme.test"})
	acmeDN := pkix.Name{CommonName: "acme-dn", Organization: []string{"Acme"}}
	good, _ := ca.issue(t, acmeDN, "", x509.ExtKeyUsageClientAuth)
	sanCert, _ := ca.issue(t, pkix.Name{CommonName: "whatever"}, "SYNC.acme.test", x509.ExtKeyUsageClientAuth)
	wrongDN, _ := ca.issue(t, pkix.Name{CommonName: "acme-dn", Organization: []string{"Evil"}}, "", x509.ExtKeyUsageClientAuth)
	strangerCert, _ := stranger.issue(t, acmeDN, "", x509.ExtKeyUsageClientAuth)
	serverOnly, _ := ca.issue(t, acmeDN, "", x509.ExtKeyUsageServerAuth)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	tests := []struct {
		name       string
		req        issuer.Request
		wantMethod string
		wantKind   fail.Kind
	}{
		{"subject DN matches", tlsRequest("acme-dn", good), issuer.MethodTLSClientAuth, 0},
		{"SAN dNSName matches", tlsRequest("acme-san", sanCert), issuer.MethodTLSClientAuth, 0},
		{"self-signed with the registered key", tlsRequest(workload, selfSigned(t, e.keys[workload])), issuer.MethodSelfSignedTLSClientAuth, 0},
		{"wrong subject", tlsRequest("acme-dn", wrongDN), "", fail.Unauthenticated},
		{"another workload's subject", tlsRequest("acme-san", good), "", fail.Unauthenticated},
		{"right subject, unknown CA", tlsRequest("acme-dn", strangerCert), "", fail.Unauthenticated},
		{"right subject, not for client auth", tlsRequest("acme-dn", serverOnly), "", fail.Unauthenticated},
		{"self-signed with another key", tlsRequest(workload, selfSigned(t, otherKey)), "", fail.Unauthenticated},
		{"self-signed with another workload's key", tlsRequest(workload, selfSigned(t, e.keys[sibling])), "", fail.Unauthenticated},
		{"a self-signed copy of a CA subject", tlsRequest("acme-dn", selfSignedAs(t, acmeDN)), "", fail.Unauthenticated},
		{"unknown client", tlsRequest("nobody", good), "", fail.Unauthenticated},
		{"no client_id", tlsRequest("", good), "", fail.Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.iss.Issue(context.Background(), tc.req)
			if tc.wantKind != 0 {
				wantKind(t, err, tc.wantKind)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.Credential.AuthMethod != tc.wantMethod || out.Credential.WorkloadID != tc.req.ClientID {
				t.Errorf("issued to %s by %s, want %s by %s", out.Credential.WorkloadID, out.Credential.AuthMethod, tc.req.ClientID, tc.wantMethod)
			}
			// Authenticating by certificate alone does not bind: the integration asks for none.
			if out.Credential.Binding != issuer.BindingNone || claimsOf(t, out.Token).Confirmation != nil {
				t.Errorf("binding %s, want none", out.Credential.Binding)
			}
		})
	}
}

// selfSignedAs returns a self-signed certificate carrying subject.
func selfSignedAs(t *testing.T, subject pkix.Name) *x509.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := selfSigned(t, key)
	tmpl := *c
	tmpl.Subject = subject
	return mustCert(t, &tmpl, &tmpl, key.Public(), key)
}

func TestClientAuthMethodsAreEnforced(t *testing.T) {
	e := newEnv(t)
	e.world.CreateIntegration(issuertest.Integration{
		ID: "acme-jwt", PartnerID: partner, MaxTTL: time.Hour, Scopes: []string{"invoices:read"}, Audiences: []string{audience},
		ClientAuthMethods: []treatyv1.ClientAuthMethod{treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_PRIVATE_KEY_JWT},
	})
	e.world.CreateIntegration(issuertest.Integration{
		ID: "acme-mtls-only", PartnerID: partner, MaxTTL: time.Hour, Scopes: []string{"invoices:read"}, Audiences: []string{audience},
		ClientAuthMethods: []treatyv1.ClientAuthMethod{treatyv1.ClientAuthMethod_CLIENT_AUTH_METHOD_SELF_SIGNED_TLS_CLIENT_AUTH},
	})
	e.addWorkload("jwt-bot", "acme-jwt")
	e.addWorkload("mtls-bot", "acme-mtls-only")

	e.issue(e.requestAs("jwt-bot"))
	_, err := e.iss.Issue(context.Background(), tlsRequest("jwt-bot", selfSigned(t, e.keys["jwt-bot"])))
	wantKind(t, err, fail.Denied)
	if !errors.Is(err, issuer.ErrUnauthorizedClient) || !strings.Contains(err.Error(), "self_signed_tls_client_auth is not allowed") ||
		!strings.Contains(err.Error(), "allowed: private_key_jwt") {
		t.Errorf("error %q should be unauthorized_client naming the method and the allowed ones", err)
	}

	e.issue(tlsRequest("mtls-bot", selfSigned(t, e.keys["mtls-bot"])))
	_, err = e.iss.Issue(context.Background(), e.requestAs("mtls-bot"))
	if !errors.Is(err, issuer.ErrUnauthorizedClient) || !strings.Contains(err.Error(), "allowed: self_signed_tls_client_auth") {
		t.Errorf("private_key_jwt on an mTLS-only integration: %v", err)
	}
}

func TestSenderConstraintIsEnforced(t *testing.T) {
	e := newEnv(t)
	for id, c := range map[string]treatyv1.SenderConstraint{
		"acme-dpop":   treatyv1.SenderConstraint_SENDER_CONSTRAINT_DPOP,
		"acme-mtls":   treatyv1.SenderConstraint_SENDER_CONSTRAINT_MTLS,
		"acme-either": treatyv1.SenderConstraint_SENDER_CONSTRAINT_DPOP_OR_MTLS,
	} {
		e.world.CreateIntegration(issuertest.Integration{
			ID: id, PartnerID: partner, MaxTTL: time.Hour, Scopes: []string{"invoices:read"}, Audiences: []string{audience}, SenderConstraint: c,
		})
		e.addWorkload(id+"-bot", id)
	}
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert := selfSigned(t, certKey) // presented on the TLS connection; the client authenticates by assertion
	k := newDPoPKey(t)
	build := func(id string, withProof, withCert bool) issuer.Request {
		req := e.requestAs(id)
		if withProof {
			req.DPoPProof, req.HTTPMethod, req.HTTPURL = k.proof(t, e.clock.Now(), nil, nil), "POST", tokenURL
		}
		if withCert {
			req.ClientCertificates = []*x509.Certificate{cert}
		}
		return req
	}
	tests := []struct {
		name            string
		id              string
		proof, cert     bool
		wantBinding     string
		wantErr         error
		wantKind        fail.Kind
		wantJKT, wantX5 bool
	}{
		{"dpop: no proof", "acme-dpop-bot", false, false, "", issuer.ErrInvalidDPoPProof, fail.Invalid, false, false},
		{"dpop: a certificate is not enough", "acme-dpop-bot", false, true, "", issuer.ErrInvalidDPoPProof, fail.Invalid, false, false},
		{"dpop: proof", "acme-dpop-bot", true, false, issuer.BindingDPoP, nil, 0, true, false},
		{"mtls: no certificate", "acme-mtls-bot", false, false, "", issuer.ErrUnauthorizedClient, fail.Denied, false, false},
		{"mtls: a proof is not enough", "acme-mtls-bot", true, false, "", issuer.ErrUnauthorizedClient, fail.Denied, false, false},
		{"mtls: certificate", "acme-mtls-bot", false, true, issuer.BindingMTLS, nil, 0, false, true},
		{"mtls: certificate and proof bind both", "acme-mtls-bot", true, true, issuer.BindingDPoPMTLS, nil, 0, true, true},
		{"either: neither", "acme-either-bot", false, false, "", issuer.ErrUnauthorizedClient, fail.Denied, false, false},
		{"either: certificate", "acme-either-bot", false, true, issuer.BindingMTLS, nil, 0, false, true},
		{"either: proof", "acme-either-bot", true, false, issuer.BindingDPoP, nil, 0, true, false},
		{"either: both prefer the proof", "acme-either-bot", true, true, issuer.BindingDPoP, nil, 0, true, false},
		{"none: certificate presented, bearer", workload, false, true, issuer.BindingNone, nil, 0, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.iss.Issue(context.Background(), build(tc.id, tc.proof, tc.cert))
			if tc.wantErr != nil {
				wantKind(t, err, tc.wantKind)
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), "requires") {
					t.Errorf("error %q, want %v saying what the integration requires", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cnf := claimsOf(t, out.Token).Confirmation
			gotJKT, gotX5 := cnf != nil && cnf.JKT == k.jkt, cnf != nil && cnf.X5TS256 == issuer.CertThumbprint(cert)
			if out.Credential.Binding != tc.wantBinding || gotJKT != tc.wantJKT || gotX5 != tc.wantX5 {
				t.Errorf("binding %s, cnf %+v; want %s (jkt %v, x5t %v)", out.Credential.Binding, cnf, tc.wantBinding, tc.wantJKT, tc.wantX5)
			}
			if rec, err := e.iss.Credential(out.Credential.ID); err != nil || rec.Binding != tc.wantBinding {
				t.Errorf("inventory binding %q, %v", rec.Binding, err)
			}
		})
	}
}

// TestCertificateBoundTokenAtThePDP follows a certificate-bound token from the issuer to the PDP.
func TestCertificateBoundTokenAtThePDP(t *testing.T) {
	e := newEnv(t)
	e.world.CreateIntegration(issuertest.Integration{
		ID: "acme-mtls", PartnerID: partner, MaxTTL: time.Hour, Scopes: []string{"invoices:read"}, Audiences: []string{audience},
		SenderConstraint: treatyv1.SenderConstraint_SENDER_CONSTRAINT_MTLS,
	})
	e.addWorkload("mtls-bot", "acme-mtls")
	cert := selfSigned(t, e.keys["mtls-bot"])
	out := e.issue(tlsRequest("mtls-bot", cert))
	if out.Credential.AuthMethod != issuer.MethodSelfSignedTLSClientAuth || out.Credential.Binding != issuer.BindingMTLS || out.TokenType != issuer.TokenTypeBearer {
		t.Fatalf("credential %+v, token type %s", out.Credential, out.TokenType)
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, tc := range map[string]struct {
		proof *treatyv1.Proof
		want  string
	}{
		"its certificate":     {&treatyv1.Proof{ClientCertThumbprint: issuer.CertThumbprint(cert)}, "granted"},
		"no certificate":      {nil, "proof_missing"},
		"another certificate": {&treatyv1.Proof{ClientCertThumbprint: issuer.CertThumbprint(selfSigned(t, otherKey))}, "proof_mismatch"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := e.world.CheckWithProof(out.Token, "invoices:read", audience, out.Credential.Sequence, tc.proof); got != tc.want {
				t.Errorf("PDP says %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTokenEndpointOverRealTLS shows how an HTTP token endpoint fills the Request: the client
// certificate from the TLS connection, the DPoP header, and the endpoint's method and URL.
func TestTokenEndpointOverRealTLS(t *testing.T) {
	e := newEnv(t)
	k := newDPoPKey(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := issuer.Request{
			ClientID: r.FormValue("client_id"), Scopes: strings.Fields(r.FormValue("scope")), Audience: r.FormValue("audience"),
			ClientCertificates: r.TLS.PeerCertificates, DPoPProof: r.Header.Get("DPoP"),
			HTTPMethod: r.Method, HTTPURL: tokenURL, // the configured public URL, not r.Host
		}
		out, err := e.iss.Issue(r.Context(), req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"access_token": out.Token, "token_type": out.TokenType})
	}))
	// Self-signed client certificates chain to nothing: request one, verify in the issuer.
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	defer srv.Close()

	key := e.keys[workload]
	cert := selfSigned(t, key)
	client := srv.Client()
	client.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}
	body := strings.NewReader("grant_type=client_credentials&client_id=" + workload + "&scope=invoices:read&audience=" + audience)
	hreq, _ := http.NewRequest(http.MethodPost, srv.URL, body)
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hreq.Header.Set("DPoP", k.proof(t, e.clock.Now(), nil, nil))
	resp, err := client.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	c := claimsOf(t, got["access_token"])
	if got["token_type"] != "DPoP" || c.Confirmation == nil || c.Confirmation.JKT != k.jkt || c.Subject != workload {
		t.Errorf("token type %s, cnf %+v, sub %s", got["token_type"], c.Confirmation, c.Subject)
	}
}

func TestWorkloadKeyRotation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	old := e.keys[workload]
	next, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(next.Public())
	nextPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if _, err := e.world.Registry.AddWorkloadKey(ctx, &treatyv1.AddWorkloadKeyRequest{Id: workload, PublicKeyPem: nextPEM, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	sign := func(key crypto.Signer) issuer.Request {
		a, err := issuer.SignAssertion(workload, issuerURL, key, e.clock.Now(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return issuer.Request{Assertion: a, Scopes: []string{"invoices:read"}, Audience: audience}
	}
	// During the rotation both keys authenticate; the new one signs ES256.
	e.issue(sign(old))
	e.issue(sign(next))

	// A third key is refused.
	_, third, _ := ed25519.GenerateKey(rand.Reader)
	der, _ = x509.MarshalPKIXPublicKey(third.Public())
	_, err := e.world.Registry.AddWorkloadKey(ctx, &treatyv1.AddWorkloadKeyRequest{Id: workload, Actor: "test",
		PublicKeyPem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("third key: %v, want FailedPrecondition", err)
	}

	// Removing the older key ends the rotation: it no longer authenticates.
	oldKid, _ := issuer.KeyID(old.Public())
	if _, err := e.world.Registry.RemoveWorkloadKey(ctx, &treatyv1.RemoveWorkloadKeyRequest{Id: workload, KeyId: oldKid, Reason: "rotation done", Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.iss.Issue(ctx, sign(old))
	wantKind(t, err, fail.Unauthenticated)
	e.issue(sign(next))
	// The last key stays.
	nextKid, _ := issuer.KeyID(next.Public())
	_, err = e.world.Registry.RemoveWorkloadKey(ctx, &treatyv1.RemoveWorkloadKeyRequest{Id: workload, KeyId: nextKid, Reason: "rotation done", Actor: "test"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("removing the last key: %v, want FailedPrecondition", err)
	}
}

// TestAssertionAlgorithmFollowsTheKey: a workload may register an RS256 (or ES256) key; each key
// verifies only assertions of its own algorithm.
func TestAssertionAlgorithmFollowsTheKey(t *testing.T) {
	e := newEnv(t)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	_, err = e.world.Registry.CreateWorkload(context.Background(), &treatyv1.CreateWorkloadRequest{Id: "rsa-bot", IntegrationId: integration,
		PublicKeyPem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := issuer.SignAssertion("rsa-bot", issuerURL, rk, e.clock.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if out := e.issue(issuer.Request{Assertion: a, Scopes: []string{"invoices:read"}, Audience: audience}); out.Credential.WorkloadID != "rsa-bot" {
		t.Fatalf("issued to %s", out.Credential.WorkloadID)
	}
	// An ES256 assertion by a stranger for the Ed25519 workload, kid and all, is refused.
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a, err = issuer.SignAssertion(workload, issuerURL, ec, e.clock.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.iss.Issue(context.Background(), issuer.Request{Assertion: a, Scopes: []string{"invoices:read"}, Audience: audience})
	wantKind(t, err, fail.Unauthenticated)
}
