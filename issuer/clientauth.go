package issuer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"slices"
	"strings"

	"github.com/treaty-dev/treaty/fail"
)

// Client authentication methods, by their RFC 8414 names (token_endpoint_auth_methods_supported).
const (
	MethodPrivateKeyJWT           = "private_key_jwt"
	MethodTLSClientAuth           = "tls_client_auth"
	MethodSelfSignedTLSClientAuth = "self_signed_tls_client_auth"
	MethodClientSecretBasic       = "client_secret_basic"
	MethodClientSecretPost        = "client_secret_post"
)

// Sender constraints an integration may require of every token issued under it.
const (
	// ConstraintNone allows bearer tokens; a client that sends a DPoP proof still gets a
	// DPoP-bound token.
	ConstraintNone = "none"
	// ConstraintDPoP requires a valid DPoP proof: every token is bound to its key (cnf.jkt).
	ConstraintDPoP = "dpop"
	// ConstraintMTLS requires a TLS client certificate: every token is bound to it
	// (cnf.x5t#S256).
	ConstraintMTLS = "mtls"
	// ConstraintDPoPOrMTLS requires either: a DPoP proof if the client sends one, else its
	// client certificate.
	ConstraintDPoPOrMTLS = "dpop_or_mtls"
)

// Bindings a credential carries, as the inventory records them.
const (
	BindingNone     = "none"
	BindingDPoP     = "dpop"
	BindingMTLS     = "mtls"
	BindingDPoPMTLS = "dpop+mtls" // a DPoP proof sent under an mtls constraint: both are required
)

// Token types of an issued access token (the token_type of RFC 6749 section 7.1).
const (
	TokenTypeBearer = "Bearer"
	TokenTypeDPoP   = "DPoP"
)

// Errors a token endpoint maps to OAuth error codes; each comes wrapped in a fail.Error of the
// kind noted, whose message is for the client.
var (
	// ErrUnauthorizedClient: the client authenticated, but its integration does not allow the
	// method it used, or it did not present the certificate its integration binds tokens to
	// (fail.Denied; OAuth "unauthorized_client").
	ErrUnauthorizedClient = errors.New("unauthorized_client")
	// ErrInvalidDPoPProof: the DPoP proof is missing where the integration requires one, or is
	// not valid (fail.Invalid, field "dpop"; OAuth "invalid_dpop_proof", RFC 9449 section 5).
	ErrInvalidDPoPProof = errors.New("invalid_dpop_proof")
)

// TLSSubject names the CA-issued client certificate a workload authenticates with by
// tls_client_auth (RFC 8705 section 2.1.2): exactly one field is set.
type TLSSubject struct {
	// SubjectDN is the certificate's subject DN in RFC 4514 form, compared case-insensitively
	// with the subject as crypto/x509 renders it (pkix.Name.String), for example
	// "CN=orders-bot,O=Acme".
	SubjectDN string
	// SANDNS is a dNSName the certificate's subject alternative names must contain (compared
	// case-insensitively).
	SANDNS string
	// SANURI is a URI the certificate's subject alternative names must contain (compared exactly),
	// for example a SPIFFE id.
	SANURI string
}

// authenticateClient authenticates the client of req by the method its credentials show: a client
// secret is client_secret_basic or client_secret_post (as req.AuthMethod says); a client
// assertion is private_key_jwt; otherwise a TLS client certificate with a client_id is
// tls_client_auth or self_signed_tls_client_auth, whichever the certificate matches. It returns
// the workload and the method, and for an assertion its jti to record in the replay cache (nil
// for other methods; see replayClaim). Whether the integration allows the method is checked later,
// once the integration is known (checkClientMethod).
func (i *Issuer) authenticateClient(ctx context.Context, req Request) (Workload, string, *replayClaim, error) {
	if req.ClientSecret != "" {
		w, method, err := i.authenticateClientSecret(ctx, req)
		return w, method, nil, err
	}
	if req.Assertion == "" && req.AssertionType == "" && len(req.ClientCertificates) > 0 {
		w, method, err := i.authenticateTLS(ctx, req.ClientID, req.ClientCertificates)
		return w, method, nil, err
	}
	w, claim, err := i.authenticate(ctx, req.AssertionType, req.Assertion)
	if err != nil {
		return Workload{}, "", nil, err
	}
	// RFC 7521 section 4.2: a client_id sent beside an assertion must name the same client.
	if req.ClientID != "" && req.ClientID != w.ID {
		i.consume(claim) // the assertion verified: it stays single-use
		return Workload{}, "", nil, fail.Unauthenticatedf("client_id does not name the client the assertion authenticates")
	}
	return w, MethodPrivateKeyJWT, claim, nil
}

