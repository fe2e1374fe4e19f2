package issuer

import (
	"crypto/x509"
	"fmt"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/token"
)

// bind decides what the token is bound to, from the request's DPoP proof and client certificate
// and the integration's sender constraint, and returns its cnf claim (nil for a bearer token) and
// the binding the inventory records:
//
//   - a DPoP proof, whenever one is sent, is verified and binds the token to its key (cnf.jkt),
//     as RFC 9449 section 5 has the authorization server do;
//   - the client certificate binds the token (cnf.x5t#S256) only when the integration asks for
//     it: under ConstraintMTLS always, under ConstraintDPoPOrMTLS when no DPoP proof was sent. A
//     certificate-bound token can only be used where the enforcement point sees the client's
//     certificate, so binding is the integration's choice, never a surprise for a client that
//     merely authenticated with its certificate;
//   - ConstraintDPoP refuses a request without a valid proof (ErrInvalidDPoPProof), ConstraintMTLS
//     and ConstraintDPoPOrMTLS a request with neither (ErrUnauthorizedClient).
func (i *Issuer) bind(integ Integration, req Request) (*token.Confirmation, string, error) {
	var cnf token.Confirmation
	if req.DPoPProof != "" {
		if req.HTTPMethod == "" || req.HTTPURL == "" {
			return nil, "", fmt.Errorf("issuer: a DPoP proof was passed without the token request's method and URL (Request.HTTPMethod, Request.HTTPURL)")
		}
		jkt, err := i.checkDPoP(req.DPoPProof, req.HTTPMethod, req.HTTPURL)
		if err != nil {
			return nil, "", err
		}
		cnf.JKT = jkt
	}
	var cert *x509.Certificate
	if len(req.ClientCertificates) > 0 {
		cert = req.ClientCertificates[0]
	}
	switch integ.SenderConstraint {
	case "", ConstraintNone:
	case ConstraintDPoP:
		if cnf.JKT == "" {
			return nil, "", dpopError("integration %s requires DPoP-bound tokens: send a DPoP proof (RFC 9449) with the token request", integ.ID)
		}
	case ConstraintMTLS:
		if cert == nil {
			return nil, "", unauthorizedClient("integration %s requires certificate-bound tokens: connect to the token endpoint with a TLS client certificate", integ.ID)
		}
		cnf.X5TS256 = CertThumbprint(cert)
	case ConstraintDPoPOrMTLS:
		if cnf.JKT == "" && cert == nil {
			return nil, "", unauthorizedClient("integration %s requires sender-constrained tokens: send a DPoP proof, or connect with a TLS client certificate", integ.ID)
		}
		if cnf.JKT == "" {
			cnf.X5TS256 = CertThumbprint(cert)
		}
	default:
		// Fail closed on a constraint this issuer does not know.
		return nil, "", fmt.Errorf("issuer: integration %s requires sender constraint %q, which this issuer does not know", integ.ID, integ.SenderConstraint)
	}
	switch {
	case cnf.JKT != "" && cnf.X5TS256 != "":
		return &cnf, BindingDPoPMTLS, nil
	case cnf.JKT != "":
		return &cnf, BindingDPoP, nil
	case cnf.X5TS256 != "":
		return &cnf, BindingMTLS, nil
	}
	return nil, BindingNone, nil
}

// tokenType is the token_type of a token with the given binding: a DPoP-bound token is used with
// the DPoP authorization scheme, anything else as a bearer token (RFC 8705 keeps Bearer).
func tokenType(binding string) string {
	if binding == BindingDPoP || binding == BindingDPoPMTLS {
		return TokenTypeDPoP
	}
	return TokenTypeBearer
}

func unauthorizedClient(format string, args ...any) error {
	return &fail.Error{Kind: fail.Denied, Msg: fmt.Sprintf(format, args...), Err: ErrUnauthorizedClient}
}
