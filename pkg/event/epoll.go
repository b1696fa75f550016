//go:build linux

package event

import (
	"time"

	"golang.org/x/sys/unix"
)

// epoll is Linux's epoll(7): the kernel keeps the set of watched
// descriptors between calls, so that a wait costs in proportion to the
// descriptors that are ready, not to those watched.
type epoll struct {
	fd     int
	events []unix.EpollEvent // what a wait returns; grows when it comes back full
}

func newEpoll() (backend, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &epoll{fd: fd, events: make([]unix.EpollEvent, 32)}, nil
}

func (e *epoll) name() string        { return "epoll" }
func (e *epoll) edgeTriggered() bool { return true }

func (e *epoll) ctl(op, fd int, in Events) error {
	ev := unix.EpollEvent{Fd: int32(fd)}
	if in&Read != 0 {
		ev.Events |= unix.EPOLLIN
	}
	if in&Write != 0 {
		ev.Events |= unix.EPOLLOUT
	}
	if in&ET != 0 {
		ev.Events |= unix.EPOLLET
	}
	return unix.EpollCtl(e.fd, op, fd, &ev)
}

func (e *epoll) add(fd int, old, new Events) error {
	op := unix.EPOLL_CTL_MOD
	if old == 0 {
		op = unix.EPOLL_CTL_ADD
	}
	err := e.ctl(op, fd, new)
	// As libevent's epoll.c does: the kernel drops a descriptor from the
	// set when its last copy is closed, so one closed and opened again
	// under the same number is not in the set any more (MOD fails with
	// ENOENT); and one whose copy, from dup, is still open is in it yet
	// (ADD fails with EEXIST). Either way, the other operation is right.
	switch {
	case err == unix.ENOENT && op == unix.EPOLL_CTL_MOD:
		err = e.ctl(unix.EPOLL_CTL_ADD, fd, new)
	case err == unix.EEXIST && op == unix.EPOLL_CTL_ADD:
		err = e.ctl(unix.EPOLL_CTL_MOD, fd, new)
	}
	return err
}

func (e *epoll) del(fd int, old, new Events) error {
	if new&(Read|Write) != 0 {
		return e.add(fd, old, new)
	}
	err := e.ctl(unix.EPOLL_CTL_DEL, fd, 0)
	if err == unix.ENOENT || err == unix.EBADF {
		// Closed already, against the advice to Del first: the kernel has
		// dropped it from the set if no other copy of it is open.
		return nil
	}
	return err
}

func (e *epoll) dispatch(timeout time.Duration, ready func(int, Events)) (int, error) {
	n, err := unix.EpollWait(e.fd, e.events, msTimeout(timeout))
	if err != nil {
		return 0, err
	}
	for _, ev := range e.events[:n] {
		var what Events
		if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			what |= Read
		}
		if ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			what |= Write
		}
		ready(int(ev.Fd), what)
	}
	if n == len(e.events) && n < 4096 {
		// Full: more may have been ready. Take more next time.
		e.events = make([]unix.EpollEvent, 2*n)
	}
	return n, nil
}

func (e *epoll) close() error {
	return unix.Close(e.fd)
}
