package pdp

import (
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/feed"
	"github.com/treaty-dev/treaty/token"
)

// The memo's scope and audience checks read the inline copies when the token leaves room for them,
// the claims otherwise, and agree with token.Claims.HasScope either way.
func TestEntryScopesAndAudience(t *testing.T) {
	key := &feed.SigningKey{Kid: "k1"}
	scopes := []string{"read write", "read", "", "a  b", " lead", "trail ", "x y z read"}
	actions := []string{"read", "write", "", "a", "b", "lead", "trail", "z", "rea", "read write"}
	for _, tokLen := range []int{400, inlineToken - 5, 2000} {
		for _, sc := range scopes {
			c := &token.Claims{Scope: sc, Audience: "api", Expiry: 1}
			e := newVerified(strings.Repeat("t", tokLen), 1, "k1", key, c)
			if want := tokLen+len(sc)+3 <= inlineToken; e.inline != want {
				t.Errorf("token %d, scope %q: inline = %v", tokLen, sc, e.inline)
			}
			for _, a := range actions {
				if got, want := e.scopeIndex(a) >= 0, c.HasScope(a); got != want {
					t.Errorf("token %d, scope %q: scopeIndex(%q) >= 0 is %v, HasScope %v", tokLen, sc, a, got, want)
				}
				if got, want := e.scopeIndex(a), scopeIndex(sc, a); got != want {
					t.Errorf("token %d, scope %q: scopeIndex(%q) = %d inline, %d on the claim", tokLen, sc, a, got, want)
				}
			}
			for _, aud := range []string{"api", "ap", "apis", ""} {
				if got := e.audienceIs(aud); got != (aud == "api") {
					t.Errorf("token %d: audienceIs(%q) = %v", tokLen, aud, got)
				}
			}
		}
	}
}

func TestUnixNanos(t *testing.T) {
	now := time.Now()
	for _, end := range []time.Time{{}, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), now.Add(-time.Nanosecond), now, now.Add(time.Nanosecond),
		time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if got, want := now.UnixNano() < unixNanos(end), now.Before(end); got != want {
			t.Errorf("end %v: memo says before = %v, time says %v", end, got, want)
		}
	}
	if unixNanos(time.Time{}) != math.MinInt64 {
		t.Error("the zero time is not before every now")
	}
}

// Readers never see a torn memo: each memo written here has its three words equal, and a reader
// sees either such a memo or the zero one. Run with -race.
func TestMemoSeqlock(t *testing.T) {
	e := newVerified("tok", 1, "k1", &feed.SigningKey{}, &token.Claims{Expiry: 1})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Go(func() {
			for i := uint64(1); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				v := i*2 + uint64(w)
				e.storeMemo(grantMemo{stateID: v, scopes: v, contractEnd: int64(v)})
			}
		})
	}
	for range 200_000 {
		m := e.loadMemo()
		if m != (grantMemo{}) && (m.scopes != m.stateID || m.contractEnd != int64(m.stateID)) {
			t.Fatalf("torn memo: %+v", m)
		}
	}
	close(stop)
	wg.Wait()
}
