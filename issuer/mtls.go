package issuer

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"net/url"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/treaty-dev/treaty/fail"
)

// maxClientChain bounds the certificate chain a client may present.
const maxClientChain = 8

// CertThumbprint returns the RFC 8705 certificate thumbprint of cert: the base64url (unpadded)
// SHA-256 of its DER encoding, the value of cnf.x5t#S256.
func CertThumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authenticateTLS authenticates the client clientID by the certificate chain it presented on the
// TLS connection (leaf first), as RFC 8705 section 2 describes. The TLS handshake has already
// proved that the client holds the leaf's private key; this decides whose key it is:
//
//   - tls_client_auth: the workload has a registered subject (TLSSubject), the leaf chains to one
//     of Config.ClientCAs for client authentication, and carries that subject;
//   - self_signed_tls_client_auth: the leaf's public key is one of the workload's registered keys
//     (the same RFC 7638 thumbprint). The certificate is only a container for the key, so its
//     issuer and validity dates are not checked (RFC 8705 section 2.2).
//
// Every failure is Unauthenticated with the same message, so that callers cannot probe which
// clients exist; the log tells them apart.
func (i *Issuer) authenticateTLS(ctx context.Context, clientID string, chain []*x509.Certificate) (Workload, string, error) {
	if clientID == "" {
		return Workload{}, "", fail.Invalidf("client_id", "client_id is required with TLS client authentication: the workload id")
	}
	if !fail.ValidID(clientID) {
		return Workload{}, "", fail.Unauthenticatedf("client_id is not a valid workload id")
	}
	if len(chain) > maxClientChain || chain[0] == nil {
		return Workload{}, "", errBadCertificate
	}
	w, err := i.cfg.Directory.Workload(ctx, clientID)
	if err != nil {
		if fail.KindOf(err) == fail.NotFound {
			i.log.Info("issuer: TLS client authentication for an unknown workload", "workload", clientID)
			return Workload{}, "", errBadCertificate
		}
		return Workload{}, "", directoryError(err, "the client")
	}
	leaf := chain[0]
	if w.TLS != nil && i.verifyChain(chain) && w.TLS.matches(leaf) {
		return w, MethodTLSClientAuth, nil
	}
	if selfSignedMatch(leaf, w.Keys) {
		return w, MethodSelfSignedTLSClientAuth, nil
	}
	i.log.Info("issuer: client certificate matches neither the workload's registered subject nor its keys",
		"workload", w.ID, "subject", leaf.Subject.String(), "x5t#S256", CertThumbprint(leaf))
	return Workload{}, "", errBadCertificate
}

// errBadCertificate is the one answer to a client certificate that authenticates nobody.
var errBadCertificate = fail.Unauthenticatedf("client authentication failed: the TLS client certificate is not one registered for its client")

// verifyChain reports whether the chain's leaf verifies for client authentication against the
// configured client CAs, the rest of the chain serving as intermediates.
func (i *Issuer) verifyChain(chain []*x509.Certificate) bool {
	if i.cfg.ClientCAs == nil {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		if c != nil {
			inter.AddCert(c)
		}
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots: i.cfg.ClientCAs, Intermediates: inter, CurrentTime: i.cfg.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err == nil
}

// matches reports whether cert carries the subject.
func (t *TLSSubject) matches(cert *x509.Certificate) bool {
	switch {
	case t.SubjectDN != "":
		return strings.EqualFold(cert.Subject.String(), t.SubjectDN)
	case t.SANDNS != "":
		return slices.ContainsFunc(cert.DNSNames, func(n string) bool { return strings.EqualFold(n, t.SANDNS) })
	case t.SANURI != "":
		return slices.ContainsFunc(cert.URIs, func(u *url.URL) bool { return u.String() == t.SANURI })
	}
	return false
}

// selfSignedMatch reports whether the certificate's public key is one of the workload's keys.
func selfSignedMatch(cert *x509.Certificate, keys []WorkloadKey) bool {
	sum, err := (&jose.JSONWebKey{Key: cert.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return false
	}
	kid := base64.RawURLEncoding.EncodeToString(sum)
	return slices.ContainsFunc(keys, func(k WorkloadKey) bool { return k.KeyID == kid })
}
