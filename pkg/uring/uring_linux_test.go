//go:build linux

package uring

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"tinyasync/pkg/evutil"
)

// patience bounds every wait in these tests: a completion that has not
// come by then is not coming.
const patience = 5 * time.Second

// newRing returns a ring of entries SQEs, closed when the test ends.
func newRing(t *testing.T, entries uint32) *Ring {
	t.Helper()
	r, err := New(entries)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, r.Close()) })
	return r
}

// newBufRing returns count buffers of size bytes as group 1, closed when
// the test ends (before the ring: cleanups run last first).
func newBufRing(t *testing.T, r *Ring, count, size int) *BufRing {
	t.Helper()
	br, err := r.RegisterBufRing(1, count, size)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, br.Close()) })
	return br
}

// prep fills a free SQE with fill and user_data userData.
func prep(t *testing.T, r *Ring, userData uint64, fill func(*SQE)) {
	t.Helper()
	sqe := r.GetSQE()
	require.NotNil(t, sqe, "the SQ ring is full")
	fill(sqe)
	sqe.SetData(userData)
}

// submit submits what prep filled.
func submit(t *testing.T, r *Ring) {
	t.Helper()
	_, err := r.Submit()
	require.NoError(t, err)
}

// reap waits for exactly n completions, for at most patience, and returns
// them in the order they came.
func reap(t *testing.T, r *Ring, n int) []CQE {
	t.Helper()
	deadline := time.Now().Add(patience)
	got := make([]CQE, 0, n)
	buf := make([]CQE, n)
	for {
		k := r.ReapCQEs(buf[:n-len(got)])
		got = append(got, buf[:k]...)
		if len(got) == n {
			return got
		}
		left := time.Until(deadline)
		if left <= 0 {
			require.Failf(t, "too few completions", "only %d of %d came in %v: %+v", len(got), n, patience, got)
		}
		_, err := r.SubmitAndWaitTimeout(1, left)
		if err != unix.ETIME && err != unix.EINTR {
			require.NoError(t, err)
		}
	}
}

// byData indexes completions by user_data.
func byData(cqes []CQE) map[uint64]CQE {
	m := map[uint64]CQE{}
	for _, c := range cqes {
		m[c.UserData] = c
	}
	return m
}

// A pair makes two connected stream sockets, blocking; the test closes them.
type pair struct {
	name string
	make func(t *testing.T) (a, b int)
}

var pairs = []pair{
	{"socketpair", func(t *testing.T) (int, int) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		return fds[0], fds[1]
	}},
	{"tcp", tcpPair},
}

// tcpPair connects two TCP sockets over loopback.
func tcpPair(t *testing.T) (a, b int) {
	t.Helper()
	ln, addr := listen(t)
	defer unix.Close(ln)
	sa, domain, err := evutil.ParseSockaddrPort(addr)
	require.NoError(t, err)
	a, err = unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	require.NoError(t, unix.Connect(a, sa))
	b, _, err = unix.Accept4(ln, unix.SOCK_CLOEXEC)
	require.NoError(t, err)
	return a, b
}

// listen returns a listening socket on 127.0.0.1, on a port the kernel
// picked, and its address; the test closes it.
func listen(t *testing.T) (int, string) {
	t.Helper()
	ln, err := evutil.Listen("127.0.0.1:0")
	require.NoError(t, err)
	addr, err := evutil.LocalAddr(ln)
	require.NoError(t, err)
	return ln, addr
}

// forEachPair runs test on a fresh pair of each kind.
func forEachPair(t *testing.T, test func(t *testing.T, a, b int)) {
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			a, b := p.make(t)
			test(t, a, b)
			unix.Close(a)
			unix.Close(b)
		})
	}
}

// readN reads exactly n bytes from fd, waiting at most patience.
func readN(t *testing.T, fd, n int) []byte {
	t.Helper()
	got := make([]byte, 0, n)
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(patience)
	for len(got) < n {
		waitReadable(t, fd, time.Until(deadline))
		k, err := unix.Read(fd, buf[:min(len(buf), n-len(got))])
		require.NoError(t, err)
		require.Positive(t, k, "end of file after %d of %d bytes", len(got), n)
		got = append(got, buf[:k]...)
	}
	return got
}

