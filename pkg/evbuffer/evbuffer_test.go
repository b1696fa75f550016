package evbuffer

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// check verifies the buffer's invariants, after every operation in these
// tests: each chunk's data lies within it, no chunk is empty (an emptied
// one goes back to its pool), and the length is the sum of the chunks'.
func check(t testing.TB, b *Buffer) {
	t.Helper()
	sum := 0
	for i, c := range b.chunks {
		if c == nil || c.off < 0 || c.off > c.end || c.end > len(c.buf) {
			t.Fatalf("chunk %d of %d is broken: %+v", i, len(b.chunks), c)
		}
		if c.off == c.end {
			t.Fatalf("chunk %d of %d is empty", i, len(b.chunks))
		}
		sum += c.end - c.off
	}
	if sum != b.n {
		t.Fatalf("the chunks hold %d bytes, Len says %d", sum, b.n)
	}
}

// contents returns a copy of everything in b, without changing it.
func contents(b *Buffer) []byte {
	out := make([]byte, 0, b.Len())
	for _, v := range b.Peek(-1) {
		out = append(out, v...)
	}
	return out
}

// chunked returns a buffer holding data in chunks cut at the given sizes.
func chunked(data []byte, sizes ...int) *Buffer {
	b := New()
	for _, n := range sizes {
		n = min(n, len(data))
		c := &chunk{buf: make([]byte, n+3)}
		c.off = 1
		c.end = 1 + copy(c.buf[1:], data[:n])
		if n > 0 {
			b.chunks = append(b.chunks, c)
			b.n += n
		}
		data = data[n:]
	}
	if len(data) > 0 {
		b.Add(data)
	}
	return b
}

func TestAddRemoveDrainPrepend(t *testing.T) {
	b := New()
	b.Add([]byte("hello, "))
	b.Add(bytes.Repeat([]byte("x"), 10000))
	check(t, b)
	assert.Equal(t, 10007, b.Len())
	b.Prepend([]byte(">> "))
	check(t, b)
	p := make([]byte, 10)
	assert.Equal(t, 10, b.Remove(p))
	assert.Equal(t, ">> hello, ", string(p))
	check(t, b)
	b.Drain(9999)
	check(t, b)
	assert.Equal(t, "x", string(contents(b)))
	b.Drain(5)
	check(t, b)
	assert.Zero(t, b.Len())
	b.Prepend([]byte("ab"))
	b.Prepend([]byte("<")) // into the room the first chunk drained
	check(t, b)
	assert.Equal(t, "<ab", string(contents(b)))
}

func TestAddBufferMovesChunks(t *testing.T) {
	a, b := New(), New()
	a.Add([]byte("first "))
	b.Add(bytes.Repeat([]byte("y"), 20000))
	moved := b.chunks[0]
	a.AddBuffer(b)
	check(t, a)
	check(t, b)
	assert.Zero(t, b.Len())
	assert.Equal(t, 20006, a.Len())
	found := false
	for _, c := range a.chunks {
		found = found || c == moved
	}
	assert.True(t, found, "the chunk itself moved, not a copy")

	dst := New()
	assert.Equal(t, 10, a.RemoveBuffer(dst, 10))
	check(t, a)
	check(t, dst)
	assert.Equal(t, "first yyyy", string(contents(dst)))
	assert.Equal(t, 20006-10, a.RemoveBuffer(dst, 1<<30))
	assert.Zero(t, a.Len())
	assert.Equal(t, 20006, dst.Len())
}

func TestPeekAndPullup(t *testing.T) {
	b := chunked([]byte("abcdefghij"), 3, 3, 4)
	check(t, b)
	assert.Equal(t, [][]byte{[]byte("abc"), []byte("de")}, b.Peek(5))
	assert.Len(t, b.chunks, 3)
	assert.Equal(t, "abcde", string(b.Pullup(5)))
	check(t, b)
	assert.Equal(t, "abcdefghij", string(contents(b)), "Pullup moves, never loses")
	assert.Equal(t, "abc", string(b.Pullup(3)), "already contiguous")
	assert.Nil(t, b.Pullup(11), "more than it holds")
	assert.Equal(t, "abcdefghij", string(b.Pullup(-1)))
	check(t, b)
}

