// Package event is our own libevent: an event base that watches
// descriptors, signals and timers, and runs a callback when one of them is
// ready. Its calls mirror libevent's (<event2/event.h>):
//
//	base, _ := event.NewBase()                              // event_base_new
//	ev := event.New(base, fd, event.Read|event.Persist, cb) // event_new
//	ev.Add(0)                                               // event_add(ev, NULL)
//	base.Dispatch()                                         // event_base_dispatch
//
// Underneath, one of the kernel's readiness interfaces does the waiting:
// epoll on Linux, kqueue on the BSDs and Darwin, or the portable poll and
// select, whichever this system has and is most efficient (backend.go,
// SupportedMethods). As in libevent, EVENT_NOEPOLL, EVENT_NOKQUEUE,
// EVENT_NOPOLL and EVENT_NOSELECT rule one out, and EVENT_SHOW_METHOD logs
// which one a new base uses; unlike libevent, which takes a variable set
// to the empty string as set, they count only with a value (the ladder's
// CONTRACT.md). On Linux, EVENT_IOURING asks for io_uring instead, as a
// libevent program asks for Windows' IOCP: the base then also runs
// operations to completion for what is built on it (uring.go).
//
// An event is initialized by New; pending once added (its descriptor or
// signal watched, its timeout counting down); active when it is ready and
// its callback is due. When its callback runs, a non-persistent event stops
// being pending; a persistent one stays pending, its timeout started again.
//
// A Base and its events belong to the goroutine that runs its loop, and
// callbacks run there, one at a time; a callback may add, delete or free
// any event, itself included. Only LoopBreak and LoopExit may be called
// from other goroutines: they wake a loop that waits.
//
// Delete a descriptor's events before closing it, as with libevent: the
// kernel forgets a closed descriptor only once no other copy of it (from
// dup or fork) is open, and a number closed without a Del is, to the base,
// still watched when the system hands it out again.
package event

import (
	"errors"
	"strings"
	"syscall"
	"time"
)

// Events says what an event waits for, and what made it active.
type Events uint16

// The flags, with libevent's values (EV_TIMEOUT, EV_READ, ...).
const (
	Timeout Events = 0x01 // the timeout passed
	Read    Events = 0x02 // the descriptor is readable
	Write   Events = 0x04 // the descriptor is writable
	Signal  Events = 0x08 // the signal arrived
	Persist Events = 0x10 // stay pending after the callback runs
	ET      Events = 0x20 // edge-triggered, where the backend can
)

func (e Events) String() string {
	var names []string
	for _, f := range []struct {
		flag Events
		name string
	}{{Timeout, "Timeout"}, {Read, "Read"}, {Write, "Write"}, {Signal, "Signal"}, {Persist, "Persist"}, {ET, "ET"}} {
		if e&f.flag != 0 {
			names = append(names, f.name)
		}
	}
	if len(names) == 0 {
		return "0"
	}
	return strings.Join(names, "|")
}

// A Callback runs on the loop's goroutine when its event is active: fd is
// the event's descriptor (its signal number, for a signal event; -1 for a
// timer), what is why it is active.
type Callback func(fd int, what Events)

// An Event is a descriptor, a signal or a timeout to wait for, and the
// callback to run: libevent's struct event. A server holds two for each
// connection, so it is kept small.
//
// Its fields are laid out to fill 64 bytes, one of Go's size classes,
// exactly: a descriptor fits in 32 bits (the kernel's are C ints), and so do
// the other counts.
type Event struct {
	base        *Base
	cb          Callback
	fd          int32  // its descriptor or signal number, or -1
	events, res Events // what it waits for; why it is active
	internal    bool   // the base's own, not counted as pending
	watched     bool   // in the base's io or signals
	active      bool
	freed       bool
	heapIndex   int32  // in the base's timers, or -1
	ncalls      int32  // signal deliveries its callback is due for
	seq         uint32 // orders equal places in the timers (see timerHeap)

	timeout  time.Duration // for a persistent event's next round
	deadline int64         // when it times out, on the base's clock (now)
	at       int64         // its place in the timers: its deadline, or earlier
}

// epoch is where the clock the timers use starts: now() reads it as
// nanoseconds since, from the monotonic clock, so that a change to the
// wall clock moves no timeout.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

