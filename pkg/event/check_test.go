package event

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"golang.org/x/sys/unix"
)

// check verifies the base's invariants, as libevent's
// event_base_assert_ok_ does after each of its regression tests.
func (b *Base) check(t *testing.T) {
	t.Helper()
	pending := map[*Event]bool{}

	// The heap: each event knows its place, none is placed before its
	// parent, and none after its deadline.
	for i, ev := range b.timers.evs {
		assert.Equal(t, int32(i), ev.heapIndex, "heap index")
		assert.LessOrEqual(t, ev.at, ev.deadline, "placed after its deadline")
		if i > 0 {
			assert.False(t, b.timers.less(i, (i-1)/2), "heap order at %d", i)
		}
		assert.False(t, ev.freed, "a freed event in the heap")
		if !ev.internal {
			pending[ev] = true
		}
	}
	// The descriptors: each event is watched, once, on its own descriptor;
	// the list of them has room for at most twice the largest seen.
	assert.LessOrEqual(t, cap(b.io), 2*len(b.io), "b.io's room")
	for fd, evs := range b.io {
		for _, gone := range evs[len(evs):cap(evs)] {
			assert.Nil(t, gone, "fd %d: a removed event is still referenced", fd)
		}
		seen := map[*Event]bool{}
		for _, ev := range evs {
			assert.Equal(t, fd, int(ev.fd))
			assert.True(t, ev.watched)
			assert.False(t, ev.freed, "a freed event is watched")
			assert.False(t, seen[ev], "fd %d lists an event twice", fd)
			seen[ev] = true
			if !ev.internal {
				pending[ev] = true
			}
		}
		if w, ok := b.be.(interface{ watching(int) Events }); ok {
			assert.Equal(t, interest(evs)&(Read|Write), w.watching(fd), "the backend watches fd %d for", fd)
		}
	}
	for sig, evs := range b.signals {
		for _, ev := range evs {
			assert.Equal(t, int(sig), ev.fd)
			assert.True(t, ev.watched)
			pending[ev] = true
		}
	}
	assert.Equal(t, len(pending), b.user, "the count of pending events")
	// The active queue: an active event appears once.
	seen := map[*Event]bool{}
	for _, ev := range b.active {
		if ev.active {
			assert.False(t, seen[ev], "an event is queued twice")
			seen[ev] = true
		}
	}
}

// watching is what the poll backend watches fd for, for check.
func (p *pollBackend) watching(fd int) Events {
	i, ok := p.index[fd]
	if !ok {
		return 0
	}
	var in Events
	if p.fds[i].Events&pollEvents(Read) != 0 {
		in |= Read
	}
	if p.fds[i].Events&pollEvents(Write) != 0 {
		in |= Write
	}
	return in
}

// watching is what the select backend watches fd for, for check.
func (s *selectBackend) watching(fd int) Events {
	var in Events
	if fd >= unix.FD_SETSIZE {
		return 0 // refused
	}
	if s.read.IsSet(fd) {
		in |= Read
	}
	if s.write.IsSet(fd) {
		in |= Write
	}
	return in
}
