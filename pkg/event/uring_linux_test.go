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
// which holds the socket; a loop ended by LoopBreak with that poll armed,
// and hundreds of others, cancels them all and waits, so that a listener closed then, as a program
// exiting closes it, refuses clients at once. The next loop arms the
// polls again.
func TestLoopEndLetsGoOfFiles(t *testing.T) {
	b := uringBase(t)
	listener := func() (int, string) {
		ln, err := evutil.Listen("127.0.0.1:0")
		require.NoError(t, err)
		addr, err := evutil.LocalAddr(ln)
		require.NoError(t, err)
		return ln, addr
	}
	ln, addr := listener()
	ln2, addr2 := listener()
	defer unix.Close(ln2)
	accepted := 0
	accept := func(fd int, _ Events) {
		if nfd, _, err := unix.Accept(fd); err == nil {
			accepted++
			unix.Close(nfd)
		}
		b.LoopBreak()
	}
	ev := New(b, ln, Read|Persist, accept)
	require.NoError(t, ev.Add(0))
	ev2 := New(b, ln2, Read|Persist, accept)
	require.NoError(t, ev2.Add(0))
	defer ev2.Free()
	// And many more polls, as a server's connections have receives: the
	// kernel finishes cancelled operations a batch at a time.
	for range 500 {
		r, _ := newPipe(t)
		pe := New(b, r, Read|Persist, func(int, Events) {})
		require.NoError(t, pe.Add(0))
		defer pe.Free()
	}

	// A round arms both polls; nobody connects; the timer ends the loop.
	tick := NewTimer(b, func(int, Events) { b.LoopBreak() })
	require.NoError(t, tick.Add(time.Millisecond))
	require.NoError(t, b.Dispatch())
	require.Zero(t, accepted)

	ev.Free()
	unix.Close(ln)
	sa, _, _ := evutil.ParseSockaddrPort(addr)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	assert.Equal(t, unix.ECONNREFUSED, unix.Connect(fd, sa), "nothing in the ring holds the closed listener")

	// The next loop watches the other listener again.
	c := dial(t, addr2)
	defer c.Close()
	require.NoError(t, b.Dispatch())
	assert.Equal(t, 1, accepted, "served by the next loop")
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
