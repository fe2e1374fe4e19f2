package access

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unsafe"

	"github.com/treaty-dev/treaty/fail"
	"github.com/treaty-dev/treaty/store"
)

// TokenPrefix starts every Treaty-issued token, so that one found in a file or a log is
// recognizable (and secret scanners can match it).
const TokenPrefix = "trt_"

// TokenLen is the length of a token: the prefix and 32 random bytes in unpadded base64url.
var TokenLen = len(TokenPrefix) + base64.RawURLEncoding.EncodedLen(32)

// NewToken returns a fresh token (also for an operator provisioning an admin token, see Bootstrap). 256 random bits need no slow hash: SHA-256 of the token is
// what is stored and looked up.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("access: random token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// ValidTokenShape reports whether s looks like a Treaty token (prefix and length); it says
// nothing about whether the token is known.
func ValidTokenShape(s string) bool { return len(s) == TokenLen && strings.HasPrefix(s, TokenPrefix) }

// hashToken returns the SHA-256 of tok, reading the string's bytes in place: the conversion to
// a slice would copy the token to the heap on every authentication, and Sum256 neither keeps
// nor changes its input.
func hashToken(tok string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(tok), len(tok)))
}

// The refusals of authentication, made once: the hot path allocates no error. Their messages
// never hold the credential.
var (
	errBadToken = fail.Unauthenticatedf("the token is not valid: it is malformed, unknown or its identity was deleted")
	errBadName  = fail.Unauthenticatedf("the certificate's name is not a known identity")
)

// view is an immutable snapshot of the identities, what authentication reads. It holds callers
// by pointer, so that handing one out (into every call's context) copies and allocates nothing.
type view struct {
	byToken map[[32]byte]*Caller
	byName  map[string]*Caller
	count   int // identities in the store (not counting the internal caller)
}

// loadView builds the view from the store, with the internal caller's token.
func loadView(tx store.Tx, internal [32]byte) (*view, error) {
	v := &view{byToken: map[[32]byte]*Caller{}, byName: map[string]*Caller{}}
	v.byToken[internal] = &Caller{Name: InternalName, Roles: []Role{RoleService}, Via: ViaInternal}
	err := tx.Scan(bucketIdentities, nil, nil, func(_, val []byte) (bool, error) {
		var rec identityRecord
		if err := json.Unmarshal(val, &rec); err != nil {
			return false, fmt.Errorf("decode identity: %w", err)
		}
		v.count++
		v.byName[rec.Name] = &Caller{Name: rec.Name, Roles: rec.Roles, Via: ViaCertificate}
		if len(rec.TokenHash) == 32 {
			v.byToken[[32]byte(rec.TokenHash)] = &Caller{Name: rec.Name, Roles: rec.Roles, Via: ViaToken}
		}
		return true, nil
	})
	return v, err
}

// AuthenticateToken returns the caller a token belongs to, or an Unauthenticated error. It
// reads only memory and allocates nothing: it runs on every call. The caller is shared by every
// call of that identity until the identities change: read it, never change it.
func (a *Access) AuthenticateToken(token string) (*Caller, error) {
	if !ValidTokenShape(token) {
		return nil, errBadToken
	}
	c, ok := a.view.Load().byToken[hashToken(token)]
	if !ok {
		return nil, errBadToken
	}
	return c, nil
}

// AuthenticateName returns the identity named name as a caller that authenticated by a
// certificate, or an Unauthenticated error. The caller must have verified the certificate the
// name comes from. The internal caller has no name to authenticate with. The caller is shared,
// as AuthenticateToken's is.
func (a *Access) AuthenticateName(name string) (*Caller, error) {
	c, ok := a.view.Load().byName[name]
	if !ok {
		return nil, errBadName
	}
	return c, nil
}

// maxTokenFile bounds what ReadTokenFile reads: a token is 47 bytes.
const maxTokenFile = 4 << 10

// ReadTokenFile reads a Treaty token from path (one line, as Bootstrap writes it; spaces and
// newlines around it are ignored): a credential file. Its errors never quote the file's content.
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read credential file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("read credential file %s: %w", path, err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("credential file %s is larger than a token", path)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("credential file %s is empty", path)
	}
	if !ValidTokenShape(tok) {
		return "", errors.New("credential file " + path + " does not hold a Treaty token (trt_ and 43 characters)")
	}
	return tok, nil
}
