//go:build linux

package uring

// The operations: helpers that fill an SQE, as liburing's io_uring_prep_*
// in liburing.h. Each says which man page it mirrors; the CQE's res is
// what the matching system call would return, or -errno.

import (
	"time"
	"unsafe"
)

// An SQE is one submission queue entry, struct io_uring_sqe (64 bytes): an
// operation for the kernel to do. Get one from Ring.GetSQE, fill it with
// one Prep helper, and give it a user_data with SetData.
type SQE struct {
	opcode      uint8  // opcode: IORING_OP_*
	flags       uint8  // flags: IOSQE_*
	ioprio      uint16 // ioprio: for accept, recv and send, their IORING_*_MULTISHOT flags
	fd          int32  // fd: the descriptor to work on
	off         uint64 // off (and addr2): a file offset; for a timeout, the count
	addr        uint64 // addr: a buffer's address; a timespec's; the user_data to cancel
	len         uint32 // len: the buffer's length; for shutdown, how
	opFlags     uint32 // the union of msg_flags, accept_flags, timeout_flags, cancel_flags...
	userData    uint64 // user_data: the caller's cookie, handed back in the CQE
	bufGroup    uint16 // buf_group (and buf_index): with IOSQE_BUFFER_SELECT, the group to take a buffer from
	personality uint16 // personality: not used here
	spliceFdIn  int32  // splice_fd_in (and file_index, optlen...): not used here
	addr3       uint64 // addr3: not used here
	_           uint64 // __pad2
}

const (
	opNop         = 0  // IORING_OP_NOP
	opPollAdd     = 6  // IORING_OP_POLL_ADD
	opPollRemove  = 7  // IORING_OP_POLL_REMOVE
	opTimeout     = 11 // IORING_OP_TIMEOUT
	opAccept      = 13 // IORING_OP_ACCEPT
	opAsyncCancel = 14 // IORING_OP_ASYNC_CANCEL
	opClose       = 19 // IORING_OP_CLOSE
	opRead        = 22 // IORING_OP_READ
	opSend        = 26 // IORING_OP_SEND
	opRecv        = 27 // IORING_OP_RECV
	opShutdown    = 34 // IORING_OP_SHUTDOWN

	sqeBufferSelect = 1 << 5 // IOSQE_BUFFER_SELECT: take a buffer from the group in buf_group

	acceptMultishot   = 1 << 0 // IORING_ACCEPT_MULTISHOT, in ioprio
	recvsendPollFirst = 1 << 0 // IORING_RECVSEND_POLL_FIRST, in ioprio
	recvMultishot     = 1 << 1 // IORING_RECV_MULTISHOT, in ioprio
)

// SetData sets the SQE's user_data: the cookie every CQE it posts hands
// back (io_uring_sqe_set_data64(3)). The Prep helpers leave it alone.
func (sqe *SQE) SetData(userData uint64) {
	sqe.userData = userData
}

// prep fills the fields every operation uses (io_uring_prep_rw, in
// liburing.h).
func (sqe *SQE) prep(op uint8, fd int, addr uintptr, n uint32, off uint64) {
	sqe.opcode = op
	sqe.fd = int32(fd)
	sqe.addr = uint64(addr)
	sqe.len = n
	sqe.off = off
}

// PrepNop makes sqe an operation that does nothing and completes at once
// with res 0 (io_uring_prep_nop(3)).
func (sqe *SQE) PrepNop() {
	sqe.prep(opNop, -1, 0, 0, 0)
}

