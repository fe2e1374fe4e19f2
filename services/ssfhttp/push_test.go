package ssfhttp_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/services/grpctest"
	"github.com/treaty-dev/treaty/services/revokersvc"
	"github.com/treaty-dev/treaty/ssf"
	"github.com/treaty-dev/treaty/ssf/ssftest"
	"github.com/treaty-dev/treaty/store"
	"github.com/treaty-dev/treaty/store/storetest"
)

// TestPushReceiverEndToEnd is a receiver's whole journey: discover the transmitter, fetch its
// keys, create a push stream to itself, then see every kind of revocation arrive as a SET that
// verifies against the published JWKS and names the right event and subject.
func TestPushReceiverEndToEnd(t *testing.T) {
	e := newEnv(t, nil, nil)
	md, jwks := e.discover(t)
	checkMetadata(t, md, e.issuer)

	rcv := ssftest.NewReceiver(t, 0)
	var cfg ssf.StreamConfig
	code := e.call(t, http.MethodPost, md.ConfigurationEndpoint, map[string]any{
		"delivery":         map[string]string{"method": ssf.MethodPush, "endpoint_url": rcv.URL, "authorization_header": "Bearer receiver-secret"},
		"events_requested": []string{ssf.EventCredentialChange, ssf.EventSessionRevoked, "urn:example:unknown"},
		"description":      "test receiver",
	}, &cfg)
	if code != http.StatusCreated {
		t.Fatalf("create stream = %d", code)
	}
	if cfg.Iss != e.issuer || cfg.StreamID == "" || cfg.Aud == "" || cfg.Delivery.Method != ssf.MethodPush {
		t.Fatalf("created stream = %+v", cfg)
	}
	if !slices.Equal(cfg.EventsDelivered, []string{ssf.EventCredentialChange, ssf.EventSessionRevoked}) {
		t.Fatalf("events_delivered = %v", cfg.EventsDelivered)
	}

	// Verification first: the receiver checks the stream works end to end.
	if code := e.call(t, http.MethodPost, md.VerificationEndpoint, map[string]string{"stream_id": cfg.StreamID, "state": "s-123"}, nil); code != http.StatusNoContent {
		t.Fatalf("verify = %d", code)
	}
	ver := ssftest.Verify(t, rcv.WaitSETs(t, 1)[0], jwks)
	typ, obj := ver.EventType(t)
	if typ != ssf.EventVerification || obj["state"] != "s-123" {
		t.Fatalf("verification SET event %s %v", typ, obj)
	}
	if sub := ver.Claims["sub_id"].(map[string]any); sub["format"] != "opaque" || sub["id"] != cfg.StreamID {
		t.Fatalf("verification sub_id = %v, want opaque stream id", sub)
	}

	const jti = "tok-0001"
	e.feed.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, jti)
	e.feed.Revoke(t, treatyv1.TargetKind_TARGET_KIND_SIGNING_KEY, ssftest.KeyID)
	e.feed.Revoke(t, treatyv1.TargetKind_TARGET_KIND_WORKLOAD, ssftest.Workload)
	e.feed.Revoke(t, treatyv1.TargetKind_TARGET_KIND_INTEGRATION, ssftest.Integration)
	e.feed.Revoke(t, treatyv1.TargetKind_TARGET_KIND_PARTNER, ssftest.Partner)

	tokIss := "https://treaty.example.com"
	want := []struct {
		event, change, credType string
		sub                     string // the sub_id, as canonical JSON
	}{
		{ssf.EventCredentialChange, "revoke", ssf.CredentialTypeAccessToken,
			fmt.Sprintf(`{"format":"jwt_id","iss":%q,"jti":%q}`, tokIss, jti)},
		{ssf.EventCredentialChange, "revoke", ssf.CredentialTypeSigningKey,
			fmt.Sprintf(`{"application":{"format":"uri","uri":%q},"credential":{"format":"opaque","id":%q},"format":"complex"}`, tokIss, ssftest.KeyID)},
		{ssf.EventSessionRevoked, "", "", fmt.Sprintf(`{"format":"iss_sub","iss":%q,"sub":%q}`, tokIss, ssftest.Workload)},
		{ssf.EventSessionRevoked, "", "", fmt.Sprintf(`{"application":{"format":"opaque","id":%q},"format":"complex"}`, ssftest.Integration)},
		{ssf.EventSessionRevoked, "", "", fmt.Sprintf(`{"format":"complex","tenant":{"format":"opaque","id":%q}}`, ssftest.Partner)},
	}
	sets := rcv.WaitSETs(t, 1+len(want))[1:]
	seen := map[string]bool{}
	for i, w := range want {
		s := ssftest.Verify(t, sets[i], jwks)
		checkSET(t, s, e.issuer, cfg.Aud)
		if seen[s.Claims["jti"].(string)] {
			t.Fatalf("SET %d repeats jti %v", i, s.Claims["jti"])
		}
		seen[s.Claims["jti"].(string)] = true
		typ, obj := s.EventType(t)
		if typ != w.event {
			t.Fatalf("SET %d event = %s, want %s", i, typ, w.event)
		}
		if got, _ := obj["change_type"].(string); got != w.change {
			t.Fatalf("SET %d change_type = %v, want %q", i, obj["change_type"], w.change)
		}
		if w.credType != "" && obj["credential_type"] != w.credType {
			t.Fatalf("SET %d credential_type = %v, want %q", i, obj["credential_type"], w.credType)
		}
		if reason, _ := obj["reason_admin"].(map[string]any); reason["en"] == "" || reason["en"] == nil {
			t.Fatalf("SET %d reason_admin = %v, want a non-empty reason (interop profile)", i, obj["reason_admin"])
		}
		if got := canonical(t, s.Claims["sub_id"]); got != w.sub {
			t.Fatalf("SET %d sub_id = %s, want %s", i, got, w.sub)
		}
	}
	for _, a := range rcv.Authorization() {
		if a != "Bearer receiver-secret" {
			t.Fatalf("push Authorization header = %q, want the stream's authorization_header", a)
		}
	}
	if n := rcv.WrongContentType(); n != 0 {
		t.Fatalf("%d deliveries without Content-Type application/secevent+jwt", n)
	}
}

