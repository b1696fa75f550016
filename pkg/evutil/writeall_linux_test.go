package evutil

import (
	"bytes"
	"math/rand"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestWriteAllSurvivesPartialWrites shows that a blocking write can return
// early, and that WriteAll carries on. It writes 4 MiB into a socket whose
// buffer holds a few KiB, so that each write blocks, and sends the blocked
// thread SIGURG (which Go's runtime uses, and ignores outside Go code) while
// the other end drains the socket slowly.
func TestWriteAllSurvivesPartialWrites(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	require.NoError(t, unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 4096))

	want := make([]byte, 4<<20)
	rand.New(rand.NewSource(1)).Read(want)

	type result struct {
		calls, partial int
		err            error
	}
	tids := make(chan int)
	done := make(chan result)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- unix.Gettid()
		var r result
		r.err = writeAll(fds[0], want, func(fd int, p []byte) (int, error) {
			n, err := unix.Write(fd, p)
			r.calls++
			if err == nil && n < len(p) {
				r.partial++
			}
			return n, err
		})
		unix.Shutdown(fds[0], unix.SHUT_WR)
		done <- r
	}()
	tid := <-tids

	var got bytes.Buffer
	buf := make([]byte, 2048)
	for {
		// The writer's thread is blocked in write, or about to be.
		unix.Tgkill(unix.Getpid(), tid, unix.SIGURG)
		n, err := unix.Read(fds[1], buf)
		require.NoError(t, err)
		if n == 0 {
			break
		}
		got.Write(buf[:n])
	}
	r := <-done
	require.NoError(t, r.err)
	assert.True(t, bytes.Equal(want, got.Bytes()), "the bytes read must be the bytes written")
	assert.Positive(t, r.partial, "no write returned early in %d calls; the test did not exercise the loop", r.calls)
	t.Logf("%d write calls, %d of them partial", r.calls, r.partial)
}

// TestWriteToVanishedPeerFailsWithEPIPE shows what the servers rely on when
// a client vanishes: after the peer's reset, a raw write fails, first with
// ECONNRESET, then with EPIPE; and the kernel's SIGPIPE, whose default
// action would end a C program, is caught by Go's runtime: this test goes
// on.
func TestWriteToVanishedPeerFailsWithEPIPE(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	defer unix.Close(l)
	addr, err := LocalAddr(l)
	require.NoError(t, err)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	fd, _, err := unix.Accept(l)
	require.NoError(t, err)
	defer unix.Close(fd)
	c.(*net.TCPConn).SetLinger(0)
	c.Close() // a reset

	var errs []error
	for deadline := time.Now().Add(5 * time.Second); len(errs) < 2 && time.Now().Before(deadline); {
		if _, err := unix.Write(fd, []byte("answer\n")); err != nil {
			errs = append(errs, err)
		}
	}
	require.Len(t, errs, 2)
	assert.Equal(t, unix.ECONNRESET, errs[0])
	assert.Equal(t, unix.EPIPE, errs[1])
}