// authenticateClientSecret authenticates a client by one of its client secrets.
func (i *Issuer) authenticateClientSecret(ctx context.Context, req Request) (Workload, string, error) {
	if req.Assertion != "" || req.AssertionType != "" {
		return Workload{}, "", fail.Invalidf("client_secret", "use one client authentication method per request, a client secret or a client assertion")
	}
	method := req.AuthMethod
	switch method {
	case "":
		method = MethodClientSecretPost
	case MethodClientSecretBasic, MethodClientSecretPost:
	default:
		return Workload{}, "", fail.Invalidf("auth_method", "a client secret is sent by %s or %s", MethodClientSecretBasic, MethodClientSecretPost)
	}
	w, err := i.authenticateSecret(ctx, req.ClientID, req.ClientSecret)
	if err != nil {
		return Workload{}, "", err
	}
	return w, method, nil
}

// checkClientMethod refuses a client authentication method the integration does not allow. An
// empty method (issuance that authenticated its client by other means) is not checked here.
func checkClientMethod(integ Integration, method string) error {
	if method == "" || slices.Contains(integ.ClientAuthMethods, method) {
		return nil
	}
	allowed := strings.Join(integ.ClientAuthMethods, ", ")
	if allowed == "" {
		allowed = "none"
	}
	return unauthorizedClient("client authentication method %s is not allowed for integration %s (allowed: %s)", method, integ.ID, allowed)
}

// maxClientSecret bounds a presented secret; Treaty's are 53 bytes.
const maxClientSecret = 256

// errBadSecret is the one answer to a secret that does not authenticate its client: unknown
// client, no such secret, expired or revoked. Callers cannot tell which; the log can.
var errBadSecret = fail.Unauthenticatedf("client authentication failed: the client secret is not a live secret of its client")

// authenticateSecret verifies a client secret against the hashes of the workload's live secrets.
// The secret is hashed once and compared in constant time with every verifier, so neither the
// comparison nor the number of secrets tried leaks how much of it matched. The secret never
// appears in a log or an error.
func (i *Issuer) authenticateSecret(ctx context.Context, clientID, secret string) (Workload, error) {
	if !fail.ValidID(clientID) {
		if clientID == "" {
			return Workload{}, fail.Invalidf("client_id", "client_id is required with a client secret")
		}
		return Workload{}, errBadSecret
	}
	if len(secret) > maxClientSecret {
		return Workload{}, errBadSecret
	}
	w, err := i.cfg.Directory.Workload(ctx, clientID)
	if err != nil {
		if fail.KindOf(err) == fail.NotFound {
			i.log.Info("issuer: client secret for an unknown workload", "workload", clientID)
			return Workload{}, errBadSecret
		}
		return Workload{}, directoryError(err, "the client")
	}
	verifiers, err := i.cfg.Directory.ClientSecrets(ctx, w.ID)
	if err != nil {
		return Workload{}, directoryError(err, "the client's secrets")
	}
	sum := sha256.Sum256([]byte(secret))
	now := i.cfg.Now()
	matched, live := 0, 0
	for _, v := range verifiers {
		eq := subtle.ConstantTimeCompare(sum[:], v.SHA256[:])
		matched |= eq
		// The registry lists live secrets only, but its clock is not the issuer's: an expired
		// secret is refused here too.
		if now.Before(v.Expires) {
			live |= eq
		}
	}
	switch {
	case matched == 1 && live == 0:
		i.log.Info("issuer: expired client secret", "workload", w.ID)
		return Workload{}, errBadSecret
	case matched == 0:
		i.log.Info("issuer: client secret matches no live secret of the workload", "workload", w.ID, "live_secrets", len(verifiers))
		return Workload{}, errBadSecret
	}
	return w, nil
}
