package tests

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestVerdict checks how the suite judges a stage designed to break a rule
// (the book's Bad Examples): it must break it, in the predicted way, and
// keep every other rule.
func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		designed  bool
		seen      int
		failed    bool
		cell      string
		complains bool
	}{
		{false, 0, false, cellPass, false},
		{false, 0, true, cellFail, false},
		{true, 1, false, cellDesigned, false},
		{true, 0, false, cellFail, true}, // designed to fail, but passed
		{true, 1, true, cellFail, false}, // failed in the designed way, and another
		{true, 0, true, cellFail, false},
	} {
		cell, complaint := verdict(tc.designed, tc.seen, tc.failed)
		assert.Equal(t, tc.cell, cell, "%+v", tc)
		assert.Equal(t, tc.complains, complaint != "", "%+v", tc)
	}
}

// TestDesignedViolationIsRecorded checks that a violation of the designed
// kind is recorded with its figure and does not fail the check.
func TestDesignedViolationIsRecorded(t *testing.T) {
	c := &check{
		T:     t,
		ctx:   context.Background(),
		stage: stage{dir: "bad", designed: map[string]string{"concurrency": "stall"}},
		prop:  property{name: "concurrency"},
	}
	c.violation("stall", "the second client waited %v", "3s")
	assert.Equal(t, []string{"the second client waited 3s"}, c.violations["stall"])
	assert.Equal(t, []string{"as designed, stall: the second client waited 3s"}, c.figures())
	assert.False(t, t.Failed())
}
