package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/treaty-dev/treaty/feed"
	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
)

// acks records what a server acknowledged, per kind of write.
type acks struct {
	mu       sync.Mutex
	partners map[string]bool   // registry: created partners
	revoked  map[string]uint64 // revoker: credential jti -> sequence
	issued   map[string]bool   // issuer: jti of issued tokens (its inventory)
}

func (a *acks) add(fn func()) { a.mu.Lock(); fn(); a.mu.Unlock() }

// TestKillNineEveryStore runs every service in one process and, in each of three rounds, keeps
// concurrent writers busy on every store (partners created in the registry, credentials revoked
// in the revoker and followed by the PDP, tokens issued and inventoried by the issuer, checks
// recorded in the decision log), kills the process with SIGKILL, and then, with the process gone:
// every bbolt file in the data folder passes bbolt's consistency check (opened read-only), and the
// registry's audit hash chain verifies (treaty audit verify --db). After a restart every write
// acknowledged in any round is there.
func TestKillNineEveryStore(t *testing.T) {
	t.Parallel()
	addr, data := freeAddr(t), t.TempDir()
	// The writers and the check afterwards make thousands of administrative calls as one identity:
	// no rate limit here, where what is tested is what survives a kill.
	srv := startServer(t, addr, "--data", data, "--admin-rate-limit", "0", "--issuance-rate-limit", "0")
	conn := dial(t, addr)
	reg := treatyv1.NewRegistryServiceClient(conn)
	iss := treatyv1.NewIssuerServiceClient(conn)
	rev := treatyv1.NewRevocationServiceClient(conn)
	pdp := treatyv1.NewDecisionServiceClient(conn)
	ctx := context.Background()

	const aud = "https://orders.crash.test"
	workload, key := crashOnboard(t, reg, aud)
	desc, err := iss.GetIssuer(ctx, &treatyv1.GetIssuerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	a := &acks{partners: map[string]bool{}, revoked: map[string]uint64{}, issued: map[string]bool{}}

	for round := range 3 {
		var wg sync.WaitGroup
		stop := make(chan struct{})
		running := func() bool {
			select {
			case <-stop:
				return false
			default:
				return true
			}
		}
		call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 5*time.Second) }
		var tokMu sync.Mutex
		var lastToken string
		for w := range 4 {
			wg.Go(func() { // registry
				for i := 0; running(); i++ {
					id := fmt.Sprintf("crash-%d-%d-%04d", round, w, i)
					cctx, cancel := call()
					_, err := reg.CreatePartner(cctx, &treatyv1.CreatePartnerRequest{Actor: "e2e", Activate: true, ApprovedBy: "e2e",
						Partner: &treatyv1.Partner{Id: id, DisplayName: "Crash " + id, OwnerTeam: "e2e", ContractEndTime: timestamppb.New(time.Now().AddDate(1, 0, 0))}})
					cancel()
					if err != nil {
						return
					}
					a.add(func() { a.partners[id] = true })
				}
			})
			wg.Go(func() { // issuer (and the PDP's CheckIssuance)
				for running() {
					assertion, err := issuer.SignAssertion(workload, desc.GetIssuer(), key, time.Now(), issuer.MaxAssertionLifetime)
					if err != nil {
						t.Error(err)
						return
					}
					cctx, cancel := call()
					resp, err := iss.IssueToken(cctx, &treatyv1.IssueTokenRequest{ClientAssertion: assertion, Scopes: []string{"orders.read"}, Audience: aud})
					cancel()
					if err != nil {
						return
					}
					a.add(func() { a.issued[resp.GetCredential().GetId()] = true })
					tokMu.Lock()
					lastToken = resp.GetAccessToken()
					tokMu.Unlock()
				}
			})
			wg.Go(func() { // decision log
				for running() {
					tokMu.Lock()
					tok := lastToken
					tokMu.Unlock()
					if tok == "" {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					cctx, cancel := call()
					_, err := pdp.Check(cctx, &treatyv1.CheckRequest{Subject: &treatyv1.CheckRequest_Token{Token: tok}, Action: "orders.read", Resource: aud})
					cancel()
					if err != nil {
						return
					}
				}
			})
		}
		for w := range 16 {
			wg.Go(func() { // revoker, followed by the PDP's cache
				for i := 0; running(); i++ {
					jti := fmt.Sprintf("crash-%d-%02d-%05d", round, w, i)
					cctx, cancel := call()
					resp, err := rev.Revoke(cctx, &treatyv1.RevokeRequest{TargetKind: treatyv1.TargetKind_TARGET_KIND_CREDENTIAL,
						TargetId: jti, Reason: "crash test", Actor: "e2e"})
					cancel()
					if err != nil {
						return
					}
					a.add(func() { a.revoked[jti] = resp.GetSequence() })
				}
			})
		}
		time.Sleep(1500 * time.Millisecond)
		srv.kill()
		close(stop)
		wg.Wait()

		checkFiles(t, data)
		if r := treaty(t, nil, "", "audit", "verify", "--db", filepath.Join(data, "registry.db")); r.code != 0 {
			t.Fatalf("round %d: audit chain after SIGKILL: %s", round, r)
		}
		srv.start()
		verifyAcks(t, a, reg, iss, rev)
		t.Logf("round %d: %d partners, %d revocations, %d tokens acknowledged so far", round, len(a.partners), len(a.revoked), len(a.issued))
	}
	if len(a.partners) < 30 || len(a.revoked) < 100 || len(a.issued) < 30 {
		t.Fatalf("few writes acknowledged (%d partners, %d revocations, %d tokens); the test proves little", len(a.partners), len(a.revoked), len(a.issued))
	}
}