// waitReadable waits at most d until fd has something to read, or end of
// file.
func waitReadable(t *testing.T, fd int, d time.Duration) {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := poll(pfd, d)
	require.NoError(t, err)
	require.Equal(t, 1, n, "fd %d: nothing to read after %v", fd, d)
}

// poll is poll(2), again after EINTR.
func poll(pfd []unix.PollFd, d time.Duration) (int, error) {
	var n int
	err := evutil.IgnoringEINTR(func() (err error) {
		n, err = unix.Poll(pfd, max(int(d/time.Millisecond), 1))
		return err
	})
	return n, err
}

// TestLayout checks our structures against the kernel's sizes
// (include/uapi/linux/io_uring.h): a field too many or too few and every
// offset after it is wrong.
func TestLayout(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"io_uring_params", unsafe.Sizeof(params{}), 120},
		{"io_uring_sqe", unsafe.Sizeof(SQE{}), 64},
		{"io_uring_cqe", unsafe.Sizeof(CQE{}), 16},
		{"io_uring_buf", unsafe.Sizeof(bufEntry{}), 16},
		{"io_uring_buf_reg", unsafe.Sizeof(bufReg{}), 40},
		{"io_uring_getevents_arg", unsafe.Sizeof(getEventsArg{}), 24},
		{"__kernel_timespec", unsafe.Sizeof(timespec{}), 16},
		{"io_uring_sync_cancel_reg", unsafe.Sizeof(syncCancelReg{}), 64},
	} {
		assert.Equal(t, c.want, c.got, "struct %s", c.name)
	}
	var sqe SQE
	assert.Equal(t, uintptr(32), unsafe.Offsetof(sqe.userData), "io_uring_sqe.user_data")
	assert.Equal(t, uintptr(40), unsafe.Offsetof(sqe.bufGroup), "io_uring_sqe.buf_group")
}

func TestAvailable(t *testing.T) {
	// This machine has io_uring: if not, the error says why.
	require.NoError(t, Available())
}

// TestProbe: a setup flag the kernel does not know makes probe say the
// kernel is too old (1<<31 stands for the flags an old kernel lacks).
func TestProbe(t *testing.T) {
	require.NoError(t, probe(setupSubmitAll|setupSingleIssuer|setupDeferTaskrun))
	err := probe(setupSubmitAll | 1<<31)
	assert.True(t, errors.Is(err, unix.EINVAL))
	assert.EqualError(t, err, "io_uring: io_uring_setup: invalid argument (this kernel is older than 6.1, which multishot recv and DEFER_TASKRUN need)")
}

func TestExplain(t *testing.T) {
	for errno, cause := range map[unix.Errno]string{
		unix.ENOSYS: "no io_uring",
		unix.EPERM:  whyNotPermitted(sysctl("io_uring_disabled")),
		unix.ENOMEM: "ulimit -l",
		unix.EINVAL: "older than 5.18",
		unix.EMFILE: "",
	} {
		err := explain(errno)
		msg := err.Error()
		assert.True(t, errors.Is(err, errno), "%q wraps %v", msg, errno)
		assert.True(t, strings.HasPrefix(msg, "io_uring: io_uring_setup: "), "%q names the call", msg)
		assert.Contains(t, msg, cause)
		assert.NotContains(t, msg, "\n", "one line")
	}
}

func TestWhyNotPermitted(t *testing.T) {
	for disabled, cause := range map[string]string{
		"2": "io_uring_disabled is 2",
		"1": "io_uring_group",
		"0": "seccomp",
		"":  "seccomp", // no such sysctl: before Linux 6.6
	} {
		assert.Contains(t, whyNotPermitted(disabled), cause, "io_uring_disabled %q", disabled)
	}
}

// TestSubmissionQueueFull: GetSQE says when the SQ ring is full, and a
// Submit makes room.
func TestSubmissionQueueFull(t *testing.T) {
	r := newRing(t, 4)
	for i := range 4 {
		prep(t, r, uint64(i), (*SQE).PrepNop)
	}
	assert.Nil(t, r.GetSQE(), "a fifth SQE in a ring of four")
	n, err := r.Submit()
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	assert.NotNil(t, r.GetSQE(), "room again once the kernel took them")
	for _, c := range reap(t, r, 4) {
		assert.Equal(t, int32(0), c.Res)
	}
}

