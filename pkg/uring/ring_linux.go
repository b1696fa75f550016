//go:build linux

package uring

// Setup, the two rings, and io_uring_enter(2): liburing's setup.c and
// queue.c.
//
// The SQ and CQ rings are memory the kernel shares with us, and each side
// reads what the other writes without a lock. Processors and compilers
// may reorder memory accesses, so the order must be asked for. The rule is
// the same in both rings. The writer fills an entry, then moves the tail
// past it with a release store: a store that no earlier write may be moved
// after. So a reader that sees the new tail sees the entry too. The reader
// loads the tail with an acquire load: a load that no later read may be
// moved before. So it never reads an entry staler than the tail it saw.
// The kernel keeps the same rule on its side (the comment at the top of
// the kernel's io_uring/io_uring.c). Go's sync/atomic loads and stores are
// sequentially consistent, stronger than acquire and release; we use them
// for every word of the rings we share.

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The numbers below mirror the kernel's include/uapi/linux/io_uring.h; each
// comment names the constant there.
const (
	setupSubmitAll    = 1 << 7  // IORING_SETUP_SUBMIT_ALL: one bad SQE does not stop the rest of a batch
	setupDeferTaskrun = 1 << 13 // IORING_SETUP_DEFER_TASKRUN: finish operations only when the submitter waits

	featSingleMmap = 1 << 0 // IORING_FEAT_SINGLE_MMAP: the SQ and CQ rings share one mapping
	featNoDrop     = 1 << 1 // IORING_FEAT_NODROP: completions the CQ ring has no room for wait in the kernel
	featExtArg     = 1 << 8 // IORING_FEAT_EXT_ARG: io_uring_enter takes a timeout

	offSQRing = 0          // IORING_OFF_SQ_RING: where mmap finds the SQ ring (and the CQ ring, with SINGLE_MMAP)
	offSQEs   = 0x10000000 // IORING_OFF_SQES: where mmap finds the SQEs

	enterGetEvents = 1 << 0 // IORING_ENTER_GETEVENTS: wait until min_complete CQEs are in the CQ ring
	enterExtArg    = 1 << 3 // IORING_ENTER_EXT_ARG: the last argument is an io_uring_getevents_arg

	sqCQOverflow = 1 << 1 // IORING_SQ_CQ_OVERFLOW, in the SQ ring's flags: CQEs wait in the kernel
)

// params is struct io_uring_params: what io_uring_setup(2) is asked for,
// and what it answers.
type params struct {
	sqEntries    uint32        // sq_entries: SQ slots, the size asked for rounded up to a power of two
	cqEntries    uint32        // cq_entries: CQ slots, twice as many
	flags        uint32        // flags: IORING_SETUP_*
	sqThreadCPU  uint32        // sq_thread_cpu: for IORING_SETUP_SQPOLL, not used here
	sqThreadIdle uint32        // sq_thread_idle: likewise
	features     uint32        // features: IORING_FEAT_*, what this kernel does
	wqFD         uint32        // wq_fd: for IORING_SETUP_ATTACH_WQ, not used here
	resv         [3]uint32     // resv
	sqOff        sqringOffsets // sq_off: where each field of the SQ ring is in its mapping
	cqOff        cqringOffsets // cq_off: likewise for the CQ ring
}

// sqringOffsets is struct io_sqring_offsets: byte offsets into the SQ
// ring's mapping.
type sqringOffsets struct {
	head        uint32 // head: the kernel's, the next slot it will take
	tail        uint32 // tail: ours, one past the last slot we filled
	ringMask    uint32 // ring_mask: slots minus one; count & mask is a slot
	ringEntries uint32 // ring_entries
	flags       uint32 // flags: IORING_SQ_*, written by the kernel
	dropped     uint32 // dropped: SQEs the kernel found invalid
	array       uint32 // array: the index array (see mmap)
	resv1       uint32 // resv1
	userAddr    uint64 // user_addr: for IORING_SETUP_NO_MMAP, not used here
}