// crashOnboard creates an active partner, integration and workload with a fresh key.
func crashOnboard(t *testing.T, reg treatyv1.RegistryServiceClient, aud string) (string, ed25519.PrivateKey) {
	t.Helper()
	ctx := context.Background()
	if _, err := reg.CreatePartner(ctx, &treatyv1.CreatePartnerRequest{Actor: "e2e", Activate: true, ApprovedBy: "e2e",
		Partner: &treatyv1.Partner{Id: "acme", DisplayName: "Acme", OwnerTeam: "e2e", ContractEndTime: timestamppb.New(time.Now().AddDate(1, 0, 0))}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateIntegration(ctx, &treatyv1.CreateIntegrationRequest{Actor: "e2e", Activate: true, ApprovedBy: "e2e",
		Integration: &treatyv1.Integration{Id: "acme-api", PartnerId: "acme", AllowedScopes: []string{"orders.read"}, Audiences: []string{aud},
			MaxCredentialTtl: durationpb.New(10 * time.Minute), Environment: "production"}}); err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateWorkload(ctx, &treatyv1.CreateWorkloadRequest{Id: "acme-bot", IntegrationId: "acme-api", Actor: "e2e",
		PublicKeyPem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}); err != nil {
		t.Fatal(err)
	}
	return "acme-bot", priv
}

// checkFiles runs bbolt's consistency check on every .db file in dir, each opened read-only.
func checkFiles(t *testing.T, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.db"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, path := range files {
		db, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			t.Fatalf("open %s read-only after SIGKILL: %v", path, err)
		}
		err = db.View(func(tx *bolt.Tx) error {
			var problems []string
			for err := range tx.Check() {
				problems = append(problems, err.Error())
			}
			if len(problems) > 0 {
				return fmt.Errorf("%d problems, first: %s", len(problems), problems[0])
			}
			return nil
		})
		db.Close()
		if err != nil {
			t.Fatalf("%s after SIGKILL: %v", path, err)
		}
		names = append(names, filepath.Base(path))
	}
	for _, want := range []string{"registry.db", "issuer.db", "pdp.db", "revoker.db", "decisionlog.db"} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Fatalf("no %s among the checked files %v", want, names)
		}
	}
}

// verifyAcks checks, through the restarted server, that every acknowledged write is there.
func verifyAcks(t *testing.T, a *acks, reg treatyv1.RegistryServiceClient, iss treatyv1.IssuerServiceClient, rev treatyv1.RevocationServiceClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range a.partners {
		if _, err := reg.GetPartner(ctx, &treatyv1.GetPartnerRequest{Id: id}); err != nil {
			t.Fatalf("acknowledged partner %s after the restart: %v", id, err)
		}
	}
	for jti := range a.issued {
		if _, err := iss.GetCredential(ctx, &treatyv1.GetCredentialRequest{Id: jti}); err != nil {
			t.Fatalf("acknowledged issuance of %s after the restart: %v", jti, err)
		}
	}
	snap, err := rev.Snapshot(ctx, &treatyv1.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	state := feed.FromProto(snap.GetState())
	for jti, seq := range a.revoked {
		if rc, ok := state.RevokedCredential(jti); !ok || rc.Sequence != seq {
			t.Fatalf("acknowledged revocation of %s at %d after the restart: %+v, %v", jti, seq, rc, ok)
		}
	}
}