// TestMultishotAccept: one SQE accepts several clients, each CQE a new
// descriptor with IORING_CQE_F_MORE, until it is cancelled.
func TestMultishotAccept(t *testing.T) {
	r := newRing(t, 8)
	ln, addr := listen(t)
	defer unix.Close(ln)
	prep(t, r, 1, func(sqe *SQE) { sqe.PrepMultishotAccept(ln, unix.SOCK_CLOEXEC) })
	submit(t, r)

	clients := map[string]bool{}
	for range 3 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		clients[c.LocalAddr().String()] = true
	}
	peers := map[string]bool{}
	for _, c := range reap(t, r, 3) {
		require.NoError(t, c.Err())
		assert.Equal(t, uint64(1), c.UserData)
		assert.True(t, c.More(), "the accept goes on")
		fd := int(c.Res)
		sa, err := unix.Getpeername(fd)
		require.NoError(t, err)
		peers[evutil.SockaddrString(sa)] = true
		unix.Close(fd)
	}
	assert.Equal(t, clients, peers, "each client accepted once")

	prep(t, r, 2, func(sqe *SQE) { sqe.PrepCancel(1) })
	submit(t, r)
	cqes := byData(reap(t, r, 2))
	assert.Equal(t, unix.ECANCELED, cqes[1].Err())
	assert.False(t, cqes[1].More(), "a cancelled accept posts no more")
	assert.Equal(t, int32(0), cqes[2].Res)
}

// TestAcceptLimit: the kernel reads the limit on descriptors when it takes
// an accept's SQE. A multishot accept taken before the limit came down
// accepts past it; a new accept fails with EMFILE, the client staying
// queued, and once the limit is back, the next accept takes that client.
func TestAcceptLimit(t *testing.T) {
	r := newRing(t, 8)
	ln, addr := listen(t)
	defer unix.Close(ln)
	sa, domain, err := evutil.ParseSockaddrPort(addr)
	require.NoError(t, err)
	// The clients' sockets, made while there is room for them.
	var clients [2]int
	for i := range clients {
		clients[i], err = unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		defer unix.Close(clients[i])
	}
	prep(t, r, 1, func(sqe *SQE) { sqe.PrepMultishotAccept(ln, unix.SOCK_CLOEXEC) })
	submit(t, r)

	// The limit comes down to the lowest free descriptor: not one more.
	free, err := unix.Dup(0)
	require.NoError(t, err)
	unix.Close(free)
	var was unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &was))
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(free), Max: was.Max}))
	restored := false
	restore := func() {
		if !restored {
			require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &was))
			restored = true
		}
	}
	defer restore()

	require.NoError(t, unix.Connect(clients[0], sa))
	c := reap(t, r, 1)[0]
	require.NoError(t, c.Err(), "the multishot accept has the limit of its start")
	assert.GreaterOrEqual(t, int(c.Res), free, "a descriptor past the limit")
	unix.Close(int(c.Res))

	prep(t, r, 2, func(sqe *SQE) { sqe.PrepCancel(1) })
	prep(t, r, 3, func(sqe *SQE) { sqe.PrepAccept(ln, unix.SOCK_CLOEXEC) })
	submit(t, r)
	require.NoError(t, unix.Connect(clients[1], sa))
	cqes := byData(reap(t, r, 3))
	assert.Equal(t, unix.ECANCELED, cqes[1].Err())
	assert.Equal(t, unix.EMFILE, cqes[3].Err(), "a new accept has the limit of now")

	restore()
	prep(t, r, 4, func(sqe *SQE) { sqe.PrepAccept(ln, unix.SOCK_CLOEXEC) })
	submit(t, r)
	c = reap(t, r, 1)[0]
	require.NoError(t, c.Err(), "the client waited in the queue")
	peer, err := unix.Getpeername(int(c.Res))
	require.NoError(t, err)
	local, err := unix.Getsockname(clients[1])
	require.NoError(t, err)
	assert.Equal(t, evutil.SockaddrString(local), evutil.SockaddrString(peer))
	unix.Close(int(c.Res))
}

