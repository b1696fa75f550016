package event

import (
	"time"

	"golang.org/x/sys/unix"
)

// What the tests see inside a base, kept out of the base itself.

// A spy stands between a base and its backend, for the tests: it runs
// before before each wait, and counts the waits that a signal cut short.
type spy struct {
	backend
	before      func()
	interrupted int
}

// spyOn puts a spy between b and its backend.
func spyOn(b *Base) *spy {
	s := &spy{backend: b.be}
	b.be = s
	return s
}

func (s *spy) dispatch(timeout time.Duration, ready func(fd int, what Events)) (int, error) {
	if s.before != nil {
		s.before()
	}
	n, err := s.backend.dispatch(timeout, ready)
	if err == unix.EINTR {
		s.interrupted++
	}
	return n, err
}

// resultCap returns how many ready descriptors one wait of be can report
// now, for the backends whose array grows (epoll, kqueue).
func resultCap(be backend) (int, bool) {
	if s, ok := be.(*spy); ok {
		be = s.backend
	}
	return backendResultCap(be)
}
