package rot13

import "sync"

// MaxLine is the book's MAX_LINE: the size of the buffer a server holds
// for one connection, and so the longest line it waits for before it
// sends the bytes it has on as they are.
const MaxLine = 16384

// buffers are the MaxLine buffers of connections that hold nothing.
var buffers = sync.Pool{New: func() any { return new([MaxLine]byte) }}

// NewBuffer returns a buffer of MaxLine bytes, the book's fd_state buffer,
// for a connection that has bytes to hold. It comes from a pool shared by
// every connection of the program, and goes back with FreeBuffer once the
// connection holds nothing: an idle connection then costs a few dozen
// bytes, not MaxLine, and a busy server reuses the same few buffers.
func NewBuffer() []byte {
	return buffers.Get().(*[MaxLine]byte)[:]
}

// FreeBuffer gives back a buffer from NewBuffer, which the caller no
// longer uses.
func FreeBuffer(b []byte) {
	buffers.Put((*[MaxLine]byte)(b[:MaxLine]))
}