// readBuf is TestRead's buffer, on the heap: see PrepRead.
var readBuf [16]byte

// TestRead: a read of a pipe waits until something is written, then
// completes with it, as read(2) would.
func TestRead(t *testing.T) {
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	r := newRing(t, 8)
	buf := readBuf[:]
	prep(t, r, 1, func(sqe *SQE) { sqe.PrepRead(p[0], buf) })
	submit(t, r)
	_, err := r.SubmitAndWaitTimeout(1, 20*time.Millisecond)
	assert.Equal(t, unix.ETIME, err, "nothing to read yet: the read waits")
	_, err = unix.Write(p[1], []byte("signal"))
	require.NoError(t, err)
	c := reap(t, r, 1)[0]
	require.NoError(t, c.Err())
	assert.Equal(t, "signal", string(buf[:c.Res]))

	unix.Close(p[1])
	prep(t, r, 2, func(sqe *SQE) { sqe.PrepRead(p[0], buf) })
	submit(t, r)
	assert.Equal(t, int32(0), reap(t, r, 1)[0].Res, "end of file")
}

// TestRecvMultishot: one SQE receives message after message, each into a
// provided buffer, which goes back to the ring and is used again.
func TestRecvMultishot(t *testing.T) {
	forEachPair(t, func(t *testing.T, a, b int) {
		r := newRing(t, 8)
		br := newBufRing(t, r, 4, 64)
		prep(t, r, 1, func(sqe *SQE) { sqe.PrepRecvMultishot(a, br.Group()) })
		submit(t, r)

		uses := map[uint16]int{}
		for i := range 10 {
			// One message at a time, so that each has a buffer of its own.
			msg := fmt.Sprintf("message %d\n", i)
			_, err := unix.Write(b, []byte(msg))
			require.NoError(t, err)
			c := reap(t, r, 1)[0]
			require.NoError(t, c.Err())
			assert.True(t, c.More(), "the recv goes on")
			id, ok := c.BufferID()
			require.True(t, ok, "the data is in a provided buffer")
			assert.Less(t, id, uint16(4))
			assert.Equal(t, msg, string(br.Bytes(id, int(c.Res))))
			uses[id]++
			br.Recycle(id)
		}
		assert.Len(t, uses, 4, "every buffer was used")
		for id, n := range uses {
			assert.Greater(t, n, 1, "buffer %d was used again after it was recycled", id)
		}
	})
}

// TestIdleConnectionsPinNoBuffer: recvs armed on three sockets share one
// buffer, which goes to whichever has data first.
func TestIdleConnectionsPinNoBuffer(t *testing.T) {
	r := newRing(t, 8)
	br := newBufRing(t, r, 1, 64)
	var peers [3]int
	for i := range peers {
		a, b := tcpPair(t)
		defer unix.Close(a)
		defer unix.Close(b)
		peers[i] = b
		prep(t, r, uint64(i), func(sqe *SQE) { sqe.PrepRecvMultishot(a, br.Group()) })
	}
	submit(t, r)
	for _, i := range []int{2, 0, 1} {
		_, err := unix.Write(peers[i], []byte("hello"))
		require.NoError(t, err)
		c := reap(t, r, 1)[0]
		require.NoError(t, c.Err(), "connection %d", i)
		assert.Equal(t, uint64(i), c.UserData)
		id, ok := c.BufferID()
		assert.True(t, ok)
		assert.Equal(t, uint16(0), id, "the only buffer")
		assert.Equal(t, "hello", string(br.Bytes(id, int(c.Res))))
		br.Recycle(id)
	}
}

