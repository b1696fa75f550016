// Package evbuffer is our own libevent evbuffer (<event2/buffer.h>): a byte
// queue made of a chain of chunks, so that adding to it never moves what it
// already holds, and one buffer's contents move into another without being
// copied. It is what a bufferevent reads into and writes from.
//
//	in := evbuffer.New()
//	in.ReadFrom(fd, 16384)                 // evbuffer_read
//	line, ok := in.ReadLine(evbuffer.EOLLF) // evbuffer_readln
//	out.Add(line)                          // evbuffer_add
//	out.WriteTo(fd)                        // evbuffer_write
//
// Drawn, a buffer holding "Hello\nWor" might be:
//
//	chunk 0: [ · · · · H e l l o \n ]   (drained bytes before off; none spare)
//	chunk 1: [ W o r · · · · · · · ]   (spare room after end, for the next read)
//
// A Buffer is not safe for concurrent use.
package evbuffer

import (
	"bytes"
	"math/bits"
	"sync"
)

// Chunks start small and double, up to maxChunk, so that a buffer that
// grows a byte at a time wastes at most one chunk's spare room, and one
// that holds a megabyte holds it in a few dozen chunks.
const (
	minChunk = 4 << 10
	maxChunk = 64 << 10
)

// chunk is one piece of the chain: data is buf[off:end].
type chunk struct {
	buf      []byte
	off, end int
}

func (c *chunk) data() []byte { return c.buf[c.off:c.end] }
func (c *chunk) spare() int   { return len(c.buf) - c.end }

// chunkPools hold the chunks no buffer is using, a pool for each size from
// minChunk to maxChunk. A buffer hands back every chunk it empties, so an
// empty buffer holds no memory (a server's idle connections cost bytes, not
// kilobytes), and one that fills and empties, line after line, takes and
// returns the same chunk: it allocates nothing. libevent frees a chunk it
// empties and mallocs the next, malloc's free lists playing the pool's part;
// in Go, every allocation is work for the garbage collector.
var chunkPools [5]sync.Pool // 4, 8, 16, 32 and 64 KiB

// sizeClass returns which pool holds chunks of at least size bytes: chunk
// sizes are minChunk times a power of two.
func sizeClass(size int) int {
	return max(0, bits.Len(uint(size-1))-bits.Len(minChunk-1))
}

// newChunk returns an empty chunk of at least size bytes: from its pool if
// one is free, else new; beyond maxChunk, of exactly size bytes, unpooled.
func newChunk(size int) *chunk {
	if size > maxChunk {
		return &chunk{buf: make([]byte, size)}
	}
	k := sizeClass(size)
	if c, ok := chunkPools[k].Get().(*chunk); ok {
		return c
	}
	return &chunk{buf: make([]byte, minChunk<<k)}
}

// freeChunk hands a chunk no buffer holds any more back to its pool. Its
// bytes are not cleared: nothing reads a chunk beyond what was written to
// it.
func freeChunk(c *chunk) {
	c.off, c.end = 0, 0
	if size := len(c.buf); size <= maxChunk && size == minChunk<<sizeClass(size) {
		chunkPools[sizeClass(size)].Put(c)
	}
}

// Buffer is a chain of chunks holding a queue of bytes: libevent's struct
// evbuffer. The zero value is an empty buffer.
type Buffer struct {
	chunks []*chunk // the chain, first chunk first
	n      int      // bytes held
	cb     func(Change)
}

// New returns an empty buffer (evbuffer_new).
func New() *Buffer { return &Buffer{} }

// A Change is what one operation did to a buffer: its length before, and
// how many bytes it added and drained (struct evbuffer_cb_info).
type Change struct {
	Orig, Added, Drained int
}

// SetCallback has cb called after every operation that changes the
// buffer's length (evbuffer_setcb); nil stops it. A bufferevent uses it to
// learn that its output has grown.
func (b *Buffer) SetCallback(cb func(Change)) {
	b.cb = cb
}

func (b *Buffer) changed(orig, added, drained int) {
	if b.cb != nil && (added > 0 || drained > 0) {
		b.cb(Change{Orig: orig, Added: added, Drained: drained})
	}
}

