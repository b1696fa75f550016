package event

// The io_uring backend, and completion IO for what is built on a base: our
// libevent's IOCP (event_iocp.c, and bufferevent_async.c, which uses it).
//
// A base on io_uring does two jobs with one ring. It watches descriptors
// for readiness, as every backend does: each watched descriptor has a poll
// in the ring (a POLL_ADD SQE), so a listener, the base's own pipe and
// anything else New is given work as on epoll. And it runs operations to
// completion for whoever asks: a bufferevent submits "receive on this
// socket" and "send these bytes", and is told, in the loop, when the
// kernel has done them. One io_uring_enter submits what the round queued
// and waits; each CQE that comes is a readiness, for the events, or a
// completion, for its Completer.
//
// As libevent's IOCP, it is chosen, never defaulted to: EVENT_IOURING set
// to anything but the empty string, or a Config that avoids every other
// method (backend.go).

import (
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/uring"
)

// A Completer is told of the completions of the operations it submitted
// through its base's Uring: tag is the one it gave the SQE, c the CQE.
// Complete runs in the loop, as a callback does.
type Completer interface {
	Complete(tag uint8, c uring.CQE)
}

// Every SQE's user_data says whose its CQEs are, in its top two bits.
const (
	udOp     = 0 << 62 // a Completer's operation: its id << 8 | its tag
	udPoll   = 1 << 62 // a watched descriptor's poll: its generation << 32 | fd
	udIgnore = 2 << 62 // a poll's remove, or a cancel: nobody needs the result
	udKind   = 3 << 62
)

// The ring's size, and the buffers it lends the kernel for every
// connection's receives: what 07 has, for the same reasons
// (07-completion-server, "The ring, and the buffers").
const (
	uringEntries = 1024  // SQEs, and twice as many CQEs
	uringBufs    = 64    // provided buffers
	uringBufSize = 16384 // bytes each: bufferevent.MaxRead, what one readiness reads
)

// A Uring is the io_uring backend of a base: the ring, the provided
// buffers, the polls of the descriptors its events watch, and the
// Completers whose operations are in flight.
type Uring struct {
	ring  *uring.Ring
	bufs  *uring.BufRing
	cqes  []uring.CQE       // what one reap takes from the CQ ring
	ready func(int, Events) // the base's, for the polls' CQEs

	// Readiness. polls[fd] is what the base wants to know of fd, and
	// whether a poll for it is in the ring; rearm lists the descriptors
	// whose poll completed, armed again at the next wait if still
	// watched: after their callbacks have run, so that a poll armed again
	// reports what is left, not what the callbacks are about to take.
	polls []pollState
	rearm []int

	// Completion. completers[id] is whose operations carry id; free, the
	// ids to give again. done holds the CQEs reaped for them, in order,
	// not yet handed on; inflight counts their SQEs whose last CQE has not
	// come, and keeps the loop running, as a pending event does.
	completers []Completer
	free       []uint32
	done       []uring.CQE
	inflight   int
}

// pollState is what the backend knows of one watched descriptor.
type pollState struct {
	want   Events // Read, Write, or both: what the base watches it for
	gen    uint32 // counts the polls armed for fd; a CQE of an older one is stale
	armed  bool   // a poll for want is in the ring
	queued bool   // fd is in rearm
}

func newUring() (backend, error) {
	// Available names the reason a kernel or a sandbox refuses io_uring,
	// or why this kernel is too old for multishot recv.
	if err := uring.Available(); err != nil {
		return nil, err
	}
	// The ring is this goroutine's, on this thread, until the base is
	// freed: the kernel then finishes operations only when the loop waits,
	// and never interrupts the thread to do so (uring.NewLocked). A base
	// belongs to one goroutine anyway (package doc).
	runtime.LockOSThread()
	ring, err := uring.NewLocked(uringEntries)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	bufs, err := ring.RegisterBufRing(0, uringBufs, uringBufSize)
	if err != nil {
		ring.Close()
		runtime.UnlockOSThread()
		return nil, err
	}
	return &Uring{
		ring:       ring,
		bufs:       bufs,
		cqes:       make([]uring.CQE, 2*uringEntries), // as many as the CQ ring holds
		completers: []Completer{nil},                  // id 0 is no one's
	}, nil
}

func (u *Uring) name() string        { return "io_uring" }
func (u *Uring) edgeTriggered() bool { return false }