// TestBuffersRunDry: with every buffer lent out, a recv that has data
// fails with ENOBUFS and the multishot recv ends; once the buffers come
// back, a new recv gets the data, which waited in the socket.
func TestBuffersRunDry(t *testing.T) {
	forEachPair(t, func(t *testing.T, a, b int) {
		r := newRing(t, 8)
		br := newBufRing(t, r, 2, 64)
		prep(t, r, 1, func(sqe *SQE) { sqe.PrepRecvMultishot(a, br.Group()) })
		submit(t, r)

		var held []uint16
		for _, msg := range []string{"one", "two"} {
			_, err := unix.Write(b, []byte(msg))
			require.NoError(t, err)
			c := reap(t, r, 1)[0]
			require.NoError(t, c.Err())
			assert.True(t, c.More())
			id, _ := c.BufferID()
			held = append(held, id) // and not recycled
		}
		_, err := unix.Write(b, []byte("three"))
		require.NoError(t, err)
		c := reap(t, r, 1)[0]
		assert.Equal(t, unix.ENOBUFS, c.Err())
		assert.False(t, c.More(), "the recv ends when the ring runs dry")

		for _, id := range held {
			br.Recycle(id)
		}
		prep(t, r, 2, func(sqe *SQE) { sqe.PrepRecvMultishot(a, br.Group()) })
		submit(t, r)
		c = reap(t, r, 1)[0]
		require.NoError(t, c.Err())
		id, _ := c.BufferID()
		assert.Equal(t, "three", string(br.Bytes(id, int(c.Res))), "the data waited in the socket")
	})
}

func TestSend(t *testing.T) {
	forEachPair(t, func(t *testing.T, a, b int) {
		r := newRing(t, 8)
		p := []byte("hello, ring\n")
		prep(t, r, 1, func(sqe *SQE) { sqe.PrepSend(a, p, unix.MSG_NOSIGNAL) })
		submit(t, r)
		c := reap(t, r, 1)[0]
		require.NoError(t, c.Err())
		assert.Equal(t, int32(len(p)), c.Res)
		assert.Equal(t, p, readN(t, b, len(p)))
	})
}

// TestShortSend: a send larger than the socket's buffers, with nobody
// reading, completes with what fitted: the count is short, and exactly
// that many bytes reach the peer.
func TestShortSend(t *testing.T) {
	forEachPair(t, func(t *testing.T, a, b int) {
		require.NoError(t, unix.SetsockoptInt(a, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096))
		require.NoError(t, unix.SetsockoptInt(b, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096))
		r := newRing(t, 8)
		p := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
		prep(t, r, 1, func(sqe *SQE) { sqe.PrepSend(a, p, unix.MSG_NOSIGNAL) })
		submit(t, r)
		c := reap(t, r, 1)[0]
		require.NoError(t, c.Err())
		sent := int(c.Res)
		assert.Positive(t, sent)
		assert.Less(t, sent, len(p), "4 MiB cannot fit in buffers of 4 KiB")
		t.Logf("sent %d of %d bytes", sent, len(p))
		assert.Equal(t, p[:sent], readN(t, b, sent))
		require.NoError(t, unix.SetNonblock(b, true))
		_, err := unix.Read(b, make([]byte, 1))
		assert.Equal(t, unix.EAGAIN, err, "nothing after the %d bytes the CQE counted", sent)
		runtime.KeepAlive(p)
	})
}

// TestShutdown: after a shutdown for writing, the peer reads end of file.
func TestShutdown(t *testing.T) {
	forEachPair(t, func(t *testing.T, a, b int) {
		r := newRing(t, 8)
		prep(t, r, 1, func(sqe *SQE) { sqe.PrepShutdown(a, unix.SHUT_WR) })
		submit(t, r)
		require.NoError(t, reap(t, r, 1)[0].Err())
		waitReadable(t, b, patience)
		n, err := unix.Read(b, make([]byte, 1))
		assert.NoError(t, err)
		assert.Equal(t, 0, n, "end of file")
	})
}

// TestClose: the ring closes the descriptor, and the peer reads end of
// file.
func TestClose(t *testing.T) {
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			a, b := p.make(t)
			defer unix.Close(b)
			r := newRing(t, 8)
			prep(t, r, 1, func(sqe *SQE) { sqe.PrepClose(a) })
			submit(t, r)
			require.NoError(t, reap(t, r, 1)[0].Err())
			_, err := unix.FcntlInt(uintptr(a), unix.F_GETFD, 0)
			assert.Equal(t, unix.EBADF, err, "fd %d is closed", a)
			waitReadable(t, b, patience)
			n, err := unix.Read(b, make([]byte, 1))
			assert.NoError(t, err)
			assert.Equal(t, 0, n, "end of file")
		})
	}
}

