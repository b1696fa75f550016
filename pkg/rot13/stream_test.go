package rot13

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// feed reads p into s through Space, as a server's read would.
func feed(t testing.TB, s *Stream, p []byte) {
	for len(p) > 0 {
		space := s.Space()
		if len(space) < ReadSize {
			t.Fatalf("Space offers %d bytes, less than ReadSize", len(space))
		}
		n := copy(space, p)
		s.Received(n)
		p = p[n:]
	}
}

// drain sends up to n bytes of Ready, and returns them.
func drain(s *Stream, n int) []byte {
	r := s.Ready()
	n = min(n, len(r))
	out := bytes.Clone(r[:n])
	s.Sent(n)
	return out
}

func TestStreamReleasesCompleteLines(t *testing.T) {
	var s Stream
	feed(t, &s, []byte("Hello\nWor"))
	assert.Equal(t, "Uryyb\n", string(s.Ready()), "only the complete line")
	assert.Equal(t, 9, s.Pending())
	feed(t, &s, []byte("ld"))
	assert.Equal(t, "Uryyb\n", string(s.Ready()), "still no newline")
	assert.Equal(t, "Ury", string(drain(&s, 3)), "a partial send")
	feed(t, &s, []byte("\nand"))
	assert.Equal(t, "yb\nJbeyq\n", string(s.Ready()))
	assert.Equal(t, "yb\nJbeyq\n", string(drain(&s, 100)))
	assert.True(t, s.WantsRead())
	assert.False(t, s.Done())
	s.End()
	assert.False(t, s.WantsRead(), "nothing more to read after the end")
	assert.Equal(t, "naq", string(s.Ready()), "the unterminated last line, at the end")
	drain(&s, 3)
	assert.True(t, s.Done())
}

func TestStreamMaxLine(t *testing.T) {
	var s Stream
	line := bytes.Repeat([]byte("a"), MaxLine-1)
	feed(t, &s, line)
	assert.Empty(t, s.Ready(), "MaxLine-1 bytes wait for their newline")
	feed(t, &s, []byte("b"))
	assert.Len(t, s.Ready(), MaxLine, "MaxLine bytes go without one")
	feed(t, &s, []byte("c\nd"))
	assert.Len(t, s.Ready(), MaxLine+2, "and the rest of the line goes with its newline")
	assert.Equal(t, MaxLine+3, s.Pending())
}

func TestStreamFullAndShrinks(t *testing.T) {
	var s Stream
	feed(t, &s, bytes.Repeat([]byte("0123456789abcde\n"), MaxPending/16))
	assert.True(t, s.Full())
	assert.False(t, s.WantsRead(), "a full stream asks its server to stop reading")
	drain(&s, 1)
	assert.False(t, s.Full())
	drain(&s, MaxPending)
	assert.Zero(t, s.Pending())
	assert.Nil(t, s.buf, "an answered burst gives its memory back")
}

// TestEmptyStreamHoldsNoBuffer: a stream holds its buffer only while it
// holds bytes, so an idle connection costs no buffer; line after line, the
// same pooled buffer comes and goes, and nothing is allocated.
func TestEmptyStreamHoldsNoBuffer(t *testing.T) {
	var s Stream
	assert.Nil(t, s.buf)
	feed(t, &s, []byte("a line\n"))
	assert.Equal(t, ReadSize, cap(s.buf))
	drain(&s, len(s.Ready()))
	assert.Nil(t, s.buf, "an emptied stream gives its buffer back")

	line := []byte("a line of sixty-four bytes, give or take, for the ROT13 server\n")
	allocs := testing.AllocsPerRun(1000, func() {
		space := s.Space()
		s.Received(copy(space, line))
		s.Sent(len(s.Ready()))
	})
	// Under the race detector, sync.Pool drops one buffer in four on
	// purpose: a quarter of an allocation per line, which AllocsPerRun's
	// whole number still counts as 0.
	assert.Zero(t, allocs)

	feed(t, &s, []byte("no newline"))
	s.End()
	drain(&s, len(s.Ready()))
	assert.True(t, s.Done())
	assert.Nil(t, s.buf)
	var ended Stream
	ended.End()
	assert.True(t, ended.Done())
	assert.Nil(t, ended.buf, "an end with nothing held holds nothing")
}

func TestStreamCompactsInsteadOfGrowing(t *testing.T) {
	var s Stream
	// Pipelined lines and a partial one, answered as they come, never
	// grow the buffer past a few reads' worth.
	for i := range 10000 {
		feed(t, &s, []byte("a line, and half of the nex"))
		drain(&s, len(s.Ready()))
		feed(t, &s, []byte("t one\n"))
		drain(&s, len(s.Ready()))
		require.LessOrEqual(t, cap(s.buf), 4*ReadSize, "after %d rounds", i)
	}
}

// FuzzStream sends random input through a stream in random reads, sends
// random amounts of what is ready, and checks the stream's promises: the
// output is exactly the ROT13 of the input; nothing is ready before its
// line is complete, MaxLine bytes are waiting, or the input has ended; and
// Space always has room. The input is a pattern repeated, so that small
// corpus entries (quick to mutate and to minimize) make lines longer than
// MaxLine.
func FuzzStream(f *testing.F) {
	f.Add([]byte("Hello\nworld\n"), uint16(0), uint64(1))
	f.Add([]byte("no newline here "), uint16(3000), uint64(2))
	f.Add([]byte("a\n\x00\xff long line with a newline now and then "), uint16(1000), uint64(3))
	f.Fuzz(func(t *testing.T, pattern []byte, repeat uint16, seed uint64) {
		in := bytes.Repeat(pattern, 1+int(repeat)%4096)
		rng := rand.New(rand.NewPCG(seed, seed))
		var s Stream
		var out []byte
		for p := in; len(p) > 0; {
			k := min(len(p), 1+rng.IntN(2*ReadSize))
			feed(t, &s, p[:k])
			p = p[k:]
			// Everything read so far is either sent or held.
			fed := len(in) - len(p)
			if s.Pending()+len(out) != fed {
				t.Fatalf("%d fed, %d sent, %d pending", fed, len(out), s.Pending())
			}
			// What is held back has no newline and is shorter than MaxLine.
			held := s.buf[s.ready:]
			if bytes.IndexByte(held, '\n') >= 0 || len(held) >= MaxLine {
				t.Fatalf("held back %d bytes: %q", len(held), held[:min(len(held), 40)])
			}
			out = append(out, drain(&s, rng.IntN(len(s.Ready())+1))...)
		}
		s.End()
		out = append(out, drain(&s, len(s.Ready()))...)
		if !s.Done() {
			t.Fatalf("not done: %d pending", s.Pending())
		}
		if want := Append(nil, in); !bytes.Equal(out, want) {
			t.Fatalf("output is not the ROT13 of the input: %d bytes, want %d", len(out), len(want))
		}
	})
}
