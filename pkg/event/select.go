package event

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// selectBackend is select(2), as in stage 03: the sets are rebuilt from
// these masters on every call, and the kernel and this loop both go over
// every descriptor up to the highest. It cannot watch a descriptor at or
// past FD_SETSIZE at all.
type selectBackend struct {
	read, write unix.FdSet
	maxfd       int
}

func newSelect() (backend, error) {
	return &selectBackend{maxfd: -1}, nil
}

func (s *selectBackend) name() string        { return "select" }
func (s *selectBackend) edgeTriggered() bool { return false }

func (s *selectBackend) add(fd int, old, new Events) error {
	if fd >= unix.FD_SETSIZE {
		return fmt.Errorf("fd %d is past FD_SETSIZE (%d)", fd, unix.FD_SETSIZE)
	}
	s.set(fd, new)
	s.maxfd = max(s.maxfd, fd)
	return nil
}

func (s *selectBackend) del(fd int, old, new Events) error {
	if fd >= unix.FD_SETSIZE {
		return nil
	}
	s.set(fd, new)
	for s.maxfd >= 0 && !s.read.IsSet(s.maxfd) && !s.write.IsSet(s.maxfd) {
		s.maxfd--
	}
	return nil
}

func (s *selectBackend) set(fd int, in Events) {
	s.read.Clear(fd)
	s.write.Clear(fd)
	if in&Read != 0 {
		s.read.Set(fd)
	}
	if in&Write != 0 {
		s.write.Set(fd)
	}
}

func (s *selectBackend) dispatch(timeout time.Duration, ready func(int, Events)) (int, error) {
	r, w := s.read, s.write
	var tv *unix.Timeval
	if timeout >= 0 {
		t := unix.NsecToTimeval(timeout.Nanoseconds())
		tv = &t
	}
	n, err := unix.Select(s.maxfd+1, &r, &w, nil, tv)
	if err != nil || n == 0 {
		return 0, err
	}
	for fd := 0; fd <= s.maxfd; fd++ {
		var what Events
		if r.IsSet(fd) {
			what |= Read
		}
		if w.IsSet(fd) {
			what |= Write
		}
		if what != 0 {
			ready(fd, what)
		}
	}
	return n, nil
}

func (s *selectBackend) close() error { return nil }