func checkMetadata(t *testing.T, md ssf.Metadata, issuer string) {
	t.Helper()
	if md.SpecVersion != "1_0" || md.JWKSURI == "" || md.ConfigurationEndpoint == "" || md.StatusEndpoint == "" || md.VerificationEndpoint == "" {
		t.Fatalf("metadata misses a field the interop profile requires: %+v", md)
	}
	if !slices.Contains(md.DeliveryMethodsSupported, ssf.MethodPush) || !slices.Contains(md.DeliveryMethodsSupported, ssf.MethodPoll) {
		t.Fatalf("delivery_methods_supported = %v", md.DeliveryMethodsSupported)
	}
	if len(md.AuthorizationSchemes) == 0 || md.AuthorizationSchemes[0].SpecURN != "urn:ietf:rfc:6749" {
		t.Fatalf("authorization_schemes = %v", md.AuthorizationSchemes)
	}
}

// checkSET checks what every SSF SET must be: typed, from the issuer, to the stream's audience,
// without sub or exp, with a jti, iat and sub_id.
func checkSET(t *testing.T, s ssftest.SET, issuer, aud string) {
	t.Helper()
	if s.Type != ssf.SETType {
		t.Fatalf("typ = %q, want %q", s.Type, ssf.SETType)
	}
	if s.Claims["iss"] != issuer || s.Claims["aud"] != aud {
		t.Fatalf("iss, aud = %v, %v; want %s, %s", s.Claims["iss"], s.Claims["aud"], issuer, aud)
	}
	for _, forbidden := range []string{"sub", "exp"} {
		if _, ok := s.Claims[forbidden]; ok {
			t.Fatalf("SET carries %q, which SSF forbids", forbidden)
		}
	}
	for _, required := range []string{"jti", "iat", "sub_id", "txn"} {
		if _, ok := s.Claims[required]; !ok {
			t.Fatalf("SET lacks %q: %v", required, s.Claims)
		}
	}
}

// TestPushRetriesKeepOrder: a receiver failing its first deliveries with 503 gets every SET once
// it recovers, in feed order.
func TestPushRetriesKeepOrder(t *testing.T) {
	e := newEnv(t, nil, nil)
	md, jwks := e.discover(t)
	rcv := ssftest.NewReceiver(t, 4)
	var cfg ssf.StreamConfig
	if code := e.call(t, http.MethodPost, md.ConfigurationEndpoint, map[string]any{
		"delivery": map[string]string{"method": ssf.MethodPush, "endpoint_url": rcv.URL},
	}, &cfg); code != http.StatusCreated {
		t.Fatalf("create stream = %d", code)
	}
	var jtis []string
	for i := range 6 {
		jti := fmt.Sprintf("tok-%04d", i)
		jtis = append(jtis, jti)
		e.feed.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, jti)
	}
	sets := rcv.WaitSETs(t, len(jtis))
	if len(sets) != len(jtis) {
		t.Fatalf("got %d SETs, want %d (a SET was duplicated)", len(sets), len(jtis))
	}
	for i, raw := range sets {
		sub := ssftest.Verify(t, raw, jwks).Claims["sub_id"].(map[string]any)
		if sub["jti"] != jtis[i] {
			t.Fatalf("SET %d is about %v, want %s: order broken", i, sub["jti"], jtis[i])
		}
	}
	if rcv.Attempts() < len(jtis)+4 {
		t.Fatalf("attempts = %d, want at least %d (4 failures retried)", rcv.Attempts(), len(jtis)+4)
	}
}

