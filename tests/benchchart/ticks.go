package main

import (
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
)

// logTicks marks a log axis so that values can be read off it.
// gonum/plot's own plot.LogTicks labels only the powers of ten the axis
// spans end to end, which left the old CPU chart one label ("10") and the
// system-call chart none. This one labels every power of ten, and, where
// the axis spans too few of them to read a value between, the 2s and 5s
// (under 2.5 decades) or every digit (under one decade). The other digits
// get an unlabelled minor tick, as on log paper.
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	span := math.Log10(max / min)
	labelled := func(digit int) bool {
		switch {
		case digit == 1 || span < 1:
			return true
		case span < 2.5:
			return digit == 2 || digit == 5
		}
		return false
	}
	var ticks []plot.Tick
	for exp := int(math.Floor(math.Log10(min))); exp <= int(math.Ceil(math.Log10(max))); exp++ {
		for digit := 1; digit <= 9; digit++ {
			v := float64(digit) * math.Pow10(exp)
			if v < min*(1-1e-9) || v > max*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if labelled(digit) {
				t.Label = short(digit, exp)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// short writes digit×10^exp the way a slide would: 1, 20, 500, 1k, 10k,
// 2M, 0.5. It is built from the digit and the exponent, not from the
// float, so that 3×0.1 is "0.3" and not "0.30000000000000004".
func short(digit, exp int) string {
	switch {
	case exp >= 6:
		return strconv.Itoa(digit) + zeros(exp-6) + "M"
	case exp >= 3:
		return strconv.Itoa(digit) + zeros(exp-3) + "k"
	case exp >= 0:
		return strconv.Itoa(digit) + zeros(exp)
	}
	return strconv.FormatFloat(float64(digit)*math.Pow10(exp), 'f', -exp, 64)
}

func zeros(n int) string { return strings.Repeat("0", n) }

// countTicks marks the x axis at exactly the connection counts measured,
// each labelled, so that every point sits on a labelled tick.
func countTicks(ns []int) plot.ConstantTicks {
	var ticks plot.ConstantTicks
	for _, n := range ns {
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: countLabel(n)})
	}
	return ticks
}

// countLabel writes a count that is one digit and zeros as short does
// (5000 is "5k", which leaves room for "10k" beside it), and any other in
// full (250, 2500).
func countLabel(n int) string {
	digit, exp := n, 0
	for digit >= 10 && digit%10 == 0 {
		digit /= 10
		exp++
	}
	if digit < 10 {
		return short(digit, exp)
	}
	return strconv.Itoa(n)
}

// niceRange widens [lo, hi] a little, so that no point sits on the frame,
// and out to one significant digit (4.3 → 4, 75.6 → 80), so that the axis
// ends on a tick.
func niceRange(lo, hi float64) (float64, float64) {
	down := func(v float64) float64 {
		p := math.Pow10(int(math.Floor(math.Log10(v))))
		return math.Floor(v/p) * p
	}
	up := func(v float64) float64 {
		p := math.Pow10(int(math.Floor(math.Log10(v))))
		return math.Ceil(v/p) * p
	}
	return down(lo / 1.05), up(hi * 1.05)
}