// TestTimeout: a timeout SQE completes with -ETIME once its time is up.
func TestTimeout(t *testing.T) {
	r := newRing(t, 8)
	sqe := r.GetSQE()
	r.PrepTimeout(sqe, 20*time.Millisecond)
	sqe.SetData(1)
	start := time.Now()
	submit(t, r)
	c := reap(t, r, 1)[0]
	assert.Equal(t, unix.ETIME, c.Err())
	assert.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond, "not before its time")
}

// TestWaitTimeout: a wait with a timeout returns ETIME when nothing comes.
func TestWaitTimeout(t *testing.T) {
	r := newRing(t, 8)
	start := time.Now()
	_, err := r.SubmitAndWaitTimeout(1, 30*time.Millisecond)
	assert.Equal(t, unix.ETIME, err)
	elapsed := time.Since(start)
	assert.GreaterOrEqual(t, elapsed, 30*time.Millisecond)
	assert.Less(t, elapsed, patience)
}

// TestCancel: a pending recv, cancelled by its user_data, completes with
// -ECANCELED, and the cancel itself with 0; a cancel that finds nothing
// completes with -ENOENT.
func TestCancel(t *testing.T) {
	forEachPair(t, func(t *testing.T, a, b int) {
		r := newRing(t, 8)
		br := newBufRing(t, r, 2, 64)
		prep(t, r, 1, func(sqe *SQE) { sqe.PrepRecvMultishot(a, br.Group()) })
		submit(t, r) // nobody writes: it waits
		prep(t, r, 2, func(sqe *SQE) { sqe.PrepCancel(1) })
		prep(t, r, 3, func(sqe *SQE) { sqe.PrepCancel(99) })
		submit(t, r)
		cqes := byData(reap(t, r, 3))
		assert.Equal(t, unix.ECANCELED, cqes[1].Err())
		assert.False(t, cqes[1].More())
		assert.Equal(t, int32(0), cqes[2].Res)
		assert.Equal(t, unix.ENOENT, cqes[3].Err())
	})
}

// TestOverflow: more completions than the CQ ring holds are kept by the
// kernel, flagged, and reaped once there is room; none is lost.
func TestOverflow(t *testing.T) {
	r := newRing(t, 4) // 4 SQEs, 8 CQEs
	require.Len(t, r.cqes, 8)
	const total = 20
	for i := range total {
		sqe := r.GetSQE()
		if sqe == nil {
			submit(t, r) // the SQ ring is full: submit, and there is room
			sqe = r.GetSQE()
		}
		sqe.PrepNop()
		sqe.SetData(uint64(i))
	}
	submit(t, r)
	assert.NotZero(t, *r.sqFlags&sqCQOverflow, "IORING_SQ_CQ_OVERFLOW")
	assert.Equal(t, uint32(8), r.cqReady(), "the CQ ring is full")

	// ReapCQEs alone, which never waits: it must flush the overflow itself.
	seen := map[uint64]bool{}
	cqes := make([]CQE, 2*total)
	for range 3 {
		for _, c := range cqes[:r.ReapCQEs(cqes)] {
			assert.Equal(t, int32(0), c.Res)
			assert.False(t, seen[c.UserData], "%d twice", c.UserData)
			seen[c.UserData] = true
		}
	}
	assert.Len(t, seen, total, "none lost")
	assert.Zero(t, *r.sqFlags&sqCQOverflow, "the overflow is flushed")
}

// TestConnReset: when the peer resets the connection (a close with
// SO_LINGER 0 sends RST), the pending recv fails with ECONNRESET.
func TestConnReset(t *testing.T) {
	a, b := tcpPair(t)
	defer unix.Close(a)
	r := newRing(t, 8)
	br := newBufRing(t, r, 2, 64)
	prep(t, r, 1, func(sqe *SQE) { sqe.PrepRecvMultishot(a, br.Group()) })
	submit(t, r)
	require.NoError(t, unix.SetsockoptLinger(b, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}))
	require.NoError(t, unix.Close(b))
	c := reap(t, r, 1)[0]
	assert.Equal(t, unix.ECONNRESET, c.Err())
	assert.False(t, c.More())
}