// PrepMultishotAccept makes sqe accept connections on the listening socket
// fd, each with accept4(2)'s flags (unix.SOCK_CLOEXEC), for as long as it
// is not cancelled (io_uring_prep_multishot_accept(3)). Each connection
// posts a CQE whose res is its new descriptor, with IORING_CQE_F_MORE while
// more will come. The peer's address is not asked for: getpeername(2) has
// it.
//
// NOTE: the kernel reads the process's limit on descriptors
// (RLIMIT_NOFILE) once, when it takes the SQE (io_uring/net.c,
// io_accept_prep): the accept goes on with that limit, past a lower one
// set since (prlimit(1)). PrepAccept's SQEs each read it afresh.
func (sqe *SQE) PrepMultishotAccept(fd int, flags int) {
	sqe.prep(opAccept, fd, 0, 0, 0)
	sqe.opFlags = uint32(flags)
	sqe.ioprio |= acceptMultishot
}

// PrepAccept makes sqe accept one connection on the listening socket fd,
// with accept4(2)'s flags (io_uring_prep_accept(3), the peer's address not
// asked for). Its CQE's res is the new descriptor, or -EMFILE when the
// descriptors have run out, the client then staying queued.
func (sqe *SQE) PrepAccept(fd int, flags int) {
	sqe.prep(opAccept, fd, 0, 0, 0)
	sqe.opFlags = uint32(flags)
}

// PrepRead makes sqe read up to len(p) bytes from fd into p, as read(2)
// does, at the file's position if it has one (io_uring_prep_read(3) with
// offset -1). The CQE's res is the count read, 0 at end of file.
//
// NOTE: the kernel writes into p when the data comes, at the address it
// was given. The caller must keep p, and leave it untouched, until the CQE
// comes; and p must be on the heap, which Go never moves: a buffer that
// does not outlive its function may be on the goroutine's stack, which Go
// moves when it grows (make p a package's variable, or a field of a struct
// on the heap).
func (sqe *SQE) PrepRead(fd int, p []byte) {
	var addr uintptr
	if len(p) > 0 {
		addr = uintptr(unsafe.Pointer(&p[0]))
	}
	sqe.prep(opRead, fd, addr, uint32(len(p)), ^uint64(0)) // offset -1: the file's own
}

// PrepRecvMultishot makes sqe receive on socket fd, again and again, each
// time into a buffer the kernel takes from the buffer ring of group when
// data has come (io_uring_prep_recv_multishot(3), with IOSQE_BUFFER_SELECT).
// Each CQE's res is the count received, 0 at end of file, or -errno; its
// BufferID is where the bytes are. Without IORING_CQE_F_MORE it is the
// last: after end of file, an error, or -ENOBUFS when the buffer ring ran
// dry. To go on receiving, submit a new one.
func (sqe *SQE) PrepRecvMultishot(fd int, group uint16) {
	// len 0: each receive takes at most a whole buffer.
	sqe.prep(opRecv, fd, 0, 0, 0)
	sqe.ioprio |= recvMultishot
	sqe.flags |= sqeBufferSelect
	sqe.bufGroup = group
}

// PrepRecv makes sqe receive once on socket fd, at most n bytes, into a
// buffer the kernel takes from the buffer ring of group when data has come
// (io_uring_prep_recv(3) with no buffer, and IOSQE_BUFFER_SELECT). Its
// CQE's res is the count received, 0 at end of file, or -errno (-ENOBUFS
// when the buffer ring ran dry); its BufferID is where the bytes are.
// Unlike PrepRecvMultishot, it takes no more than the caller has room for:
// what a bufferevent's read high watermark needs.
//
// It waits for data before it tries (IORING_RECVSEND_POLL_FIRST): a recv
// asked for as soon as the last one completed mostly finds nothing yet,
// and the kernel's first try would fail for nothing. Data already there
// is seen at once all the same.
func (sqe *SQE) PrepRecv(fd int, group uint16, n int) {
	sqe.prep(opRecv, fd, 0, uint32(n), 0)
	sqe.ioprio |= recvsendPollFirst
	sqe.flags |= sqeBufferSelect
	sqe.bufGroup = group
}

