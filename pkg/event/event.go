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
// CONTRACT.md).
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
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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

// LoopFlags change how Loop runs.
type LoopFlags int

const (
	// Once waits until some event is active, runs the callbacks of all
	// that are, and returns (EVLOOP_ONCE).
	Once LoopFlags = 1 << iota
	// NonBlock never waits: the loop runs the callbacks of the events
	// that are ready, and of those they make ready, and returns as soon
	// as it finds none (EVLOOP_NONBLOCK).
	NonBlock
)

// A Base watches events and runs their callbacks: libevent's event_base.
type Base struct {
	be      backend
	io      [][]*Event // events with a descriptor, indexed by it (libevent's evmap_io)
	signals map[syscall.Signal][]*Event
	timers  timerHeap
	active  []*Event // events whose callbacks are due, in order; some may since have been deleted
	spare   []*Event // the last round's queue, kept for the next: a round allocates nothing
	nactive int      // how many in active have not
	user    int      // pending events that are not the base's own

	running bool
	gotExit bool        // a LoopExit's time has come (event_gotterm)
	brk     atomic.Bool // LoopBreak was called (event_break)
	trace   *log.Logger
	tracing bool // trace writes somewhere: worth formatting for

	// The base's own pipe, readable when something outside the loop's
	// goroutine wants its attention: a signal, LoopExit, LoopBreak.
	notifyR, notifyW int
	notifyEv         *Event
	mu               sync.Mutex  // guards exitReqs and freed
	exitReqs         []time.Time // when LoopExit calls asked to exit; not yet scheduled
	freed            bool
	sigWatch         map[syscall.Signal]*sigWatcher
	sigCount         [65]atomic.Int32 // deliveries not yet dispatched, by number

	readyFn     func(int, Events) // b.ready, made once: a method value made per wait would allocate
	interrupted int               // waits that EINTR cut short, for the tests
	beforeWait  func()            // for the tests: called before each wait
}

// NewBase returns a Base on the most efficient backend available
// (event_base_new).
func NewBase() (*Base, error) {
	return NewBaseWithConfig(NewConfig())
}

// NewBaseWithConfig returns a Base on the first backend that cfg and the
// environment allow (event_base_new_with_config).
func NewBaseWithConfig(cfg *Config) (*Base, error) {
	be, err := pickBackend(cfg)
	if err != nil {
		return nil, err
	}
	b := &Base{
		be:       be,
		signals:  map[syscall.Signal][]*Event{},
		sigWatch: map[syscall.Signal]*sigWatcher{},
		trace:    log.New(io.Discard, "", 0),
	}
	b.readyFn = b.ready
	var p [2]int
	if err := pipe(p[:]); err != nil {
		be.close()
		return nil, fmt.Errorf("event: pipe: %w", err)
	}
	b.notifyR, b.notifyW = p[0], p[1]
	b.notifyEv = New(b, b.notifyR, Read|Persist, nil)
	if err := b.notifyEv.add(0, true); err != nil {
		b.Free()
		return nil, err
	}
	if !cfg.ignoreEnv && os.Getenv("EVENT_SHOW_METHOD") != "" {
		log.Printf("using method %s", be.name())
	}
	return b, nil
}

// Method returns the name of the backend: "epoll", "kqueue", "poll" or
// "select" (event_base_get_method).
func (b *Base) Method() string {
	return b.be.name()
}

// SetTrace makes the base narrate, on l, each wait and each callback it
// runs. A nil l silences it.
func (b *Base) SetTrace(l *log.Logger) {
	if l == nil {
		l = log.New(io.Discard, "", 0)
	}
	b.trace = l
	b.tracing = l.Writer() != io.Discard
}

// Tracing reports whether the base narrates: code on the hot path checks
// it before it formats a line, which would allocate even for io.Discard.
func (b *Base) Tracing() bool {
	return b.tracing
}

// Tracer returns the logger SetTrace gave the base, so that what is built
// on the base (bufferevents, listeners) narrates in the same place.
func (b *Base) Tracer() *log.Logger {
	return b.trace
}

