package tests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync/atomic"
	"time"

	"tinyasync/pkg/stagetest"
)

// lineWait is how long the suite waits for a complete line's answer: the
// contract asks for 100 ms and allows 1 s on a loaded machine.
const lineWait = time.Second

// A stream is one client connection and everything it sent and received,
// so that a check can hold the server to the rule that its output is
// exactly the ROT13 of its input: nothing lost, added or reordered.
type stream struct {
	c    *check
	conn *net.TCPConn
	sent []byte
	got  []byte

	checked int // how much of got consistent has already compared

	// answer, when the sender knows it already, is the ROT13 of sent:
	// consistent then compares with bytes.Equal, and goes byte by byte
	// only to say where a difference is.
	answer []byte

	// progress, when set, counts every byte of answer as it arrives,
	// for a watch over many streams (the chaos soak's).
	progress *atomic.Int64
}

// open connects a new client to s; it returns nil, having reported why,
// if it cannot.
func (c *check) open(s *stagetest.Server) *stream {
	conn := c.dial(s)
	if conn == nil {
		return nil
	}
	return &stream{c: c, conn: conn}
}

// oneClient starts the stage and connects a client to it; it returns nil,
// having reported why, if it cannot.
func (c *check) oneClient() *stream {
	return c.open(c.start())
}

// send writes p, all of it, before the check's deadline.
func (s *stream) send(p []byte) bool {
	if _, err := s.conn.Write(p); err != nil {
		s.c.Errorf("write %d bytes: %v", len(p), err)
		return false
	}
	s.sent = append(s.sent, p...)
	return true
}

// sendInPieces writes p from another goroutine, in pieces cut at random,
// none longer than maxPiece, while the caller reads: a server may answer
// before it has read all. Then it calls then, if set, and sends on the
// channel it returns how the writing went.
func (s *stream) sendInPieces(rng *rand.Rand, p []byte, maxPiece int, then func() error) <-chan error {
	var cuts []int
	for rest := len(p); rest > 0; {
		n := min(rest, 1+rng.IntN(maxPiece))
		cuts = append(cuts, n)
		rest -= n
	}
	s.sent = append(s.sent, p...)
	done := make(chan error, 1)
	go func() {
		for _, n := range cuts {
			if _, err := s.conn.Write(p[:n]); err != nil {
				done <- err
				return
			}
			p = p[n:]
		}
		if then != nil {
			done <- then()
			return
		}
		done <- nil
	}()
	return done
}

// errWait is returned by tryAwait when the bytes did not come in time.
var errWait = errors.New("no answer in time")

// tryAwait reads until at least n bytes have arrived in all, waiting at
// most within. Wrong bytes are always reported as a failure; a wait that
// runs out returns errWait, and a closed connection its read error, for
// the caller to judge.
func (s *stream) tryAwait(n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	if d := s.c.deadline(); d.Before(deadline) {
		deadline = d
	}
	s.conn.SetReadDeadline(deadline)
	defer s.conn.SetReadDeadline(s.c.deadline())
	buf := make([]byte, 64<<10)
	for len(s.got) < n {
		k, err := s.conn.Read(buf)
		s.got = append(s.got, buf[:k]...)
		s.count(k)
		if !s.consistent() {
			return errors.New("wrong bytes")
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errWait
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// await is tryAwait that reports anything but a full answer as a failure.
func (s *stream) await(n int, within time.Duration) bool {
	switch err := s.tryAwait(n, within); err {
	case nil:
		return true
	case errWait:
		s.c.Errorf("waited %v for %d bytes, got %d", within, n, len(s.got))
	default:
		s.c.Errorf("read after %d of %d bytes: %v", len(s.got), n, err)
	}
	return false
}

// awaitAll waits for the answer to everything sent so far.
func (s *stream) awaitAll(within time.Duration) bool {
	return s.await(len(s.sent), within)
}

// awaitEOF reads until the server closes, and checks that the answer is
// complete and that the close is an orderly end of stream, not a reset.
func (s *stream) awaitEOF(within time.Duration) bool {
	s.conn.SetReadDeadline(time.Now().Add(within))
	rest, err := io.ReadAll(progressReader{s})
	s.got = append(s.got, rest...)
	if !s.consistent() {
		return false
	}
	if err != nil {
		s.c.Errorf("reading to the end of the stream: %v (after %d of %d bytes)", err, len(s.got), len(s.sent))
		return false
	}
	if len(s.got) != len(s.sent) {
		s.c.Errorf("the server closed after %d of %d bytes", len(s.got), len(s.sent))
		return false
	}
	return true
}

func (s *stream) count(n int) {
	if s.progress != nil {
		s.progress.Add(int64(n))
	}
}

// progressReader reads a stream's connection and counts its progress.
type progressReader struct{ s *stream }

func (r progressReader) Read(p []byte) (int, error) {
	n, err := r.s.conn.Read(p)
	r.s.count(n)
	return n, err
}

// consistent checks that what arrived so far is the ROT13 of a prefix of
// what was sent. It compares only what arrived since it last looked, so
// that a soak's megabytes cost linear time.
func (s *stream) consistent() bool {
	if len(s.got) > len(s.sent) {
		s.c.Errorf("got %d bytes, more than the %d sent", len(s.got), len(s.sent))
		return false
	}
	if len(s.answer) >= len(s.got) && bytes.Equal(s.got[s.checked:], s.answer[s.checked:len(s.got)]) {
		s.checked = len(s.got)
		return true
	}
	for i := s.checked; i < len(s.got); i++ {
		if want := rot13Byte(s.sent[i]); s.got[i] != want {
			s.c.Errorf("byte %d of the answer is %q, want %q (ROT13 of %q); context %q",
				i, s.got[i], want, s.sent[i], s.got[max(0, i-20):min(len(s.got), i+20)])
			return false
		}
	}
	s.checked = len(s.got)
	return true
}

// reset closes the connection with an RST instead of a FIN, the way a
// client that crashes or is killed does.
func (s *stream) reset() {
	s.conn.SetLinger(0)
	s.conn.Close()
}

// exchange sends one line and waits for its answer: the proof that a
// client is being served.
func (s *stream) exchange(line string) bool {
	return s.send([]byte(line+"\n")) && s.awaitAll(lineWait)
}

// randomLines returns n lines of random bytes, any byte but '\n', of
// lengths up to maxLen, each ended by '\n'.
func randomLines(rng *rand.Rand, n, maxLen int) []byte {
	var b bytes.Buffer
	for range n {
		for range rng.IntN(maxLen + 1) {
			c := byte(rng.IntN(255))
			if c >= '\n' {
				c++
			}
			b.WriteByte(c)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// mib formats a byte count in MiB.
func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
