package event

// The base and its loop (libevent's event.c): what waits, what is due, and
// the round that runs the callbacks.

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

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

	readyFn func(int, Events) // b.ready, made once: a method value made per wait would allocate
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
			return b.letGo() // io_uring's; nothing to do elsewhere (uring.go)
		}
		if b.user == 0 && b.nactive == 0 && !b.completing() {
			return nil // nothing left to wait for
		}
		timeout := time.Duration(-1)
		if b.nactive > 0 || b.completed() || flags&NonBlock != 0 {
			timeout = 0
		} else if ev := b.timers.first(); ev != nil {
			timeout = time.Duration(max(0, ev.at-now()))
		}
		n, err := b.be.dispatch(timeout, b.readyFn)
		if err == unix.EINTR {
			// A signal cut the wait short: wait again, for what is left
			// of the time, recomputed from the timers.
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
		ran := b.complete() // io_uring's completions, first (uring.go)
		if b.nactive > 0 {
			ran += b.runActive()
		}
		// As in libevent, Once ends the loop after a round that ran
		// callbacks and left none due.
		if flags&Once != 0 && ran > 0 && b.nactive == 0 {
			return nil
		}
		if ran == 0 && flags&NonBlock != 0 {
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
		ev.Add(max(time.Until(at), time.Nanosecond)) // a timer watches no descriptor: it cannot fail
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
			ev.del() // see Free
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