// signalThread sends SIGUSR1 to thread tid every millisecond until stop
// is closed, and returns a channel on which Go's handler reports each one
// delivered.
func signalThread(t *testing.T, tid int, stop chan struct{}) chan os.Signal {
	got := make(chan os.Signal, 1024)
	signal.Notify(got, unix.SIGUSR1)
	t.Cleanup(func() { signal.Stop(got) })
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				unix.Tgkill(unix.Getpid(), tid, unix.SIGUSR1)
			}
		}
	}()
	return got
}

// TestEINTR: a signal to the thread that waits. A wait with a timeout
// returns EINTR (the caller recomputes its deadline); a wait without one
// waits again until its completion comes.
func TestEINTR(t *testing.T) {
	r := newRing(t, 8)

	t.Run("with a timeout", func(t *testing.T) {
		// Signals go to one thread: the one this goroutine keeps.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		stop := make(chan struct{})
		got := signalThread(t, unix.Gettid(), stop)
		start := time.Now()
		_, err := r.SubmitAndWaitTimeout(1, patience)
		close(stop)
		assert.Equal(t, unix.EINTR, err)
		assert.Less(t, time.Since(start), patience, "cut short")
		select {
		case <-got:
		case <-time.After(patience):
			t.Error("no signal arrived")
		}
	})

	t.Run("without", func(t *testing.T) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		stop := make(chan struct{})
		got := signalThread(t, unix.Gettid(), stop)
		sqe := r.GetSQE()
		r.PrepTimeout(sqe, 100*time.Millisecond)
		sqe.SetData(7)
		start := time.Now()
		_, err := r.SubmitAndWait(1)
		close(stop)
		require.NoError(t, err, "EINTR is retried")
		assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "it waited for the timeout")
		c := reap(t, r, 1)[0]
		assert.Equal(t, uint64(7), c.UserData)
		assert.Equal(t, unix.ETIME, c.Err())
		select {
		case <-got:
			t.Logf("%d signals came while it waited", len(got)+1)
		case <-time.After(patience):
			t.Error("no signal arrived")
		}
	})
}

// TestPoll: a poll waits for readiness and reports it; armed on a socket
// that is readable already, it completes at once (level-triggered, armed
// again); removed, it completes with -ECANCELED.
func TestPoll(t *testing.T) {
	forEachPair(t, func(t *testing.T, a, b int) {
		r := newRing(t, 8)
		prep(t, r, 1, func(sqe *SQE) { sqe.PrepPollAdd(a, unix.POLLIN) })
		prep(t, r, 2, func(sqe *SQE) { sqe.PrepPollAdd(a, unix.POLLOUT) })
		submit(t, r)
		c := reap(t, r, 1)[0] // writable at once; not readable: nobody has written
		assert.Equal(t, uint64(2), c.UserData)
		assert.NotZero(t, c.Res&unix.POLLOUT)

		_, err := unix.Write(b, []byte("x"))
		require.NoError(t, err)
		c = reap(t, r, 1)[0]
		assert.Equal(t, uint64(1), c.UserData)
		assert.NotZero(t, c.Res&unix.POLLIN)

		// Armed again with the byte unread: at once.
		prep(t, r, 3, func(sqe *SQE) { sqe.PrepPollAdd(a, unix.POLLIN) })
		submit(t, r)
		c = reap(t, r, 1)[0]
		assert.Equal(t, uint64(3), c.UserData)
		assert.NotZero(t, c.Res&unix.POLLIN)

		// A poll on what will never come, removed.
		readN(t, a, 1)
		prep(t, r, 4, func(sqe *SQE) { sqe.PrepPollAdd(a, unix.POLLIN) })
		submit(t, r)
		prep(t, r, 5, func(sqe *SQE) { sqe.PrepPollRemove(4) })
		submit(t, r)
		cqes := byData(reap(t, r, 2))
		assert.Equal(t, unix.ECANCELED, cqes[4].Err())
		assert.Equal(t, int32(0), cqes[5].Res)
	})
}