// cqringOffsets is struct io_cqring_offsets: byte offsets into the CQ
// ring's mapping.
type cqringOffsets struct {
	head        uint32 // head: ours, the next CQE we will read
	tail        uint32 // tail: the kernel's, one past the last CQE it wrote
	ringMask    uint32 // ring_mask
	ringEntries uint32 // ring_entries
	overflow    uint32 // overflow: CQEs lost, which IORING_FEAT_NODROP prevents
	cqes        uint32 // cqes: the array of CQEs
	flags       uint32 // flags: IORING_CQ_*
	resv1       uint32 // resv1
	userAddr    uint64 // user_addr: for IORING_SETUP_NO_MMAP, not used here
}

// getEventsArg is struct io_uring_getevents_arg: io_uring_enter's last
// argument with IORING_ENTER_EXT_ARG.
type getEventsArg struct {
	sigmask     uint64 // sigmask: a signal mask to wait under; none here
	sigmaskSz   uint32 // sigmask_sz
	minWaitUsec uint32 // min_wait_usec (Linux 6.12; padding before)
	ts          uint64 // ts: the address of a struct __kernel_timespec, the longest wait
}

// timespec is struct __kernel_timespec: 64-bit fields on every
// architecture, unlike unix.Timespec on 32-bit ones.
type timespec struct {
	sec  int64 // tv_sec
	nsec int64 // tv_nsec
}

// toTimespec converts a duration, negative taken as 0.
func toTimespec(d time.Duration) timespec {
	d = max(d, 0)
	return timespec{sec: int64(d / time.Second), nsec: int64(d % time.Second)}
}

// A Ring is one io_uring instance: its descriptor, and the two rings and
// the SQEs mapped into our memory.
type Ring struct {
	fd      int
	ringMem []byte // the SQ ring and the CQ ring, one mapping (IORING_FEAT_SINGLE_MMAP)
	sqeMem  []byte // the SQEs

	// The submission queue. sqHead, sqTail and sqFlags point at words in
	// ringMem that the kernel shares.
	sqHead, sqTail, sqFlags *uint32
	sqMask                  uint32
	sqes                    []SQE
	sqeTail                 uint32     // SQEs GetSQE handed out; flushSQ publishes it as *sqTail
	timespecs               []timespec // PrepTimeout's, one per SQE slot

	// The completion queue.
	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []CQE

	// SubmitAndWaitTimeout's arguments to the kernel. They live in the
	// Ring, on the heap, which Go never moves; a local variable could be
	// on a goroutine's stack, which Go moves when it grows.
	waitArg getEventsArg
	waitTS  timespec
}

// New makes a ring with room for entries SQEs (a power of two at most
// 32768; the kernel rounds up) and twice as many CQEs
// (io_uring_queue_init(3)).
//
// The setup flags, and why. IORING_SETUP_SUBMIT_ALL: when one SQE in a
// batch is bad, the kernel reports it in that SQE's CQE and goes on with
// the rest; without it, the rest would stay in the SQ ring.
//
// Two flags that suit a C program with one thread do not suit a goroutine
// that Go moves between threads. The kernel finishes a network operation
// on the thread that submitted it ("task work"), and by default interrupts
// that thread to do so. IORING_SETUP_COOP_TASKRUN saves the interrupt: the
// kernel waits for the thread's next entry into the kernel. When that
// thread now runs another goroutine, that can take a timer tick (on Linux
// 6.18 we measured a median of 1.6 ms, against 0.2 ms without the flag).
// IORING_SETUP_DEFER_TASKRUN, with IORING_SETUP_SINGLE_ISSUER, goes
// further: only the thread that made the ring may submit, and operations
// finish only when it waits. New leaves them out; NewLocked, for a
// goroutine locked to its thread, sets them.
func New(entries uint32) (*Ring, error) {
	return setup(entries, setupSubmitAll)
}

