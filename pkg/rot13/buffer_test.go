package rot13

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestBuffersAreReused: a buffer given back is handed out again, whole,
// and costs no allocation once the pool holds it.
func TestBuffersAreReused(t *testing.T) {
	b := NewBuffer()
	assert.Len(t, b, MaxLine)
	b[0] = 'x'
	FreeBuffer(b[:10]) // a shorter view of it goes back whole
	short := 0
	allocs := testing.AllocsPerRun(100, func() {
		c := NewBuffer()
		if len(c) != MaxLine {
			short++
		}
		FreeBuffer(c)
	})
	assert.Zero(t, short, "every buffer is MaxLine long")
	assert.Zero(t, allocs, "a buffer taken and given back allocates nothing")
}
