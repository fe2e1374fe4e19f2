package main

import (
	"slices"
	"testing"
	"time"
)

// The rounds' own ratios pair each health phase with the Check phase of the same round, also
// after the median rounds were picked (which once sorted the rounds in place, pairing the
// fastest health phase with the fastest Check phase instead).
func TestRoundRatiosPairPhasesOfOneRound(t *testing.T) {
	phase := func(p50 time.Duration, calls int) result {
		return result{p50: p50, calls: calls, elapsed: time.Second}
	}
	// Round 0 ran on a slow machine, round 1 on a fast one, round 2 in between.
	health := []result{phase(2*time.Millisecond, 10_000), phase(time.Millisecond, 30_000), phase(1500*time.Microsecond, 20_000)}
	check := []result{phase(2200*time.Microsecond, 9_000), phase(1100*time.Microsecond, 27_000), phase(1650*time.Microsecond, 18_000)}
	if h, k := median(health), median(check); h.calls != 20_000 || k.calls != 18_000 {
		t.Fatalf("median rounds: health %d calls, check %d, want the middle ones", h.calls, k.calls)
	}
	p50s, tputs := roundRatios(health, check)
	for i, got := range [][]float64{p50s, tputs} {
		want := []float64{1.1, 1.1, 1.1}
		if i == 1 {
			want = []float64{0.9, 0.9, 0.9}
		}
		for j := range got {
			if d := got[j] - want[j]; d > 1e-9 || d < -1e-9 {
				t.Fatalf("ratios %v, want %v: phases of different rounds were paired", got, want)
			}
		}
	}
	if !slices.Equal([]int{health[0].calls, health[1].calls, health[2].calls}, []int{10_000, 30_000, 20_000}) {
		t.Fatal("median reordered the rounds")
	}
}