// NewLocked makes a ring as New does, for a goroutine that has called
// runtime.LockOSThread, and keeps its thread for as long as the ring
// lives: it adds IORING_SETUP_SINGLE_ISSUER and IORING_SETUP_DEFER_TASKRUN
// (Linux 6.1). The kernel then finishes network operations only when that
// thread waits for completions in io_uring_enter, never interrupting it to
// do so; an event loop, which waits in io_uring_enter every round, loses
// nothing by that, and saves an interrupt per completion (at 1000 ping-pong
// connections on Linux 6.18, a third of the server's CPU per line). Only
// that thread may use the ring: another gets EEXIST.
func NewLocked(entries uint32) (*Ring, error) {
	return setup(entries, setupSubmitAll|setupSingleIssuer|setupDeferTaskrun)
}

// setup makes a ring with the setup flags given (io_uring_setup(2)).
func setup(entries uint32, flags uint32) (*Ring, error) {
	p := params{flags: flags}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, explain(errno)
	}
	// The descriptor is close-on-exec already: the kernel makes it so.
	r := &Ring{fd: int(fd)}
	if need := uint32(featSingleMmap | featNoDrop | featExtArg); p.features&need != need {
		r.Close()
		return nil, fmt.Errorf("io_uring: this kernel lacks features %#x of %#x (Linux 5.11 and later have them)", need&^p.features, need)
	}
	if err := r.mmap(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// mmap maps the rings and the SQEs into our memory, and finds the words
// we share in them.
func (r *Ring) mmap(p *params) error {
	// The SQ ring ends with its index array, the CQ ring with its CQEs;
	// with IORING_FEAT_SINGLE_MMAP, one mapping as long as the longer
	// holds both.
	sqSize := p.sqOff.array + p.sqEntries*4
	cqSize := p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(CQE{}))
	var err error
	// MAP_POPULATE maps the pages now, so no page fault waits in the loop.
	r.ringMem, err = unix.Mmap(r.fd, offSQRing, int(max(sqSize, cqSize)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("io_uring: %w", os.NewSyscallError("mmap", err))
	}
	r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(SQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("io_uring: %w", os.NewSyscallError("mmap", err))
	}

	word := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&r.ringMem[off])) }
	r.sqHead, r.sqTail, r.sqFlags = word(p.sqOff.head), word(p.sqOff.tail), word(p.sqOff.flags)
	r.sqMask = *word(p.sqOff.ringMask)
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.timespecs = make([]timespec, p.sqEntries)
	// The SQ ring holds not SQEs but indices into the SQE array, so that a
	// program may fill SQEs in any order. We fill them in order: slot i
	// always names SQE i, and the array is written once, here.
	array := unsafe.Slice(word(p.sqOff.array), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}

	r.cqHead, r.cqTail = word(p.cqOff.head), word(p.cqOff.tail)
	r.cqMask = *word(p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*CQE)(unsafe.Pointer(&r.ringMem[p.cqOff.cqes])), p.cqEntries)
	return nil
}

// Close unmaps the rings and closes the ring's descriptor
// (io_uring_queue_exit(3)); the kernel cancels what is still pending. Close
// the ring's buffer rings first. A second Close does nothing.
func (r *Ring) Close() error {
	if r.fd < 0 {
		return nil
	}
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.ringMem != nil {
		unix.Munmap(r.ringMem)
	}
	r.sqeMem, r.ringMem, r.sqes, r.cqes = nil, nil, nil, nil
	fd := r.fd
	r.fd = -1
	// Never retried on EINTR: the descriptor is gone whatever close says.
	return os.NewSyscallError("close", unix.Close(fd))
}

