package event

// The descriptors' events (libevent's evmap.c): for each descriptor, the
// events that wait on it, and what the backend is told when the interest
// they add up to changes.

import (
	"fmt"
	"slices"
)

// interest is what a descriptor's events ask the backend to watch for.
func interest(evs []*Event) Events {
	var in Events
	for _, ev := range evs {
		in |= ev.events & (Read | Write | ET)
	}
	return in
}

// watch starts watching ev's descriptor or signal, telling the backend of
// any change in the descriptor's interest.
func (b *Base) watch(ev *Event) error {
	if ev.events&Signal != 0 {
		return b.watchSignal(ev)
	}
	fd := int(ev.fd)
	if fd < 0 {
		return fmt.Errorf("event: no descriptor %d", fd)
	}
	if fd >= cap(b.io) {
		// Doubled, as libevent's evmap_make_space does: append grows a
		// long slice by a quarter at a time, and leaves more behind.
		grown := make([][]*Event, len(b.io), max(fd+1, 2*cap(b.io)))
		copy(grown, b.io)
		b.io = grown
	}
	if fd >= len(b.io) {
		b.io = b.io[:fd+1]
	}
	evs := b.io[fd]
	if evs == nil {
		// Room for a read and a write event: the list then never grows,
		// and stays, emptied, for the next connection given this number.
		evs = make([]*Event, 0, 2)
	}
	old := interest(evs)
	if len(evs) > 0 && old&ET != ev.events&ET {
		return fmt.Errorf("event: fd %d: edge- and level-triggered events cannot share a descriptor", ev.fd)
	}
	if ev.events&ET != 0 && !b.be.edgeTriggered() {
		return fmt.Errorf("event: %s has no edge-triggered events", b.be.name())
	}
	if in := old | interest([]*Event{ev}); in != old {
		if b.tracing {
			b.trace.Printf("%s: fd %d: watch for %v, was %v", b.be.name(), fd, in, old)
		}
		if err := b.be.add(fd, old, in); err != nil {
			return fmt.Errorf("event: %s: add fd %d: %w", b.be.name(), fd, err)
		}
	}
	b.io[fd] = append(evs, ev)
	ev.watched = true
	return nil
}

// unwatch stops watching ev's descriptor or signal.
func (b *Base) unwatch(ev *Event) error {
	ev.watched = false
	if ev.events&Signal != 0 {
		b.unwatchSignal(ev)
		return nil
	}
	fd := int(ev.fd)
	evs := b.io[fd]
	old := interest(evs)
	rest := remove(evs, ev)
	b.io[fd] = rest
	if in := interest(rest); in != old {
		if b.tracing {
			b.trace.Printf("%s: fd %d: watch for %v, was %v", b.be.name(), fd, in, old)
		}
		if err := b.be.del(fd, old, in); err != nil {
			return fmt.Errorf("event: %s: del fd %d: %w", b.be.name(), fd, err)
		}
	}
	return nil
}

// ready is what the backend calls for each ready descriptor: it makes the
// events that wait for what fd is ready for active. The base's own pipe is
// seen to at once, so that the signals it brings join this round.
func (b *Base) ready(fd int, what Events) {
	if fd == b.notifyR {
		b.notified()
		return
	}
	if fd >= len(b.io) {
		return
	}
	for _, ev := range b.io[fd] {
		if got := ev.events & what & (Read | Write); got != 0 {
			b.activate(ev, got)
		}
	}
}

// remove returns evs without ev, in place, in order. (Nothing walks a list
// while a callback may change it: ready and notified only mark events
// active, and their callbacks run afterwards.)
func remove(evs []*Event, ev *Event) []*Event {
	if i := slices.Index(evs, ev); i >= 0 {
		return slices.Delete(evs, i, i+1)
	}
	return evs
}