// add and del change what fd is watched for. A poll in the ring for the
// old interest is removed; one for the new is armed at the next wait.
func (u *Uring) add(fd int, old, new Events) error {
	for fd >= len(u.polls) {
		u.polls = append(u.polls, pollState{})
	}
	p := &u.polls[fd]
	p.want = new & (Read | Write)
	if p.armed {
		u.getSQE(udIgnore).PrepPollRemove(pollData(fd, p.gen))
		p.armed = false
	}
	p.gen++ // a CQE of the poll just removed, or that completed meanwhile, is stale
	if p.want != 0 && !p.queued {
		p.queued = true
		u.rearm = append(u.rearm, fd)
	}
	return nil
}

func (u *Uring) del(fd int, old, new Events) error {
	return u.add(fd, old, new)
}

// pollData is the user_data of fd's poll of generation gen.
func pollData(fd int, gen uint32) uint64 {
	return udPoll | uint64(gen&(1<<30-1))<<32 | uint64(uint32(fd))
}

// dispatch arms the polls, submits what the round queued, waits, and
// sorts what came.
func (u *Uring) dispatch(timeout time.Duration, ready func(int, Events)) (int, error) {
	u.ready = ready
	for _, fd := range u.rearm {
		p := &u.polls[fd]
		p.queued = false
		if p.want != 0 && !p.armed {
			var mask uint32
			if p.want&Read != 0 {
				mask |= unix.POLLIN
			}
			if p.want&Write != 0 {
				mask |= unix.POLLOUT
			}
			u.getSQE(pollData(fd, p.gen)).PrepPollAdd(fd, mask)
			p.armed = true
		}
	}
	u.rearm = u.rearm[:0]
	// One system call: submit, and wait for one CQE or the timeout. Why
	// it ended does not matter: the base reads its clock for the timers.
	// EINTR goes back to the base, which waits again.
	if err := u.ring.Enter(1, min(timeout, maxWait)); err != nil {
		return 0, err
	}
	return u.reap(), nil
}

// reap takes every CQE from the CQ ring: a poll's becomes a readiness for
// the base, an operation's waits in done for Base.complete.
func (u *Uring) reap() (n int) {
	for {
		k := u.ring.ReapCQEs(u.cqes)
		for _, c := range u.cqes[:k] {
			switch c.UserData & udKind {
			case udOp:
				u.done = append(u.done, c)
			case udPoll:
				u.polled(c)
			}
		}
		n += k
		if k < len(u.cqes) {
			return n
		}
	}
}

// polled hands on a poll's CQE: what fd is ready for, as epoll would say.
func (u *Uring) polled(c uring.CQE) {
	fd, gen := int(uint32(c.UserData)), uint32(c.UserData>>32)&(1<<30-1)
	p := &u.polls[fd]
	if gen != p.gen&(1<<30-1) {
		return // removed since: the base has stopped watching for it
	}
	p.armed = false
	if !p.queued {
		p.queued = true
		u.rearm = append(u.rearm, fd)
	}
	if c.Res < 0 {
		return // the descriptor was closed without a Del: nothing to report
	}
	var what Events
	if c.Res&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0 {
		what |= Read
	}
	if c.Res&(unix.POLLOUT|unix.POLLHUP|unix.POLLERR) != 0 {
		what |= Write
	}
	u.ready(fd, what)
}

// getSQE returns a free SQE with userData. When the SQ ring is full, it
// hands the kernel what is there first; when the kernel will take no more
// until CQEs are reaped (EBUSY: the CQ ring is full), it reaps them.
func (u *Uring) getSQE(userData uint64) *uring.SQE {
	for {
		if sqe := u.ring.GetSQE(); sqe != nil {
			sqe.SetData(userData)
			return sqe
		}
		if _, err := u.ring.Submit(); err != nil && u.reap() == 0 {
			panic(fmt.Sprintf("event: io_uring: the SQ ring is full, and the kernel takes none of it: %v", err))
		}
	}
}

func (u *Uring) close() error {
	u.bufs.Close()
	err := u.ring.Close()
	runtime.UnlockOSThread() // Free is called from the base's goroutine, as everything is
	return err
}

