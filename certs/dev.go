package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// ServiceName is the identity name of the server certificate WriteDev creates (its URI SAN): the
// name Treaty's services authenticate as when they present that certificate to each other as a
// client certificate. Give it the role service (`treaty` access commands) on a deployment that
// uses the development CA.
const ServiceName = "spiffe://treaty.local/service"

// Validity of what WriteDev creates.
const (
	devCAValidity   = 365 * 24 * time.Hour
	devLeafValidity = 90 * 24 * time.Hour
	// devBackdate tolerates clocks a little behind the one that signed.
	devBackdate = 5 * time.Minute
)

// DefaultDevHosts are the server certificate's names when DevOptions.Hosts is empty.
var DefaultDevHosts = []string{"localhost", "127.0.0.1", "::1"}

// DefaultDevIdentities are the client certificates made when DevOptions.Identities is empty.
var DefaultDevIdentities = []string{"admin"}

// DevOptions says what WriteDev creates.
type DevOptions struct {
	// Hosts are the DNS names and IP addresses in the server certificate (DefaultDevHosts if empty).
	Hosts []string
	// Identities are the names of the client certificates, one each (DefaultDevIdentities if
	// empty): 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit.
	Identities []string
	// Force replaces existing files; without it WriteDev writes nothing if any file exists.
	Force bool
}

// DevFiles names the files WriteDev wrote.
type DevFiles struct {
	CA, CAKey         string // ca.pem, ca-key.pem
	Server, ServerKey string // server.pem, server-key.pem
	Clients           []DevClient
}

// DevClient names one client certificate's files.
type DevClient struct {
	Name      string // the identity name: the certificate's subject CN
	Cert, Key string // NAME.pem, NAME-key.pem
}

var (
	devIdentityRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	devHostRE     = regexp.MustCompile(`^[A-Za-z0-9*][A-Za-z0-9*._-]{0,252}$`)
)

// WriteDev creates a development CA and certificates in dir (made 0700 if missing), for a test
// deployment, never for production:
//   - ca.pem and ca-key.pem: an ECDSA P-256 CA valid for a year;
//   - server.pem and server-key.pem: valid for 90 days for the given hosts, usable for both
//     serverAuth and clientAuth (a Treaty server presents it to its peers as its client
//     certificate), named by the URI SAN ServiceName;
//   - NAME.pem and NAME-key.pem per identity: valid for 90 days, clientAuth only, CN = NAME.
//
// Keys are written 0600, certificates 0644. Without opts.Force it refuses, before writing
// anything, when any of the files exists; with it each file is replaced atomically, so a server
// reloading them never reads half a file (and Files keeps its old pair while the certificate
// and its key are briefly out of step).
func WriteDev(dir string, opts DevOptions) (DevFiles, error) {
	hosts := opts.Hosts
	if len(hosts) == 0 {
		hosts = DefaultDevHosts
	}
	idents := opts.Identities
	if len(idents) == 0 {
		idents = DefaultDevIdentities
	}
	var dnsNames []string
	var ips []net.IP
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if !devHostRE.MatchString(h) {
			return DevFiles{}, fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
		}
		dnsNames = append(dnsNames, h)
	}

	files := DevFiles{
		CA: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca-key.pem"),
		Server: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
	}
	all := []string{files.CA, files.CAKey, files.Server, files.ServerKey}
	for _, name := range idents {
		if !devIdentityRE.MatchString(name) {
			return DevFiles{}, fmt.Errorf("identity %q: want 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
		}
		c := DevClient{Name: name, Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem")}
		files.Clients = append(files.Clients, c)
		all = append(all, c.Cert, c.Key)
	}
	seen := map[string]bool{}
	for _, f := range all {
		if seen[f] {
			return DevFiles{}, fmt.Errorf("%s would be written twice: an identity's name collides with another file's", f)
		}
		seen[f] = true
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return DevFiles{}, err
	}
	if !opts.Force {
		for _, f := range all {
			if _, err := os.Lstat(f); err == nil {
				return DevFiles{}, fmt.Errorf("%s exists; use --force to overwrite it", f)
			}
		}
	}

	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return DevFiles{}, err
	}
	caSerial, err := serial()
	if err != nil {
		return DevFiles{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: caSerial,
		// The serial in the name tells one development CA from the next in tools and errors.
		Subject:               pkix.Name{CommonName: fmt.Sprintf("Treaty development CA %x", caSerial.Bytes()[:4]), Organization: []string{"Treaty (development only)"}},
		NotBefore:             now.Add(-devBackdate),
		NotAfter:              now.Add(devCAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return DevFiles{}, fmt.Errorf("create the CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return DevFiles{}, err
	}

	service, err := url.Parse(ServiceName)
	if err != nil {
		return DevFiles{}, err
	}
	type leaf struct {
		cert, key string
		tmpl      x509.Certificate
	}
	leaves := []leaf{{files.Server, files.ServerKey, x509.Certificate{
		Subject:     pkix.Name{CommonName: "treaty server"},
		DNSNames:    dnsNames,
		IPAddresses: ips,
		URIs:        []*url.URL{service},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}}}
	for _, c := range files.Clients {
		leaves = append(leaves, leaf{c.Cert, c.Key, x509.Certificate{
			Subject:     pkix.Name{CommonName: c.Name},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}})
	}

	// Everything is made before anything is written, so a failure leaves no half set behind.
	type out struct {
		path string
		data []byte
		perm os.FileMode
	}
	caKeyPEM, err := keyPEM(caKey)
	if err != nil {
		return DevFiles{}, err
	}
	writes := []out{{files.CA, certPEM(caDER), 0o644}, {files.CAKey, caKeyPEM, 0o600}}
	for _, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return DevFiles{}, err
		}
		if l.tmpl.SerialNumber, err = serial(); err != nil {
			return DevFiles{}, err
		}
		l.tmpl.NotBefore = now.Add(-devBackdate)
		l.tmpl.NotAfter = now.Add(devLeafValidity)
		l.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, &l.tmpl, ca, key.Public(), caKey)
		if err != nil {
			return DevFiles{}, fmt.Errorf("create %s: %w", l.cert, err)
		}
		kp, err := keyPEM(key)
		if err != nil {
			return DevFiles{}, err
		}
		writes = append(writes, out{l.cert, certPEM(der), 0o644}, out{l.key, kp, 0o600})
	}
	for _, w := range writes {
		if err := writeFile(w.path, w.data, w.perm, opts.Force); err != nil {
			return DevFiles{}, err
		}
	}
	return files, nil
}

// serial returns a random positive 128-bit serial number.
func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	if n.Sign() == 0 {
		n.SetInt64(1) // a zero serial is not allowed; 2^-128 odds
	}
	return n, nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeFile writes data to path with mode perm whatever the umask. Without replace it refuses an
// existing file (O_EXCL: no race with a check made earlier). With replace it writes a temporary
// file beside path and renames it over path, so a reader sees the old file or the new one.
func writeFile(path string, data []byte, perm os.FileMode, replace bool) error {
	var f *os.File
	var err error
	if replace {
		f, err = os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	} else {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists; use --force to overwrite it", path)
		}
	}
	if err != nil {
		return err
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && replace {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		if replace {
			os.Remove(f.Name())
		}
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