func TestSearchAcrossChunks(t *testing.T) {
	b := chunked([]byte("hello world, hello there"), 4, 3, 5, 1, 11)
	check(t, b)
	for _, tc := range []struct {
		what  string
		start int
		want  int
	}{
		{"hello", 0, 0}, {"hello", 1, 13}, {"o w", 0, 4}, {"ld, h", 0, 9},
		{"there", 0, 19}, {"there!", 0, -1}, {"", 5, 5}, {"x", 0, -1}, {"e", 20, 21},
	} {
		assert.Equal(t, tc.want, b.Search([]byte(tc.what), tc.start), "Search(%q, %d)", tc.what, tc.start)
	}
}

func TestReadLineStyles(t *testing.T) {
	type line struct {
		s  string
		ok bool
	}
	for _, tc := range []struct {
		style EOLStyle
		in    string
		want  []line
		rest  string
	}{
		{EOLLF, "one\ntwo\r\nthree", []line{{"one", true}, {"two\r", true}, {"", false}}, "three"},
		{EOLCRLF, "one\ntwo\r\nthree\r", []line{{"one", true}, {"two", true}, {"", false}}, "three\r"},
		{EOLCRLFStrict, "one\ntwo\r\nx\ry\r\n", []line{{"one\ntwo", true}, {"x\ry", true}, {"", false}}, ""},
		{EOLNUL, "a\x00b\nc\x00d", []line{{"a", true}, {"b\nc", true}, {"", false}}, "d"},
		{EOLAny, "one\r\n\r\ntwo\rthree\n\n", []line{{"one", true}, {"two", true}, {"three", true}, {"", false}}, ""},
	} {
		// Every way of cutting the input into three chunks: an end of line
		// split across chunks is still one.
		for i := 0; i <= len(tc.in); i++ {
			for j := i; j <= len(tc.in); j++ {
				b := chunked([]byte(tc.in), i, j-i)
				for _, want := range tc.want {
					got, ok := b.ReadLine(tc.style)
					check(t, b)
					require.Equal(t, want.ok, ok, "style %d, %q cut at %d, %d", tc.style, tc.in, i, j)
					assert.Equal(t, want.s, string(got), "style %d, %q cut at %d, %d", tc.style, tc.in, i, j)
				}
				assert.Equal(t, tc.rest, string(contents(b)), "style %d, %q cut at %d, %d", tc.style, tc.in, i, j)
			}
		}
	}
}

func TestReadFromWriteTo(t *testing.T) {
	var p [2]int
	require.NoError(t, unix.Pipe(p[:]))
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	require.NoError(t, unix.SetNonblock(p[0], true))
	require.NoError(t, unix.SetNonblock(p[1], true))

	out := New()
	data := make([]byte, 200000)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	out.Add(data)
	in := New()
	var got []byte
	for len(got) < len(data) {
		if out.Len() > 0 {
			_, err := out.WriteTo(p[1])
			if err != nil && err != unix.EAGAIN {
				t.Fatal(err)
			}
			check(t, out)
		}
		n, err := in.ReadFrom(p[0], 16384)
		if err != nil && err != unix.EAGAIN {
			t.Fatal(err)
		}
		assert.LessOrEqual(t, n, 16384, "a read takes at most its limit")
		check(t, in)
		got = append(got, contents(in)...)
		in.Drain(in.Len())
	}
	assert.True(t, bytes.Equal(data, got), "what went out through the pipe came back")

	unix.Close(p[1])
	n, err := in.ReadFrom(p[0], 100)
	assert.Zero(t, n, "the end of the stream")
	assert.NoError(t, err)
}

// TestByteAtATimeWastesLittle appends 1 MiB one byte at a time and
// measures how much memory the chunks hold beyond the data.
func TestByteAtATimeWastesLittle(t *testing.T) {
	b := New()
	one := []byte{'x'}
	for range 1 << 20 {
		b.Add(one)
	}
	check(t, b)
	held := 0
	for _, c := range b.chunks {
		held += len(c.buf)
	}
	waste := float64(held-b.Len()) / float64(b.Len())
	t.Logf("1 MiB added a byte at a time: %d chunks, %d bytes held, %.1f%% more than the data", len(b.chunks), held, 100*waste)
	assert.Less(t, waste, 0.07, "at most one chunk's spare room, under 7%")
}

