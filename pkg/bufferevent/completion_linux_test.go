package bufferevent

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"tinyasync/pkg/event"
	"tinyasync/pkg/uring"
)

// The tests above run on every method, io_uring among them. These check
// what only completion bufferevents have: buffers and operations in the
// kernel's hands.

// uringBase returns a base on io_uring, or skips with the reason it is
// refused here.
func uringBase(t *testing.T) *event.Base {
	t.Helper()
	if err := uring.Available(); err != nil {
		t.Skip(err)
	}
	t.Setenv("EVENT_IOURING", "1")
	base, err := event.NewBase()
	require.NoError(t, err)
	require.NotNil(t, base.Uring())
	t.Cleanup(func() { base.Free() })
	return base
}

// TestCompletionIdleHoldsNoBuffer: more connections than the base has
// buffers, each with a recv in flight, are all served: a recv takes a
// buffer only when data comes, and gives it back at once.
func TestCompletionIdleHoldsNoBuffer(t *testing.T) {
	base := uringBase(t)
	const n = 100 // the base lends the kernel 64
	var bevs []*Bufferevent
	var peers []int
	answered := 0
	for range n {
		mine, peer := pair(t)
		bev := NewSocket(base, mine, CloseOnFree)
		defer bev.Free()
		bev.SetCallbacks(func(b *Bufferevent) {
			b.Output().AddBuffer(b.Input())
			answered++
		}, nil, nil)
		require.NoError(t, bev.Enable(event.Read|event.Write))
		bevs, peers = append(bevs, bev), append(peers, peer)
	}
	require.NoError(t, base.Loop(event.NonBlock))
	for i, bev := range bevs {
		require.True(t, bev.cio.receiving, "connection %d: a recv in flight", i)
	}
	for i, peer := range peers {
		_, err := unix.Write(peer, fmt.Appendf(nil, "line %d\n", i))
		require.NoError(t, err)
	}
	loopUntil(t, base, func() bool { return answered == n })
	for i, peer := range peers {
		loopUntil(t, base, func() bool { return !bevs[i].cio.sending })
		assert.Equal(t, fmt.Sprintf("line %d\n", i), readAll(peer))
	}
}

// TestCompletionFreeWaitsForTheKernel: a Bufferevent freed with a recv and
// a send in flight cancels both; the loop runs until their completions
// have come (and only then lets the id go), and no callback runs after the
// Free.
func TestCompletionFreeWaitsForTheKernel(t *testing.T) {
	base := uringBase(t)
	mine, peer := pair(t)
	require.NoError(t, unix.SetsockoptInt(mine, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096))
	bev := NewSocket(base, mine, CloseOnFree)
	calls := 0
	bev.SetCallbacks(func(*Bufferevent) { calls++ }, func(*Bufferevent) { calls++ }, func(*Bufferevent, What) { calls++ })
	require.NoError(t, bev.Enable(event.Read|event.Write))
	bev.Write(bytes.Repeat([]byte("x"), 1<<20)) // the peer never reads: a send stays in flight
	c := bev.cio
	loopUntil(t, base, func() bool { return c.sending && c.receiving && bev.Output().Len() < 1<<20 })
	require.NotZero(t, c.id)

	bev.Free()
	assert.NotZero(t, c.id, "kept while the kernel holds its operations: their CQEs would go to the next holder")
	require.NoError(t, base.Dispatch(), "returns once nothing is in flight")
	assert.False(t, c.receiving, "the recv's completion came")
	assert.False(t, c.sending, "the send's completion came")
	assert.Zero(t, c.id, "and the id was given back")
	assert.Zero(t, calls, "no callback after Free")
	buf := make([]byte, 64<<10)
	for {
		pfd := []unix.PollFd{{Fd: int32(peer), Events: unix.POLLIN}}
		k, err := unix.Poll(pfd, 5000)
		require.True(t, k == 1 || err == unix.EINTR, "the socket never closed: %v", err)
		n, err := unix.Read(peer, buf)
		if n == 0 && err == nil {
			return // the end of the stream: the socket is closed
		}
		require.True(t, n > 0 || err == unix.EAGAIN, "read: %v", err)
	}
}
