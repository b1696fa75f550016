package event

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"tinyasync/pkg/evutil"
	"tinyasync/pkg/uring"
)

// uringBase returns a base on io_uring, or skips the test with the reason
// io_uring is refused here.
func uringBase(t *testing.T) *Base {
	t.Helper()
	if err := uring.Available(); err != nil {
		t.Skip(err)
	}
	b := newBaseFor(t, "io_uring")
	t.Cleanup(func() { b.Free() })
	return b
}

// TestEventIOURING: EVENT_IOURING picks io_uring before epoll, and
// EVENT_SHOW_METHOD says so; IgnoreEnv and AvoidMethod overrule it.
func TestEventIOURING(t *testing.T) {
	if err := uring.Available(); err != nil {
		t.Skip(err)
	}
	t.Setenv("EVENT_IOURING", "1")
	t.Setenv("EVENT_SHOW_METHOD", "1")
	var logged bytes.Buffer
	log.SetOutput(&logged)
	defer log.SetOutput(os.Stderr)
	b, err := NewBase()
	require.NoError(t, err)
	defer b.Free()
	assert.Equal(t, "io_uring", b.Method())
	assert.NotNil(t, b.Uring())
	assert.Contains(t, logged.String(), "using method io_uring")

	cfg := NewConfig()
	cfg.IgnoreEnv()
	b2, err := NewBaseWithConfig(cfg)
	require.NoError(t, err)
	defer b2.Free()
	assert.Equal(t, "epoll", b2.Method(), "IgnoreEnv: EVENT_IOURING counts for nothing")
	assert.Nil(t, b2.Uring(), "a readiness base does no completion IO")

	t.Setenv("EVENT_IOURING", "")
	b3, err := NewBase()
	require.NoError(t, err)
	defer b3.Free()
	assert.Equal(t, "epoll", b3.Method(), "set to the empty string, it is not set")
}

// TestLoopEndLetsGoOfFiles: a listener's event is a poll in the ring,
// which holds the socket; a loop ended by LoopBreak cancels it, so that a
// listener closed then, as a program exiting closes it, is closed at once;
// the next loop arms the poll again.
func TestLoopEndLetsGoOfFiles(t *testing.T) {
	b := uringBase(t)
	ln, err := evutil.Listen("127.0.0.1:0")
	require.NoError(t, err)
	addr, err := evutil.LocalAddr(ln)
	require.NoError(t, err)
	accepted := 0
	ev := New(b, ln, Read|Persist, func(fd int, _ Events) {
		nfd, _, err := unix.Accept(fd)
		if err == nil {
			accepted++
			unix.Close(nfd)
		}
		b.LoopBreak()
	})
	require.NoError(t, ev.Add(0))
	tick := NewTimer(b, func(int, Events) { b.LoopBreak() })
	require.NoError(t, tick.Add(1)) // the loop runs a round: the poll is armed
	require.NoError(t, b.Dispatch())
	assert.Equal(t, 1, b.Uring().cancelled(t, ln), "the listener's poll, cancelled as the loop ended")

	// Armed again by the next loop: still served.
	c := dial(t, addr)
	require.NoError(t, b.Dispatch())
	assert.Equal(t, 1, accepted, "the next loop watches the listener again")
	c.Close()

	// And after the loop has ended, a close closes.
	ev.Free()
	unix.Close(ln)
	sa, _, _ := evutil.ParseSockaddrPort(addr)
	fd, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	defer unix.Close(fd)
	assert.Equal(t, unix.ECONNREFUSED, unix.Connect(fd, sa), "nothing in the ring holds the listener")
}

// cancelled reaps what the last quiesce cancelled, and counts the polls
// of fd.
func (u *Uring) cancelled(t *testing.T, fd int) int {
	t.Helper()
	var cqes [16]uring.CQE
	// With DEFER_TASKRUN, CQEs are posted when the thread waits for them.
	require.NoError(t, u.ring.Enter(1, time.Second))
	n := 0
	for _, c := range cqes[:u.ring.ReapCQEs(cqes[:])] {
		if c.UserData&udKind == udPoll && int(uint32(c.UserData)) == fd && c.Err() == unix.ECANCELED {
			n++
		}
	}
	return n
}

// dial connects to addr, blocking.
func dial(t *testing.T, addr string) *os.File {
	t.Helper()
	sa, domain, err := evutil.ParseSockaddrPort(addr)
	require.NoError(t, err)
	fd, err := unix.Socket(domain, unix.SOCK_STREAM, 0)
	require.NoError(t, err)
	require.NoError(t, unix.Connect(fd, sa))
	return os.NewFile(uintptr(fd), "client")
}

// recorder is a Completer that keeps what it hears.
type recorder struct{ got []string }

func (r *recorder) Complete(tag uint8, c uring.CQE) {
	r.got = append(r.got, fmt.Sprintf("tag %d res %d more %t", tag, c.Res, c.More()))
}

// TestCompletions: an operation submitted through the base completes in
// its loop, to its Completer, with its tag; the loop runs while it is in
// flight, and ends when nothing is; a cancel ends one; an id let go is
// given again.
func TestCompletions(t *testing.T) {
	b := uringBase(t)
	u := b.Uring()
	r, w := newPipe(t)
	rec := &recorder{}
	id := u.Register(rec)
	var buf [8]byte
	u.SQE(id, 7).PrepRead(r, buf[:])
	write(t, w, "hi")
	require.NoError(t, b.Dispatch(), "runs until the read completes, then has nothing to wait for")
	assert.Equal(t, []string{"tag 7 res 2 more false"}, rec.got)
	assert.Equal(t, "hi", string(buf[:2]))
	assert.False(t, b.completing(), "nothing in flight")

	u.SQE(id, 8).PrepRead(r, buf[:]) // nobody writes
	u.Cancel(id, 8)
	require.NoError(t, b.Dispatch())
	assert.Equal(t, fmt.Sprintf("tag 8 res %d more false", -int(unix.ECANCELED)), rec.got[1])

	u.Unregister(id)
	assert.Equal(t, id, u.Register(&recorder{}), "the id is given again")
}