// Len returns how many bytes the buffer holds (evbuffer_get_length).
func (b *Buffer) Len() int { return b.n }

// tail returns the last chunk, or nil.
func (b *Buffer) tail() *chunk {
	if len(b.chunks) == 0 {
		return nil
	}
	return b.chunks[len(b.chunks)-1]
}

// grow appends a new chunk with room for at least need bytes, or for the
// next size in the doubling sequence, whichever is larger.
func (b *Buffer) grow(need int) *chunk {
	size := minChunk
	if t := b.tail(); t != nil {
		size = min(2*len(t.buf), maxChunk)
	}
	c := newChunk(max(size, need))
	b.chunks = append(b.chunks, c)
	return c
}

// Add appends a copy of p (evbuffer_add).
func (b *Buffer) Add(p []byte) {
	orig := b.n
	for len(p) > 0 {
		t := b.tail()
		if t == nil || t.spare() == 0 {
			t = b.grow(0)
		}
		n := copy(t.buf[t.end:], p)
		t.end += n
		b.n += n
		p = p[n:]
	}
	b.changed(orig, b.n-orig, 0)
}

// AddBuffer moves everything in src to the end of b, without copying the
// chunks (evbuffer_add_buffer). src is left empty.
func (b *Buffer) AddBuffer(src *Buffer) {
	if src == b || src.n == 0 {
		return
	}
	orig, moved := b.n, src.n
	b.chunks = append(b.chunks, src.chunks...)
	b.n += moved
	src.chunks, src.n = nil, 0
	src.changed(moved, 0, moved)
	b.changed(orig, moved, 0)
}

// RemoveBuffer moves the first n bytes of b (all, if it holds fewer) to
// the end of dst, moving whole chunks and copying only a part of one
// (evbuffer_remove_buffer). It returns how many bytes moved.
func (b *Buffer) RemoveBuffer(dst *Buffer, n int) int {
	n = min(max(n, 0), b.n)
	if n == 0 || dst == b {
		return 0
	}
	origB, origD := b.n, dst.n
	left := n
	for left > 0 {
		c := b.chunks[0]
		if c.end-c.off <= left {
			left -= c.end - c.off
			b.chunks[0] = nil
			b.chunks = b.chunks[1:]
			dst.chunks = append(dst.chunks, c)
			continue
		}
		// Part of a chunk: copied, into dst's spare room if it has some
		// (as libevent does), not into a chunk of its own.
		cb := dst.cb
		dst.cb = nil
		dst.Add(c.data()[:left])
		dst.cb = cb
		dst.n -= left // counted below, with the whole chunks
		c.off += left
		left = 0
	}
	b.n -= n
	dst.n += n
	b.changed(origB, 0, n)
	dst.changed(origD, n, 0)
	return n
}

// Prepend puts a copy of p before the buffer's contents (evbuffer_prepend),
// in the room drained from the first chunk if there is enough.
func (b *Buffer) Prepend(p []byte) {
	if len(p) == 0 {
		return
	}
	orig := b.n
	if len(b.chunks) > 0 && b.chunks[0].off >= len(p) {
		c := b.chunks[0]
		c.off -= len(p)
		copy(c.buf[c.off:], p)
	} else {
		c := newChunk(len(p))
		c.off = len(c.buf) - len(p)
		c.end = len(c.buf)
		copy(c.buf[c.off:], p)
		b.chunks = append([]*chunk{c}, b.chunks...)
	}
	b.n += len(p)
	b.changed(orig, len(p), 0)
}

// Remove copies up to len(p) bytes from the front of the buffer into p,
// drains them, and returns how many (evbuffer_remove).
func (b *Buffer) Remove(p []byte) int {
	n := b.copyOut(p)
	b.Drain(n)
	return n
}

// copyOut copies the first bytes of the buffer into p, without draining.
func (b *Buffer) copyOut(p []byte) int {
	n := 0
	for _, c := range b.chunks {
		if n == len(p) {
			break
		}
		n += copy(p[n:], c.data())
	}
	return n
}

// Drain removes the first n bytes (all, if it holds fewer)
// (evbuffer_drain). Each chunk it empties goes back to its pool.
func (b *Buffer) Drain(n int) {
	n = min(max(n, 0), b.n)
	if n == 0 {
		return
	}
	orig := b.n
	b.n -= n
	b.dropFront(n)
	b.changed(orig, 0, n)
}