// TestRestartResumesWithoutLoss: SETs queued while the receiver is down survive closing the
// transmitter and reopening its store, and events appended while it was closed are delivered
// too, in order, with the same jtis as before the restart.
func TestRestartResumesWithoutLoss(t *testing.T) {
	feed := ssftest.NewFeed(t)
	path := t.TempDir() + "/ssf.db"
	down := ssftest.NewReceiver(t, 1<<30) // refuses everything
	first, err := store.OpenBolt(path, ssf.Schema)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, feed, first)
	var cfg ssf.StreamConfig
	if code := e.call(t, http.MethodPost, e.issuer+"/ssf/stream", map[string]any{
		"delivery": map[string]string{"method": ssf.MethodPush, "endpoint_url": down.URL},
	}, &cfg); code != http.StatusCreated {
		t.Fatalf("create stream = %d", code)
	}
	_, jwks1 := e.discover(t)
	for i := range 3 {
		feed.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, fmt.Sprintf("tok-%04d", i))
	}
	waitQueued(t, e.tr, cfg.StreamID, 3)
	e.tr.Close()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// While the transmitter is down, more revocations land in the feed.
	for i := 3; i < 5; i++ {
		feed.Revoke(t, treatyv1.TargetKind_TARGET_KIND_CREDENTIAL, fmt.Sprintf("tok-%04d", i))
	}

	second := storetest.OpenBoltAt(t, path, ssf.Schema)
	e2 := newEnv(t, feed, second)
	_, jwks2 := e2.discover(t)
	if jwks1.Keys[0].KeyID != jwks2.Keys[0].KeyID {
		t.Fatalf("signing key changed across the restart: %s -> %s", jwks1.Keys[0].KeyID, jwks2.Keys[0].KeyID)
	}
	up := ssftest.NewReceiver(t, 0)
	if code := e2.call(t, http.MethodPatch, e2.issuer+"/ssf/stream", map[string]any{
		"stream_id": cfg.StreamID, "delivery": map[string]string{"method": ssf.MethodPush, "endpoint_url": up.URL},
	}, nil); code != http.StatusOK {
		t.Fatalf("patch delivery = %d", code)
	}
	sets := up.WaitSETs(t, 5)
	if len(sets) != 5 {
		t.Fatalf("got %d SETs after the restart, want 5", len(sets))
	}
	for i, raw := range sets {
		s := ssftest.Verify(t, raw, jwks2)
		if got := s.Claims["sub_id"].(map[string]any)["jti"]; got != fmt.Sprintf("tok-%04d", i) {
			t.Fatalf("SET %d is about %v: lost or out of order", i, got)
		}
	}
}

func waitQueued(t *testing.T, tr *ssf.Transmitter, id string, n int) {
	t.Helper()
	for range 400 {
		got, err := tr.Queued(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		sleepShort()
	}
	t.Fatalf("stream never had %d SETs queued", n)
}

// TestFollowsRemoteRevoker: the transmitter follows a revoker over real gRPC (revokersvc's
// feed.Source), as it does when the revoker runs in another process.
func TestFollowsRemoteRevoker(t *testing.T) {
	feed := ssftest.NewFeed(t)
	conn := grpctest.Serve(t, revokersvc.New(revokersvc.Config{Log: feed.Log, Heartbeat: 100 * time.Millisecond}).Register)
	e := newEnvWith(t, feed, nil, revokersvc.NewSource(conn), nil)
	md, jwks := e.discover(t)
	rcv := ssftest.NewReceiver(t, 0)
	var cfg ssf.StreamConfig
	if code := e.call(t, http.MethodPost, md.ConfigurationEndpoint, map[string]any{
		"delivery": map[string]string{"method": ssf.MethodPush, "endpoint_url": rcv.URL},
	}, &cfg); code != http.StatusCreated {
		t.Fatalf("create stream = %d", code)
	}
	feed.Revoke(t, treatyv1.TargetKind_TARGET_KIND_PARTNER, ssftest.Partner)
	s := ssftest.Verify(t, rcv.WaitSETs(t, 1)[0], jwks)
	checkSET(t, s, e.issuer, cfg.Aud)
	if typ, _ := s.EventType(t); typ != ssf.EventSessionRevoked {
		t.Fatalf("event %s", typ)
	}
}