// Free releases the base's backend and descriptors (event_base_free). Its
// events must not be used afterwards; a second Free does nothing.
func (b *Base) Free() error {
	for sig := range b.sigWatch {
		b.stopSignal(sig) // after it, nothing writes to the pipe for sig
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.freed {
		return nil
	}
	b.freed = true // nor does wake, any more
	unix.Close(b.notifyR)
	unix.Close(b.notifyW)
	return b.be.close()
}

// Dispatch runs the loop until no event is pending, or LoopExit or
// LoopBreak ends it (event_base_dispatch).
func (b *Base) Dispatch() error {
	return b.Loop(0)
}

// Loop runs the loop (event_base_loop). It waits for events and runs their
// callbacks until no event is pending, LoopExit's time comes (after the
// callbacks of that round), or LoopBreak is called (after the callback
// that calls it); flags can make it return sooner.
func (b *Base) Loop(flags LoopFlags) error {
	if b.running {
		return errors.New("event: Loop called from inside the loop")
	}
	b.running = true
	defer func() { b.running = false }()
	// As in libevent, a LoopBreak made while no loop ran is forgotten; a
	// LoopExit is not: its timer is pending.
	b.gotExit = false
	b.brk.Store(false)
	b.scheduleExits()

	for {
		if b.gotExit || b.brk.Load() {
			return nil
		}
		if b.user == 0 && b.nactive == 0 {
			return nil // nothing left to wait for
		}
		timeout := time.Duration(-1)
		if b.nactive > 0 || flags&NonBlock != 0 {
			timeout = 0
		} else if ev := b.timers.first(); ev != nil {
			timeout = time.Duration(max(0, ev.at-now()))
		}
		if b.beforeWait != nil {
			b.beforeWait()
		}
		n, err := b.be.dispatch(timeout, b.readyFn)
		if err == unix.EINTR {
			// A signal cut the wait short: wait again, for what is left
			// of the time, recomputed from the timers.
			b.interrupted++
			if b.tracing {
				b.trace.Printf("%s: interrupted by a signal (EINTR)", b.be.name())
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("event: %s: %w", b.be.name(), err)
		}
		if b.tracing {
			b.trace.Printf("%s: %d ready", b.be.name(), n)
		}
		b.expireTimers(now())
		if b.nactive > 0 {
			// As in libevent, Once ends the loop after a round that ran
			// callbacks and left none due.
			if ran := b.runActive(); flags&Once != 0 && ran > 0 && b.nactive == 0 {
				return nil
			}
		} else if flags&NonBlock != 0 {
			return nil
		}
	}
}

// LoopExit makes the loop end once after has passed, after the callbacks
// of the round in which it does (event_base_loopexit). Unlike LoopBreak, a
// LoopExit made while no loop runs ends the next loop, after its first
// round of callbacks. It may be called from any goroutine.
func (b *Base) LoopExit(after time.Duration) error {
	b.mu.Lock()
	b.exitReqs = append(b.exitReqs, time.Now().Add(max(0, after)))
	b.mu.Unlock()
	return b.wake()
}

// LoopBreak makes the loop end at once: after the callback that calls it,
// or, from another goroutine, after the callback running now, if any
// (event_base_loopbreak). Events left active stay active for the next
// loop. A LoopBreak made while no loop runs does nothing.
func (b *Base) LoopBreak() error {
	b.brk.Store(true)
	return b.wake()
}

// GotExit reports whether the last loop ended because of LoopExit
// (event_base_got_exit).
func (b *Base) GotExit() bool { return b.gotExit }

// GotBreak reports whether the last loop ended because of LoopBreak
// (event_base_got_break).
func (b *Base) GotBreak() bool { return b.brk.Load() }

// wake makes the loop's wait return, by writing to the base's own pipe;
// after Free, it does nothing (the number may be another file's by then).
func (b *Base) wake() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.freed {
		return nil
	}
	_, err := unix.Write(b.notifyW, []byte{0})
	if err == unix.EAGAIN {
		return nil // the pipe is full: the loop will wake anyway
	}
	return err
}

// notified empties the base's pipe, and does what was asked: exits to
// schedule, signals whose events to make active.
func (b *Base) notified() {
	var buf [256]byte
	for {
		if n, err := unix.Read(b.notifyR, buf[:]); n <= 0 || err != nil {
			break
		}
	}
	b.scheduleExits()
	for sig := range b.sigCount {
		// Every count is taken, so that a signal that came while no
		// event watched it is not handed to one added later.
		n := b.sigCount[sig].Swap(0)
		for _, ev := range b.signals[syscall.Signal(sig)] {
			if n > 0 {
				ev.ncalls += n
				b.activate(ev, Signal)
			}
		}
	}
}

// scheduleExits turns LoopExit calls into timers of the base's own.
func (b *Base) scheduleExits() {
	b.mu.Lock()
	reqs := b.exitReqs
	b.exitReqs = nil
	b.mu.Unlock()
	for _, at := range reqs {
		// A pending event like any other (as with libevent's
		// event_base_once): the loop waits for it.
		ev := NewTimer(b, func(int, Events) { b.gotExit = true })
		ev.Add(max(time.Until(at), time.Nanosecond))
	}
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

// expireTimers makes every event whose timeout has passed active. A
// non-persistent one stops being pending altogether, as in libevent. An
// event whose timeout was restarted since it took its place in the heap
// (timerHeap.set) is moved on to its deadline instead.
func (b *Base) expireTimers(now int64) {
	for {
		ev := b.timers.first()
		if ev == nil || ev.at > now {
			return
		}
		if ev.deadline > ev.at {
			b.timers.place(ev)
			continue
		}
		was := ev.pending()
		b.timers.remove(ev)
		if ev.events&Persist == 0 && ev.watched {
			b.unwatch(ev)
		}
		b.track(ev, was)
		b.activate(ev, Timeout)
	}
}

// activate queues ev's callback, once, with what added to its reasons.
func (b *Base) activate(ev *Event, what Events) {
	ev.res |= what
	if !ev.active {
		ev.active = true
		b.active = append(b.active, ev)
		b.nactive++
	}
}

// runActive runs the callbacks of the events that are active now, and
// returns how many ran. Events that become active meanwhile wait for the
// next round.
func (b *Base) runActive() (ran int) {
	queue := b.active
	b.active, b.spare = b.spare[:0], nil
	defer func() {
		clear(queue)
		b.spare = queue[:0]
	}()
	for i, ev := range queue {
		if !ev.active {
			continue // deleted, or freed, by an earlier callback
		}
		if b.brk.Load() {
			b.active = append(append([]*Event(nil), queue[i:]...), b.active...)
			return ran
		}
		res, calls := ev.res, max(int(ev.ncalls), 1)
		ev.active, ev.res, ev.ncalls = false, 0, 0
		b.nactive--
		if ev.events&Persist == 0 {
			ev.del()
		} else if ev.timeout > 0 {
			ev.reschedule(res)
		}
		// A signal's callback runs once per delivery, as in libevent,
		// unless one of those runs deletes the event or breaks the loop.
		for n := range calls {
			if n > 0 && (ev.freed || !ev.watched || b.brk.Load()) {
				break
			}
			switch {
			case ev.internal || !b.tracing:
			case ev.events&Signal != 0:
				b.trace.Printf("callback: signal %d", ev.fd)
			case ev.fd < 0:
				b.trace.Printf("callback: timer")
			default:
				b.trace.Printf("callback: fd %d, %v", ev.fd, res)
			}
			ev.cb(int(ev.fd), res)
			ran++
		}
	}
	return ran
}

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
// it.
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
		ev.del()
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

// track keeps the base's count of pending events that are not its own
// right: ev was pending or not (was), and may have changed.
func (b *Base) track(ev *Event, was bool) {
	switch now := ev.pending(); {
	case ev.internal:
	case now && !was:
		b.user++
	case was && !now:
		b.user--
	}
}

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

// A sigWatcher delivers one signal into the loop: Go's os/signal catches
// it and sends it on ch; a goroutine counts it and wakes the loop through
// the base's pipe; the loop runs the callbacks (notified). Each signal has
// its own channel, so that watching one stops without touching the others:
// os/signal can stop a channel only for every signal it carries at once,
// and a signal caught by nobody, even for a moment, may kill the process.
type sigWatcher struct {
	ch   chan os.Signal
	done chan struct{} // closed when the goroutine ends
}

// watchSignal starts delivering the signal ev.fd into the loop.
func (b *Base) watchSignal(ev *Event) error {
	sig := syscall.Signal(ev.fd)
	if sig <= 0 || int(sig) >= len(b.sigCount) {
		return fmt.Errorf("event: no signal %d", sig)
	}
	if b.sigWatch[sig] == nil {
		w := &sigWatcher{ch: make(chan os.Signal, 64), done: make(chan struct{})}
		b.sigWatch[sig] = w
		b.sigCount[sig].Store(0)
		go func() {
			defer close(w.done)
			for range w.ch {
				b.sigCount[sig].Add(1)
				b.wake()
			}
		}()
		signal.Notify(w.ch, sig)
	}
	b.signals[sig] = append(b.signals[sig], ev)
	ev.watched = true
	return nil
}

// unwatchSignal stops delivering ev's signal, once no event waits for it.
func (b *Base) unwatchSignal(ev *Event) {
	sig := syscall.Signal(ev.fd)
	rest := remove(b.signals[sig], ev)
	if len(rest) > 0 {
		b.signals[sig] = rest
		return
	}
	delete(b.signals, sig)
	b.stopSignal(sig)
}

// stopSignal stops sig's watcher, and waits for its goroutine to end.
func (b *Base) stopSignal(sig syscall.Signal) {
	w := b.sigWatch[sig]
	delete(b.sigWatch, sig)
	signal.Stop(w.ch) // after it, nothing more is sent on ch
	close(w.ch)
	<-w.done
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