// dropFront removes the first n bytes from the chunks, handing back those
// it empties; b.n is the caller's to keep. The chain keeps its array: a
// buffer that fills and empties does not allocate a new one.
func (b *Buffer) dropFront(n int) {
	emptied := 0
	for n > 0 {
		c := b.chunks[emptied]
		if k := c.end - c.off; k > n {
			c.off += n
			break
		}
		n -= c.end - c.off
		freeChunk(c)
		emptied++
	}
	left := copy(b.chunks, b.chunks[emptied:])
	clear(b.chunks[left:])
	b.chunks = b.chunks[:left]
}

// Peek returns the first n bytes of the buffer (all of them if n < 0 or
// it holds fewer), as slices of its chunks, without copying or draining
// them (evbuffer_peek). They stay valid until the buffer changes.
func (b *Buffer) Peek(n int) [][]byte {
	if n < 0 || n > b.n {
		n = b.n
	}
	var vecs [][]byte
	for _, c := range b.chunks {
		if n == 0 {
			break
		}
		d := c.data()
		if len(d) == 0 {
			continue
		}
		d = d[:min(len(d), n)]
		vecs = append(vecs, d)
		n -= len(d)
	}
	return vecs
}

// Front returns the bytes of the first chunk, without copying or draining
// them: what one send can take in one piece (nil if the buffer is empty).
// Unlike Peek, it allocates nothing. They stay valid until the buffer is
// drained past them; adding to the buffer leaves them be.
func (b *Buffer) Front() []byte {
	for _, c := range b.chunks {
		if d := c.data(); len(d) > 0 {
			return d
		}
	}
	return nil
}

// Pullup makes the first n bytes of the buffer (all of them, if n < 0)
// contiguous in its first chunk and returns them (evbuffer_pullup); nil
// if the buffer holds fewer than n.
func (b *Buffer) Pullup(n int) []byte {
	if n < 0 {
		n = b.n
	}
	if n > b.n {
		return nil
	}
	if n == 0 {
		return []byte{}
	}
	if first := b.chunks[0]; first.end-first.off >= n {
		return first.data()[:n]
	}
	c := newChunk(n)
	c.end = b.copyOut(c.buf[:n])
	// Drop what was copied, and put the new chunk in front.
	b.dropFront(n)
	b.chunks = append([]*chunk{c}, b.chunks...)
	return c.data()
}

// at returns the byte at position i, and false if the buffer holds no
// byte there.
func (b *Buffer) at(i int) (byte, bool) {
	if i < 0 {
		return 0, false
	}
	for _, c := range b.chunks {
		if k := c.end - c.off; i < k {
			return c.buf[c.off+i], true
		} else {
			i -= k
		}
	}
	return 0, false
}

// Search returns the position of the first occurrence of what at or after
// start, or -1 (evbuffer_search). An occurrence may span chunks.
func (b *Buffer) Search(what []byte, start int) int {
	if len(what) == 0 {
		if start <= b.n {
			return max(start, 0)
		}
		return -1
	}
	pos := 0 // position of the current chunk's first byte
	for ci, c := range b.chunks {
		d := c.data()
		from := max(start-pos, 0)
		for from < len(d) {
			i := bytes.IndexByte(d[from:], what[0])
			if i < 0 {
				break
			}
			i += from
			if len(what) == 1 || b.matches(ci, c.off+i, what) {
				return pos + i
			}
			from = i + 1
		}
		pos += len(d)
	}
	return -1
}

// matches reports whether what starts at byte i of chunk ci's buf,
// running on into the next chunks as needed.
func (b *Buffer) matches(ci, i int, what []byte) bool {
	for len(what) > 0 {
		if ci >= len(b.chunks) {
			return false
		}
		c := b.chunks[ci]
		d := c.buf[i:c.end]
		k := min(len(d), len(what))
		if !bytes.Equal(d[:k], what[:k]) {
			return false
		}
		what = what[k:]
		ci++
		if ci < len(b.chunks) {
			i = b.chunks[ci].off
		}
	}
	return true
}