// New returns an event for fd and what (event_new): Read, Write or both,
// with Persist and ET as wanted; or Signal, fd then being the signal's
// number; or no flag but Persist, for a timer (fd -1). The event is not
// pending until it is added.
func New(base *Base, fd int, what Events, cb Callback) *Event {
	return &Event{base: base, fd: int32(fd), events: what, cb: cb, heapIndex: -1}
}

// NewTimer returns an event that only times out (evtimer_new).
func NewTimer(base *Base, cb Callback) *Event {
	return New(base, -1, 0, cb)
}

// NewSignal returns a persistent event for the signal sig (evsignal_new).
func NewSignal(base *Base, sig syscall.Signal, cb Callback) *Event {
	return New(base, int(sig), Signal|Persist, cb)
}

// Add makes the event pending (event_add): its descriptor or signal is
// watched and, with a timeout above zero, the event times out after it,
// unless it is active sooner. Adding a pending event again restarts its
// timeout; a timeout of 0 leaves the timeout of a pending event as it is,
// and gives an event that was not pending none (libevent's NULL).
func (ev *Event) Add(timeout time.Duration) error {
	return ev.add(timeout, false)
}

func (ev *Event) add(timeout time.Duration, internal bool) error {
	if ev.freed {
		return errors.New("event: Add on a freed event")
	}
	b := ev.base
	ev.internal = ev.internal || internal
	was := ev.pending()
	if !ev.watched && ev.events&(Read|Write|Signal) != 0 {
		if err := b.watch(ev); err != nil {
			return err
		}
	}
	if timeout > 0 {
		ev.timeout = timeout
		ev.deadline = now() + int64(timeout)
		b.timers.set(ev)
	} else if !was {
		ev.timeout = 0 // added afresh without one: no timeout, now or after it runs
	}
	b.track(ev, was)
	return nil
}

// Del makes the event neither pending nor active (event_del). It is safe
// on an event that is neither. Delete a descriptor's events before closing
// it. Its error is the backend's, failing to forget the descriptor
// (epoll_ctl's EBADF or ENOENT): one the kernel does not know is watched
// for nothing anyway, and a caller may ignore it.
func (ev *Event) Del() error {
	if ev.freed {
		return nil
	}
	return ev.del()
}

func (ev *Event) del() error {
	b := ev.base
	was := ev.pending()
	if ev.active {
		b.nactive--
	}
	ev.active, ev.res, ev.ncalls = false, 0, 0
	if ev.heapIndex >= 0 {
		b.timers.remove(ev)
	}
	var err error
	if ev.watched {
		err = b.unwatch(ev)
	}
	b.track(ev, was)
	return err
}

// Free deletes the event and releases it (event_free). It is safe inside
// the event's own callback.
func (ev *Event) Free() {
	if !ev.freed {
		ev.del() // a descriptor the backend cannot forget is watched for nothing (see Del)
		ev.freed = true
	}
}

// Active makes the event active with what, as if it were ready
// (event_active); its callback runs in the loop's next round.
func (ev *Event) Active(what Events) {
	if !ev.freed {
		ev.base.activate(ev, what)
	}
}

// Pending returns which of what the event is pending for (Read, Write,
// Signal, Timeout), and when it times out, if it does (event_pending).
func (ev *Event) Pending(what Events) (Events, time.Time) {
	var got Events
	if ev.watched {
		got |= ev.events & (Read | Write | Signal)
	}
	var due time.Time
	if ev.heapIndex >= 0 {
		got |= Timeout
		due = epoch.Add(time.Duration(ev.deadline))
	}
	return got & what, due
}

// Fd returns the event's descriptor, or signal number; -1 for a timer.
func (ev *Event) Fd() int {
	return int(ev.fd)
}

// pending reports whether the event is pending: watched, or timed.
func (ev *Event) pending() bool {
	return ev.watched || ev.heapIndex >= 0
}

// reschedule starts a persistent event's timeout again, before its
// callback runs. As in libevent, a timeout counts from when it was due, so
// that a periodic timer keeps its pace; but if that is already past (the
// loop stalled), from now: one late run, not a burst.
func (ev *Event) reschedule(res Events) {
	t := now()
	from := t
	if res&Timeout != 0 {
		from = ev.deadline
	}
	next := from + int64(ev.timeout)
	if next < t {
		next = t + int64(ev.timeout)
	}
	was := ev.pending()
	ev.deadline = next
	ev.base.timers.set(ev)
	ev.base.track(ev, was)
}
