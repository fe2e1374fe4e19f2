package issuer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"

	"github.com/treaty-dev/treaty/fail"
)

// Client authentication methods, by their RFC 7591 token_endpoint_auth_method names. Every
// credential records the one its client authenticated with, so posture reports can find the
// credentials obtained with a weaker method.
const (
	// AuthPrivateKeyJWT is an RFC 7523 client assertion signed by a registered key.
	AuthPrivateKeyJWT = "private_key_jwt"
	// AuthClientSecretBasic is a client secret in the HTTP Authorization header (RFC 6749 §2.3.1).
	AuthClientSecretBasic = "client_secret_basic"
	// AuthClientSecretPost is a client secret in the request body (RFC 6749 §2.3.1).
	AuthClientSecretPost = "client_secret_post"
)

// maxClientSecret bounds a presented secret; Treaty's are 53 bytes.
const maxClientSecret = 256

// errBadSecret is the one answer to a secret that does not authenticate its client: unknown
// client, no such secret, expired or revoked. Callers cannot tell which; the log can.
var errBadSecret = fail.Unauthenticatedf("client authentication failed: the client secret is not a live secret of its client")

// authenticateClient authenticates the client of req by the method it used (a client secret if
// one is given, else a client assertion) and returns the workload with the method's name.
func (i *Issuer) authenticateClient(ctx context.Context, req Request) (Workload, string, error) {
	if req.ClientSecret == "" {
		w, err := i.authenticate(ctx, req.AssertionType, req.Assertion)
		if err != nil {
			return Workload{}, "", err
		}
		// RFC 7521 §4.2: a client_id sent beside an assertion must name the same client.
		if req.ClientID != "" && req.ClientID != w.ID {
			return Workload{}, "", fail.Unauthenticatedf("client_id does not name the client the assertion authenticates")
		}
		return w, AuthPrivateKeyJWT, nil
	}
	if req.Assertion != "" || req.AssertionType != "" {
		return Workload{}, "", fail.Invalidf("client_secret", "use one client authentication method per request, a client secret or a client assertion")
	}
	method := req.AuthMethod
	switch method {
	case "":
		method = AuthClientSecretPost
	case AuthClientSecretBasic, AuthClientSecretPost:
	default:
		return Workload{}, "", fail.Invalidf("auth_method", "a client secret is sent by %s or %s", AuthClientSecretBasic, AuthClientSecretPost)
	}
	w, err := i.authenticateSecret(ctx, req.ClientID, req.ClientSecret)
	if err != nil {
		return Workload{}, "", err
	}
	return w, method, nil
}

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
