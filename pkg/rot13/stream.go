package rot13

import (
	"bytes"
	"sync"
)

// MaxLine is the book's MAX_LINE: the most bytes of one line a server holds
// waiting for its newline. A stream with MaxLine or more bytes and no
// newline sends them on as they are.
const MaxLine = 16384

// ReadSize is how much room Space offers for one read: one MAX_LINE.
const ReadSize = MaxLine

// MaxPending is how much a stream holds, received and not yet sent, before
// its server should stop reading from the connection (Full): a client that
// writes and never reads must not make a server buffer without limit.
const MaxPending = 1 << 20

// Stream is the ROT13 line service on one connection: bytes go in as they
// arrive and come out ROT13'd, a complete line at a time. It is the
// bookkeeping of the book's struct fd_state (buffer, buffer_used,
// n_written, write_upto), used by every server that does its own reading
// and writing, with the book's bugs fixed:
//
//   - Unlike the book, which keeps MAX_LINE bytes of a line and drops the
//     rest, a stream holding MaxLine bytes without a newline releases them
//     as they are, so the output is exactly the ROT13 of the input.
//   - Unlike the book, whose buffer is reset only when everything in it has
//     been sent, a stream moves what is left to the front when it needs
//     room, so pipelined lines and partial lines never overflow it.
//   - Unlike the book, whose buffer is MAX_LINE bytes and whose servers
//     stop answering when it fills, a stream grows as needed and says when
//     it holds MaxPending bytes (Full), so that its server stops reading
//     and the kernel pushes back on the client.
//
// A stream holds a buffer only while it holds bytes: one it empties goes
// back to a pool shared by every stream, so that a server's idle
// connections cost a few dozen bytes each, not a MAX_LINE buffer.
//
// The zero value is an empty stream. A Stream is not safe for concurrent
// use.
type Stream struct {
	buf   []byte // buf[sent:] received and ROT13'd, not yet sent
	sent  int    // the book's n_written
	ready int    // buf[sent:ready] may be sent: the book's write_upto
	ended bool   // the client will send nothing more
}

// buffers are the ReadSize buffers of streams that hold nothing.
var buffers = sync.Pool{New: func() any { return new([ReadSize]byte) }}

// Space returns room to read into, at least ReadSize bytes; the caller
// reads into it and passes the count to Received.
func (s *Stream) Space() []byte {
	if s.buf == nil {
		s.buf = buffers.Get().(*[ReadSize]byte)[:0]
	}
	pending := len(s.buf) - s.sent
	if cap(s.buf)-len(s.buf) < ReadSize && cap(s.buf)-pending >= ReadSize && s.sent >= pending {
		// Move what is left to the front, rather than grow. Only when no
		// more is left than was sent: each byte sent pays for at most one
		// byte moved, so a stream that is read slowly is not copied over
		// and over.
		n := copy(s.buf, s.buf[s.sent:])
		s.buf, s.ready, s.sent = s.buf[:n], s.ready-s.sent, 0
	}
	if cap(s.buf)-len(s.buf) < ReadSize {
		grown := make([]byte, len(s.buf), 2*cap(s.buf)+ReadSize)
		copy(grown, s.buf)
		s.buf = grown
	}
	return s.buf[len(s.buf):cap(s.buf)]
}

// Received takes the n bytes just read into Space. Every line they
// complete becomes ready to send.
func (s *Stream) Received(n int) {
	fresh := s.buf[len(s.buf) : len(s.buf)+n]
	InPlace(fresh)
	if i := bytes.LastIndexByte(fresh, '\n'); i >= 0 {
		s.ready = len(s.buf) + i + 1
	}
	s.buf = s.buf[:len(s.buf)+n]
	if len(s.buf)-s.ready >= MaxLine {
		s.ready = len(s.buf)
	}
}

// End says the client has finished sending: whatever is held, an
// unterminated last line included, becomes ready to send.
func (s *Stream) End() {
	s.ended = true
	s.ready = len(s.buf)
	if s.Pending() == 0 {
		s.release()
	}
}

// Ready returns the bytes that may be sent now.
func (s *Stream) Ready() []byte {
	return s.buf[s.sent:s.ready]
}

// Sent drops the first n bytes of Ready, which have been sent.
func (s *Stream) Sent(n int) {
	s.sent += n
	if s.sent == len(s.buf) {
		s.release()
	}
}

// release gives an emptied stream's buffer back: to the pool if it is one
// of ReadSize bytes, else to the garbage collector (a burst's memory goes
// back once it is answered).
func (s *Stream) release() {
	if cap(s.buf) == ReadSize {
		buffers.Put((*[ReadSize]byte)(s.buf[:ReadSize]))
	}
	s.buf, s.sent, s.ready = nil, 0, 0
}

// Pending returns how many bytes the stream holds, received and not sent.
func (s *Stream) Pending() int {
	return len(s.buf) - s.sent
}

// Full reports whether the stream holds MaxPending bytes or more: its
// server should stop reading from the connection until some are sent.
func (s *Stream) Full() bool {
	return s.Pending() >= MaxPending
}

// WantsRead reports whether the server should read from the connection:
// the client has not ended and the stream is not Full.
func (s *Stream) WantsRead() bool {
	return !s.ended && !s.Full()
}

// Done reports whether the client has ended and everything has been sent:
// the server can close the connection.
func (s *Stream) Done() bool {
	return s.ended && s.Pending() == 0
}

// NewBuffer returns a buffer of MaxLine bytes, the book's fd_state buffer,
// for a connection that has bytes to hold. It comes from a pool shared by
// every connection of the program, and goes back with FreeBuffer once the
// connection holds nothing: an idle connection then costs a few dozen
// bytes, not MaxLine, and a busy server reuses the same few buffers.
func NewBuffer() []byte {
	return buffers.Get().(*[ReadSize]byte)[:]
}

// FreeBuffer gives back a buffer from NewBuffer, which the caller no
// longer uses.
func FreeBuffer(b []byte) {
	buffers.Put((*[ReadSize]byte)(b[:ReadSize]))
}