// GetSQE returns the next free SQE, zeroed, for one of the Prep helpers to
// fill (io_uring_get_sqe(3)); or nil when the SQ ring is full, when the
// caller must Submit first. The kernel sees the SQE at the next Submit.
func (r *Ring) GetSQE() *SQE {
	// The kernel moves the SQ head on once it has read an SQE; a slot
	// behind the head is ours to fill again.
	head := atomic.LoadUint32(r.sqHead)
	if r.sqeTail-head >= uint32(len(r.sqes)) {
		return nil
	}
	sqe := &r.sqes[r.sqeTail&r.sqMask]
	r.sqeTail++
	*sqe = SQE{}
	return sqe
}

// flushSQ publishes the SQEs GetSQE handed out, and returns how many the
// kernel has yet to take.
func (r *Ring) flushSQ() uint32 {
	// A release store: the kernel reads an SQE once it sees the tail
	// past it, so the SQE's contents must reach memory before the new
	// tail does. (liburing stores plainly here, counting on the system
	// call that follows to order it; with IORING_SETUP_SQPOLL a kernel
	// thread reads the tail without one, and it must be a release store.)
	atomic.StoreUint32(r.sqTail, r.sqeTail)
	return r.sqeTail - atomic.LoadUint32(r.sqHead)
}

// enter is io_uring_enter(2): submit toSubmit SQEs and, with
// enterGetEvents, wait until minComplete CQEs are in the CQ ring. arg and
// size are its last two arguments (a signal mask, or with enterExtArg an
// io_uring_getevents_arg).
func (r *Ring) enter(toSubmit, minComplete uint32, flags uintptr, arg unsafe.Pointer, size uintptr) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(minComplete), flags, uintptr(arg), size)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Submit hands the kernel the SQEs filled since the last Submit, and
// returns how many it took (io_uring_submit(3)). It does not wait: results
// come as CQEs, for ReapCQEs.
func (r *Ring) Submit() (int, error) {
	return r.SubmitAndWait(0)
}

// SubmitAndWait submits like Submit, then waits until at least n CQEs are
// in the CQ ring, counting those already there (io_uring_submit_and_wait(3)).
// n must not be more than the CQ ring holds (twice the size given to New).
//
// A signal that comes while it waits makes io_uring_enter fail with EINTR
// (signal(7); Go's SA_RESTART does not resume it). Nothing is lost: the
// SQEs were taken or are still in the ring, and with no deadline there is
// nothing to recompute, so SubmitAndWait waits again.
func (r *Ring) SubmitAndWait(n uint32) (int, error) {
	var flags uintptr
	if n > 0 {
		flags = enterGetEvents
	}
	submitted := 0
	for {
		toSubmit := r.flushSQ()
		if toSubmit == 0 && r.cqReady() >= n {
			return submitted, nil
		}
		k, err := r.enter(toSubmit, n, flags, nil, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return submitted, fmt.Errorf("io_uring: %w", os.NewSyscallError("io_uring_enter", err))
		}
		// A signal can also cut the wait short after the SQEs were taken:
		// then the kernel reports how many it took, not EINTR. The loop's
		// test above finds fewer than n CQEs, and waits again.
		submitted += k
	}
}

// SubmitAndWaitTimeout submits like Submit, then waits at most d until at
// least n CQEs are in the CQ ring (io_uring_submit_and_wait_timeout(3)).
// It returns nil when CQEs are ready: n of them, or fewer if the wait was
// cut short, since the kernel reports success when the ring is not empty.
// With none ready, it returns unix.ETIME when d has passed, and unix.EINTR
// when a signal came first, both unwrapped, to compare with ==.
//
// Unlike SubmitAndWait, it does not wait again after a signal: like our
// event backends (pkg/event/backend.go), it lets the caller's loop
// recompute its deadline. And unlike liburing, it takes two system calls
// when there is something to submit: given both jobs at once, the kernel
// reports how many SQEs it took, and drops the ETIME or EINTR the caller
// needs.
func (r *Ring) SubmitAndWaitTimeout(n uint32, d time.Duration) (int, error) {
	submitted, err := r.Submit()
	if err != nil || r.cqReady() >= n {
		return submitted, err
	}
	r.waitTS = toTimespec(d)
	r.waitArg = getEventsArg{ts: uint64(uintptr(unsafe.Pointer(&r.waitTS)))}
	_, err = r.enter(0, n, enterGetEvents|enterExtArg, unsafe.Pointer(&r.waitArg), unsafe.Sizeof(r.waitArg))
	if err == unix.ETIME || err == unix.EINTR {
		return submitted, err
	}
	if err != nil {
		return submitted, fmt.Errorf("io_uring: %w", os.NewSyscallError("io_uring_enter", err))
	}
	return submitted, nil
}

