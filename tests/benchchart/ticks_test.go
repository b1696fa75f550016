package main

import (
	"slices"
	"testing"
)

// The labels the three charts' y axes get, from their ranges in the
// make bench of the tutorial: every power of ten, and more when the axis
// spans few of them.
func TestLogTicksLabels(t *testing.T) {
	for _, c := range []struct {
		min, max float64
		want     []string
	}{
		{300, 5e6, []string{"1k", "10k", "100k", "1M"}},     // memory: 4 decades
		{4, 80, []string{"5", "10", "20", "50"}},            // CPU: 1.3 decades
		{2, 8, []string{"2", "3", "4", "5", "6", "7", "8"}}, // system calls: under one
		{0.1, 0.5, []string{"0.1", "0.2", "0.3", "0.4", "0.5"}},
	} {
		var got []string
		for _, tick := range (logTicks{}).Ticks(c.min, c.max) {
			if !tick.IsMinor() {
				got = append(got, tick.Label)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("logTicks(%g, %g) labels %q, want %q", c.min, c.max, got, c.want)
		}
	}
}

func TestCountLabel(t *testing.T) {
	for n, want := range map[int]string{1: "1", 10: "10", 1000: "1k", 5000: "5k", 10000: "10k", 250: "250", 2500: "2500"} {
		if got := countLabel(n); got != want {
			t.Errorf("countLabel(%d) = %q, want %q", n, got, want)
		}
	}
}