// TestDrainedBufferAllocatesNothing: a buffer that fills and empties, as a
// line-by-line server's do, takes its chunk from the pool and gives it
// back, and holds none while empty.
func TestDrainedBufferAllocatesNothing(t *testing.T) {
	b := New()
	line := []byte("a line of sixty-four bytes, give or take, for the ROT13 server\n")
	b.Add(line)
	b.Drain(b.Len())
	assert.Empty(t, b.chunks, "an empty buffer holds no chunk")
	allocs := testing.AllocsPerRun(1000, func() {
		b.Add(line)
		b.Drain(b.Len())
	})
	// Under the race detector, sync.Pool drops one chunk in four on
	// purpose: half an allocation per run, which AllocsPerRun's whole
	// number still counts as 0. Without the pool it would be 2 (the chunk
	// and its bytes).
	assert.Zero(t, allocs)
	assert.Empty(t, b.chunks)
}

func TestCallback(t *testing.T) {
	b := New()
	var changes []Change
	b.SetCallback(func(c Change) { changes = append(changes, c) })
	b.Add([]byte("abc"))
	b.Drain(1)
	b.Drain(0)
	other := New()
	other.Add([]byte("de"))
	b.AddBuffer(other)
	assert.Equal(t, []Change{{0, 3, 0}, {3, 0, 1}, {2, 2, 0}}, changes)
}

func TestRemoveBufferCopiesPartsIntoSpareRoom(t *testing.T) {
	src, dst := New(), New()
	src.Add(bytes.Repeat([]byte("0123456789"), 1000))
	for range 1000 {
		src.RemoveBuffer(dst, 10)
		check(t, src)
		check(t, dst)
	}
	held := 0
	for _, c := range dst.chunks {
		held += len(c.buf)
	}
	assert.Equal(t, 10000, dst.Len())
	assert.Less(t, held, 3*10000, "10,000 bytes moved 10 at a time sit in %d chunks holding %d bytes", len(dst.chunks), held)
}

func TestWriteToSendsAtMost64Chunks(t *testing.T) {
	var p [2]int
	require.NoError(t, unix.Pipe(p[:]))
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	b := New()
	for i := range 100 { // a hundred one-byte chunks
		b.chunks = append(b.chunks, &chunk{buf: []byte{'a' + byte(i%26)}, end: 1})
	}
	b.n = len(b.chunks)
	check(t, b)
	n, err := b.WriteTo(p[1])
	require.NoError(t, err)
	assert.Equal(t, 64, n, "one writev of 64 chunks")
	n, err = b.WriteTo(p[1])
	require.NoError(t, err)
	assert.Equal(t, 36, n, "then the rest")
	got := make([]byte, 200)
	k, _ := unix.Read(p[0], got)
	assert.Equal(t, 100, k)
	assert.Equal(t, "abcdefghijklmnopqrstuvwxyz", string(got[:26]))
}

// TestChunkSizes: a chunk is a pooled size at least as big as asked, from
// minChunk to maxChunk, and one pool serves each size.
func TestChunkSizes(t *testing.T) {
	assert.Equal(t, len(chunkPools)-1, sizeClass(maxChunk), "a pool for each size up to maxChunk")
	for _, size := range []int{1, minChunk - 1, minChunk, minChunk + 1, 3 * minChunk, maxChunk - 1, maxChunk} {
		c := newChunk(size)
		assert.GreaterOrEqual(t, len(c.buf), size)
		assert.Equal(t, minChunk<<sizeClass(size), len(c.buf), "size %d", size)
		assert.Less(t, len(c.buf), 2*max(size, minChunk), "size %d: more than double", size)
		freeChunk(c)
	}
	big := newChunk(maxChunk + 1)
	assert.Len(t, big.buf, maxChunk+1, "beyond maxChunk, exactly as asked")
}

// TestFront: the first chunk's bytes, in place; adding leaves them be, as
// a send in flight needs; draining past them moves on to the next.
func TestFront(t *testing.T) {
	var empty Buffer
	assert.Nil(t, empty.Front())
	b := chunked([]byte("abcdefghij"), 3, 3, 4)
	front := b.Front()
	assert.Equal(t, "abc", string(front))
	b.Add([]byte("klm"))
	assert.Equal(t, "abc", string(front), "adding leaves the first chunk's bytes be")
	assert.Same(t, &front[0], &b.Front()[0], "not a copy")
	b.Drain(2)
	assert.Equal(t, "c", string(b.Front()))
	b.Drain(1)
	assert.Equal(t, "def", string(b.Front()))
	check(t, b)
}