// Enter is an event loop's wait, in one system call: it submits the SQEs
// filled since the last submit, then waits at most d (no limit if d is
// negative) until at least n CQEs are in the CQ ring. It returns nil once
// the wait has ended, whether n CQEs came or d passed: the kernel says
// ETIME for the second only when it took no SQE in the same call, so a
// loop cannot count on hearing it, and need not: it reaps what came and
// reads its own clock for what is due, as pkg/event's does. A signal that
// cuts the wait short returns unix.EINTR, unwrapped.
func (r *Ring) Enter(n uint32, d time.Duration) error {
	toSubmit := r.flushSQ()
	if toSubmit == 0 && r.cqReady() >= n {
		return nil
	}
	r.waitArg = getEventsArg{}
	if d >= 0 {
		r.waitTS = toTimespec(d)
		r.waitArg.ts = uint64(uintptr(unsafe.Pointer(&r.waitTS)))
	}
	_, err := r.enter(toSubmit, n, enterGetEvents|enterExtArg, unsafe.Pointer(&r.waitArg), unsafe.Sizeof(r.waitArg))
	switch err {
	case nil, unix.ETIME:
		return nil
	case unix.EINTR:
		return err
	default:
		return fmt.Errorf("io_uring: %w", os.NewSyscallError("io_uring_enter", err))
	}
}

// cqReady returns how many CQEs are in the CQ ring.
func (r *Ring) cqReady() uint32 {
	return atomic.LoadUint32(r.cqTail) - atomic.LoadUint32(r.cqHead)
}

// ReapCQEs copies up to len(cqes) completions out of the CQ ring, frees
// their slots for the kernel, and returns how many it copied; it never
// waits (io_uring_peek_batch_cqe(3), then io_uring_cq_advance(3)).
//
// When more completions come than the CQ ring holds, the kernel keeps the
// rest (IORING_FEAT_NODROP) and raises IORING_SQ_CQ_OVERFLOW in the SQ
// ring's flags. They reach the ring only when we enter the kernel asking
// for completions, which ReapCQEs does once it has emptied the ring.
func (r *Ring) ReapCQEs(cqes []CQE) int {
	n := r.copyCQEs(cqes)
	if n < len(cqes) && atomic.LoadUint32(r.sqFlags)&sqCQOverflow != 0 {
		// NOTE: an error here is ignored, as liburing ignores it: this
		// call does not wait, and anything wrong shows at the next wait.
		r.enter(0, 0, enterGetEvents, nil, 0)
		n += r.copyCQEs(cqes[n:])
	}
	return n
}

// copyCQEs copies CQEs from the CQ ring into cqes, and moves the head past
// them.
func (r *Ring) copyCQEs(cqes []CQE) int {
	head := atomic.LoadUint32(r.cqHead) // ours: the kernel only reads it
	// An acquire load: the kernel writes a CQE, then moves the tail past
	// it with a release store; once we see the tail, we see the CQEs
	// before it, whole.
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail && n < len(cqes); head++ {
		cqes[n] = r.cqes[head&r.cqMask]
		n++
	}
	if n > 0 {
		// A release store: the kernel writes a new CQE into a slot once
		// the head has passed it, so our reads of the slot must be done
		// before it sees the new head.
		atomic.StoreUint32(r.cqHead, head)
	}
	return n
}
