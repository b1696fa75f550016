// Package listener is our own libevent evconnlistener
// (<event2/listener.h>): a listening socket watched by a base, that accepts
// every connection waiting each time it is readable and hands each to a
// callback.
//
// It does what the book's servers leave undone: when the descriptors run
// out (EMFILE, ENFILE), accept fails at once every time it is tried while
// the connection stays queued, and a server that retries at once spins.
// A Listener stops listening for a while instead (libevent's calls an
// error callback and tries again), and logs the condition at most once a
// second.
package listener

import (
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/event"
	"tinyasync/pkg/evutil"
)

// Pause is how long a Listener stops listening when descriptors run out.
const Pause = 100 * time.Millisecond

// An AcceptFunc receives each accepted connection: a nonblocking,
// close-on-exec socket, and the peer's address. The callee owns fd.
type AcceptFunc func(l *Listener, fd int, peer netip.AddrPort)

// A Listener accepts connections on a listening socket: libevent's struct
// evconnlistener.
type Listener struct {
	base   *event.Base
	fd     int
	cb     AcceptFunc
	ev     *event.Event
	resume *event.Event
	warn   evutil.Throttle
}

// Bind listens on addr ("host:port") and accepts on base
// (evconnlistener_new_bind).
func Bind(base *event.Base, addr string, cb AcceptFunc) (*Listener, error) {
	fd, err := evutil.Listen(addr)
	if err != nil {
		return nil, err
	}
	l, err := New(base, fd, cb)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return l, nil
}

// New accepts on base for the listening socket fd, which it makes
// nonblocking (evconnlistener_new).
func New(base *event.Base, fd int, cb AcceptFunc) (*Listener, error) {
	if err := evutil.MakeNonblocking(fd); err != nil {
		return nil, err
	}
	l := &Listener{base: base, fd: fd, cb: cb}
	l.ev = event.New(base, fd, event.Read|event.Persist, l.accept)
	l.resume = event.NewTimer(base, func(int, event.Events) {
		l.base.Tracer().Printf("listener fd %d: listening again", l.fd)
		l.ev.Add(0)
	})
	if err := l.ev.Add(0); err != nil {
		return nil, err
	}
	return l, nil
}

// Addr returns the address the Listener is bound to, "127.0.0.1:40713".
func (l *Listener) Addr() (string, error) {
	return evutil.LocalAddr(l.fd)
}

// Fd returns the listening socket.
func (l *Listener) Fd() int { return l.fd }

// Free stops listening and closes the socket (evconnlistener_free).
func (l *Listener) Free() {
	l.ev.Free()
	l.resume.Free()
	unix.Close(l.fd)
}

// accept takes every connection waiting, until accept says EAGAIN.
func (l *Listener) accept(fd int, _ event.Events) {
	for {
		nfd, peer, err := evutil.Accept(fd)
		switch err {
		case nil:
		case unix.EAGAIN:
			return
		case unix.EINTR, unix.ECONNABORTED: // a signal; a client that left
			continue
		default:
			// Out of descriptors (EMFILE, ENFILE) or memory, or worse:
			// accept would fail again at once, the connection still
			// queued. Unlike libevent's evconnlistener, which reports
			// the error and goes on trying, stop listening for a while.
			l.warn.Printf("accept: %v; pausing", err)
			l.ev.Del()
			l.resume.Add(Pause)
			return
		}
		if err := evutil.MakeNonblocking(nfd); err != nil {
			unix.Close(nfd)
			continue
		}
		if l.base.Tracing() {
			l.base.Tracer().Printf("accept fd=%d from %s", nfd, peer)
		}
		l.cb(l, nfd, peer)
	}
}
