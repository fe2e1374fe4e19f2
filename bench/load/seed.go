package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/pdp/pdptest"
	"github.com/treaty-dev/treaty/revoker"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/token"
)

// seedIssuer is the issuer the seeded key is published for: tokens the seed mints carry it.
const seedIssuer = "https://load.treaty.test"

// seed writes a revoker log holding the fixture (as pdptest.NewFixture builds it: partners with
// three integrations and a workload each, all active) and a load-test signing key into DATA's
// revoker.db, the file `treaty serve --data DATA` opens, so that the server's PDP follows it at
// start. It mints one EdDSA token per workload, valid for -ttl, and writes them one per line to
// -tokens. The tokens are real credentials for that data dir only; keep the file with it.
func seed(args []string) error {
	fs := flag.NewFlagSet("seed", flag.ExitOnError)
	dataDir := fs.String("data", "", "data folder for treaty serve (created; must not hold a revoker.db yet)")
	partners := fs.Int("partners", 10_000, "partners in the fixture (three integrations and workloads each)")
	tokensPath := fs.String("tokens", "", "file to write the tokens to (default DATA/load-tokens.txt)")
	maxTokens := fs.Int("max-tokens", 30_000, "mint at most this many tokens (one per workload)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the minted tokens")
	fs.Parse(args)
	if *dataDir == "" {
		return fmt.Errorf("seed: -data is required")
	}
	if *tokensPath == "" {
		*tokensPath = filepath.Join(*dataDir, "load-tokens.txt")
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return err
	}
	dbPath := filepath.Join(*dataDir, "revoker.db")
	if _, err := os.Stat(dbPath); err == nil {
		return fmt.Errorf("seed: %s exists; seed a fresh data folder", dbPath)
	}
	st, err := store.OpenBolt(dbPath, revoker.Schema)
	if err != nil {
		return err
	}
	defer st.Close()
	log, err := revoker.Open(st, revoker.Config{})
	if err != nil {
		return err
	}

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	kid := "load-" + randomHex(4)
	jwk, err := (&jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: string(jose.EdDSA), Use: "sig"}).MarshalJSON()
	if err != nil {
		return err
	}
	events := []*treatyv1.Event{{Change: &treatyv1.Event_SigningKeyPublished{SigningKeyPublished: &treatyv1.SigningKeyPublished{
		Kid: kid, Algorithm: string(jose.EdDSA), PublicJwk: jwk, Issuer: seedIssuer,
	}}}}
	for p := range *partners {
		events = append(events, pdptest.Partner(pdptest.PartnerID(p), treatyv1.PartnerState_PARTNER_STATE_ACTIVE, pdptest.ContractEnd))
		for i := range pdptest.IntegrationsPerPartner {
			events = append(events,
				pdptest.Integration(pdptest.IntegrationID(p, i), pdptest.PartnerID(p), treatyv1.IntegrationState_INTEGRATION_STATE_ACTIVE,
					pdptest.FixtureScopes, []string{pdptest.FixtureAudience}),
				pdptest.Workload(pdptest.WorkloadID(p, i), pdptest.IntegrationID(p, i), pdptest.PartnerID(p), treatyv1.WorkloadState_WORKLOAD_STATE_ACTIVE))
		}
	}
	for len(events) > 0 {
		n := min(len(events), 2000)
		entries := make([]*treatyv1.PublishEntry, n)
		for i, ev := range events[:n] {
			entries[i] = &treatyv1.PublishEntry{RequestId: "seed-" + randomHex(12), Event: ev}
		}
		if _, err := log.Publish(context.Background(), entries); err != nil {
			return fmt.Errorf("seed: publish: %w", err)
		}
		events = events[n:]
	}

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv},
		(&jose.SignerOptions{}).WithHeader("kid", kid).WithType(token.Type))
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*tokensPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	now := time.Now()
	minted := 0
	for p := 0; p < *partners && minted < *maxTokens; p++ {
		for i := 0; i < pdptest.IntegrationsPerPartner && minted < *maxTokens; i++ {
			c := token.Claims{
				Issuer: seedIssuer, Subject: pdptest.WorkloadID(p, i), ClientID: pdptest.WorkloadID(p, i), Partner: pdptest.PartnerID(p),
				Integration: pdptest.IntegrationID(p, i), Scope: "read write", Audience: pdptest.FixtureAudience,
				IssuedAt: now.Unix(), Expiry: now.Add(*ttl).Unix(), ID: "load-" + randomHex(8), Sequence: log.Head(), Epoch: log.Epoch(),
			}
			raw, _ := json.Marshal(c)
			jws, err := signer.Sign(raw)
			if err != nil {
				return err
			}
			tok, err := jws.CompactSerialize()
			if err != nil {
				return err
			}
			fmt.Fprintln(w, tok)
			minted++
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Printf("seeded %s: %d partners, head %d, epoch %s; %d tokens in %s (action read, resource %s)\n",
		dbPath, *partners, log.Head(), log.Epoch(), minted, *tokensPath, pdptest.FixtureAudience)
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