// PrepSend makes sqe send p on socket fd, with send(2)'s flags
// (io_uring_prep_send(3)). Pass unix.MSG_NOSIGNAL, as a server should: a
// send to a peer that is gone then fails with EPIPE rather than raising
// SIGPIPE. As with send(2), the count in the CQE may be short of len(p):
// send the rest with another SQE (or pass unix.MSG_WAITALL, with which the
// kernel retries until all of p is sent).
//
// NOTE: the kernel reads p while the send is in flight. The caller must
// keep p, and leave it untouched, until the CQE comes; and p must be on the
// heap, as PrepRead says.
func (sqe *SQE) PrepSend(fd int, p []byte, flags int) {
	var addr uintptr
	if len(p) > 0 {
		addr = uintptr(unsafe.Pointer(&p[0]))
	}
	sqe.prep(opSend, fd, addr, uint32(len(p)), 0)
	sqe.opFlags = uint32(flags)
}

// PrepPollAdd makes sqe wait until fd is ready for the poll(2) events in
// mask (unix.POLLIN, unix.POLLOUT), once (io_uring_prep_poll_add(3)). Its
// CQE's res is the events that are ready: like poll(2), unix.POLLHUP and
// unix.POLLERR whether asked for or not. It is readiness, not completion:
// what pkg/event's io_uring backend watches a listener and a pipe with.
// Like poll(2) it looks at once, so a descriptor that is ready already
// completes at once: one-shot polls armed again after each completion are
// level-triggered.
func (sqe *SQE) PrepPollAdd(fd int, mask uint32) {
	sqe.prep(opPollAdd, fd, 0, 0, 0)
	sqe.opFlags = mask // poll32_events, little-endian as the kernel wants it on the machines Go runs io_uring on
}

// PrepPollRemove makes sqe remove the poll submitted with user_data
// userData (io_uring_prep_poll_remove(3)): it completes with -ECANCELED,
// and the remove's own CQE has res 0, or -ENOENT if it had completed.
func (sqe *SQE) PrepPollRemove(userData uint64) {
	sqe.prep(opPollRemove, -1, 0, 0, 0)
	sqe.addr = userData
}

// PrepShutdown makes sqe shut down part of socket fd's connection, how
// being unix.SHUT_WR, SHUT_RD or SHUT_RDWR (io_uring_prep_shutdown(3),
// shutdown(2)).
func (sqe *SQE) PrepShutdown(fd int, how int) {
	sqe.prep(opShutdown, fd, 0, uint32(how), 0)
}

// PrepClose makes sqe close fd (io_uring_prep_close(3), close(2)).
func (sqe *SQE) PrepClose(fd int) {
	sqe.prep(opClose, fd, 0, 0, 0)
}

// PrepCancel makes sqe cancel the operation submitted with user_data
// userData (io_uring_prep_cancel64(3)). The cancelled operation completes
// with -ECANCELED; the cancel's own CQE has res 0, or -ENOENT if no
// operation had that user_data, or -EALREADY if it was already under way.
func (sqe *SQE) PrepCancel(userData uint64) {
	sqe.prep(opAsyncCancel, -1, 0, 0, 0)
	sqe.addr = userData
}

// PrepTimeout makes sqe a timer: it completes after d with res -ETIME
// (io_uring_prep_timeout(3), with a count of 0).
//
// Unlike the other helpers, it is a method of the Ring. The SQE holds the
// address of a timespec, which the kernel reads when it takes the SQE;
// the Ring keeps one timespec per SQE slot, where it stays put until then.
func (r *Ring) PrepTimeout(sqe *SQE, d time.Duration) {
	slot := (uintptr(unsafe.Pointer(sqe)) - uintptr(unsafe.Pointer(&r.sqes[0]))) / unsafe.Sizeof(*sqe)
	ts := &r.timespecs[slot]
	*ts = toTimespec(d)
	// len 1: one timespec.
	sqe.prep(opTimeout, -1, uintptr(unsafe.Pointer(ts)), 1, 0)
}