// TestEnter: the loop's one-call wait submits and waits for a completion;
// with nothing to submit and nothing coming, it returns after its
// timeout, with nothing to reap; a zero timeout only looks.
func TestEnter(t *testing.T) {
	r := newRing(t, 8)
	prep(t, r, 1, func(sqe *SQE) { sqe.PrepNop() })
	require.NoError(t, r.Enter(1, patience))
	var cqes [2]CQE
	require.Equal(t, 1, r.ReapCQEs(cqes[:]), "submitted, and waited for")
	assert.Equal(t, uint64(1), cqes[0].UserData)

	start := time.Now()
	require.NoError(t, r.Enter(1, 30*time.Millisecond))
	assert.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
	require.NoError(t, r.Enter(1, 0))
	assert.Zero(t, r.ReapCQEs(cqes[:]))

	sqe := r.GetSQE()
	r.PrepTimeout(sqe, 20*time.Millisecond)
	sqe.SetData(2)
	require.NoError(t, r.Enter(1, -1), "no limit: until the timeout SQE completes")
	require.Equal(t, 1, r.ReapCQEs(cqes[:]))
	assert.Equal(t, unix.ETIME, cqes[0].Err())
}

// TestRecv: a one-shot recv takes no more than it was asked for, into a
// provided buffer larger than that, and ends; the rest waits in the socket.
func TestRecv(t *testing.T) {
	forEachPair(t, func(t *testing.T, a, b int) {
		r := newRing(t, 8)
		br := newBufRing(t, r, 2, 64)
		_, err := unix.Write(b, []byte("0123456789"))
		require.NoError(t, err)
		prep(t, r, 1, func(sqe *SQE) { sqe.PrepRecv(a, br.Group(), 4) })
		submit(t, r)
		c := reap(t, r, 1)[0]
		require.NoError(t, c.Err())
		assert.False(t, c.More(), "one-shot")
		id, ok := c.BufferID()
		require.True(t, ok, "the data is in a provided buffer")
		assert.Equal(t, "0123", string(br.Bytes(id, int(c.Res))), "at most what was asked for")
		br.Recycle(id)
		assert.Equal(t, "456789", string(readN(t, a, 6)), "the rest is still in the socket")
	})
}

// TestCancelAll: everything in flight is cancelled, and done, by the time
// CancelAll returns; the listener a poll held open after its close is
// closed then, and refuses clients; with nothing in flight it is no error.
// On a ring of New's, and of NewLocked's, whose completions wait until
// the thread asks for them.
func TestCancelAll(t *testing.T) {
	for _, kind := range []struct {
		name string
		new  func(uint32) (*Ring, error)
	}{{"New", New}, {"NewLocked", NewLocked}} {
		t.Run(kind.name, func(t *testing.T) {
			runtime.LockOSThread() // the test's goroutine ends with the test: its thread goes too
			r, err := kind.new(8)
			require.NoError(t, err)
			defer r.Close()
			ln, addr := listen(t)
			a, b := tcpPair(t)
			defer unix.Close(a)
			defer unix.Close(b)
			br := newBufRing(t, r, 2, 64)
			prep(t, r, 1, func(sqe *SQE) { sqe.PrepPollAdd(ln, unix.POLLIN) })
			prep(t, r, 2, func(sqe *SQE) { sqe.PrepRecvMultishot(a, br.Group()) })
			submit(t, r)
			unix.Close(ln)
			_, port, _ := net.SplitHostPort(addr)
			assert.True(t, listening(t, port), "the poll in flight holds the socket: it still listens after its close")

			require.NoError(t, r.CancelAll())
			assert.False(t, listening(t, port), "nothing holds the listener: it is closed")
			_, err = net.Dial("tcp", addr)
			assert.ErrorIs(t, err, unix.ECONNREFUSED)
			var cqes [4]CQE
			n := r.ReapCQEs(cqes[:])
			require.Equal(t, 2, n, "both completed before CancelAll returned: %+v", cqes[:n])
			for _, c := range cqes[:n] {
				assert.Equal(t, unix.ECANCELED, c.Err(), "user_data %d", c.UserData)
			}
			require.NoError(t, r.CancelAll(), "nothing in flight")
		})
	}
}

// listening reports whether a TCP socket listens on port (decimal), from
// /proc/net/tcp: state 0A is LISTEN.
func listening(t *testing.T, port string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/net/tcp")
	require.NoError(t, err)
	var p int
	fmt.Sscan(port, &p)
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", p)) && f[3] == "0A" {
			return true
		}
	}
	return false
}