// quiesce leaves nothing in the kernel's hands when a loop is ended
// (LoopBreak, LoopExit), most often for the program to exit. Unlike
// epoll's interest list, which holds no socket open, each poll and
// operation in the ring holds its file: a listener would stay open after
// the program had exited, until the kernel tore the ring down later on a
// worker thread, and a client could connect to a server that is gone
// (uring.Ring.CancelAll). So everything is cancelled, and waited for; the
// next loop, if any, asks again: the polls are armed anew, and each
// Completer hears ECANCELED, and submits again what it still wants.
func (u *Uring) quiesce() error {
	if err := u.ring.CancelAll(); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	for fd := range u.polls {
		p := &u.polls[fd]
		if p.armed {
			p.armed = false
			p.gen++ // its CQE, ECANCELED, is stale
			if p.want != 0 && !p.queued {
				p.queued = true
				u.rearm = append(u.rearm, fd)
			}
		}
	}
	// On our ring (uring.NewLocked), what finishes the cancelled
	// operations, and lets go of their files, runs only as this thread
	// asks for completions, a batch at a time: ask without waiting, and
	// reap, until nothing more comes. (A thousand connections' receives
	// took more than one batch, and the listener stayed open.)
	for {
		if err := u.ring.Enter(1, 0); err != nil && err != unix.EINTR {
			return fmt.Errorf("event: %w", err)
		}
		if u.reap() == 0 {
			return nil
		}
	}
}

// Uring returns the base's io_uring backend, for completion IO; nil if
// the base waits on readiness alone (epoll, kqueue, poll, select).
func (b *Base) Uring() *Uring {
	u, _ := b.be.(*Uring)
	return u
}

// Register gives c an id for its SQEs (SQE), until Unregister.
func (u *Uring) Register(c Completer) (id uint32) {
	if n := len(u.free); n > 0 {
		id, u.free = u.free[n-1], u.free[:n-1]
		u.completers[id] = c
		return id
	}
	u.completers = append(u.completers, c)
	return uint32(len(u.completers) - 1)
}

// Unregister frees id for another Completer. Only once none of its SQEs
// is in flight: their CQEs would go to the next.
func (u *Uring) Unregister(id uint32) {
	u.completers[id] = nil
	u.free = append(u.free, id)
}

// SQE returns a free SQE for an operation of the Completer id, which hears
// of its CQEs with tag, in the loop. The kernel sees it at the next wait.
func (u *Uring) SQE(id uint32, tag uint8) *uring.SQE {
	u.inflight++
	return u.getSQE(udOp | uint64(id)<<8 | uint64(tag))
}

// Cancel asks the kernel to end the operation of Completer id with tag:
// it completes with -ECANCELED, unless it was finishing anyway.
func (u *Uring) Cancel(id uint32, tag uint8) {
	u.getSQE(udIgnore).PrepCancel(udOp | uint64(id)<<8 | uint64(tag))
}

// Buffers returns the buffers the kernel receives into, for every
// connection: a multishot recv takes one when data comes, and its
// Completer recycles it once it has copied the bytes.
func (u *Uring) Buffers() *uring.BufRing {
	return u.bufs
}

// completing reports whether operations are in flight on the base's
// ring, or completed and not yet handed on: the loop goes on while they
// are, as while an event is pending.
func (b *Base) completing() bool {
	u := b.Uring()
	return u != nil && (u.inflight > 0 || len(u.done) > 0)
}

// completed reports whether completions wait to be handed on: the loop
// then only looks, and does not wait.
func (b *Base) completed() bool {
	u := b.Uring()
	return u != nil && len(u.done) > 0
}

// letGo is what a loop ended by LoopBreak or LoopExit does last: on
// io_uring, quiesce.
func (b *Base) letGo() error {
	if u := b.Uring(); u != nil {
		return u.quiesce()
	}
	return nil
}

// complete hands each reaped completion to its Completer, and returns how
// many it handed on. They go before the round's callbacks: they came with
// its readiness, and a Completer's own timers (a bufferevent's timeouts)
// should find them handled, as data wins over a timeout on epoll. As with
// callbacks, LoopBreak stops it; the rest wait for the next loop.
func (b *Base) complete() (ran int) {
	u := b.Uring()
	if u == nil {
		return 0
	}
	// By index: a Completer's SQE may reap more into done meanwhile.
	for ; ran < len(u.done); ran++ {
		if b.brk.Load() {
			u.done = u.done[:copy(u.done, u.done[ran:])]
			return ran
		}
		c := u.done[ran]
		if !c.More() {
			u.inflight-- // the operation's last CQE
		}
		if comp := u.completers[uint32(c.UserData>>8)]; comp != nil {
			comp.Complete(uint8(c.UserData), c)
		}
	}
	u.done = u.done[:0]
	return ran
}
