//go:build linux

package uring

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Cancelling everything, and waiting until it is done: liburing's
// io_uring_register_sync_cancel(3).

const (
	registerSyncCancel = 24 // IORING_REGISTER_SYNC_CANCEL (Linux 6.0)

	cancelAll = 1 << 0 // IORING_ASYNC_CANCEL_ALL: every request that matches, not the first
	cancelAny = 1 << 2 // IORING_ASYNC_CANCEL_ANY: match every request
)

// syncCancelReg is struct io_uring_sync_cancel_reg (64 bytes).
type syncCancelReg struct {
	addr    uint64   // addr: the user_data to match; not used with CANCEL_ANY
	fd      int32    // fd: the descriptor to match; not used with CANCEL_ANY
	flags   uint32   // flags: IORING_ASYNC_CANCEL_*
	timeout timespec // timeout: how long to wait; -1, -1 for no limit
	opcode  uint8    // opcode: with IORING_ASYNC_CANCEL_OP, the operation to match
	_       [7]uint8
	_       [3]uint64
}

// CancelAll cancels every operation in flight, and returns once each has
// been cancelled: their CQEs (-ECANCELED, mostly) come to the CQ ring, for
// ReapCQEs, and the operations let go of their files. On a ring of New's
// that is done by the time CancelAll returns. On a ring of NewLocked's
// (DEFER_TASKRUN) that last step runs only as the thread asks for
// completions, a batch at a time: CancelAll asks once, and a caller with
// more than a few dozen operations in flight reaps, and asks again
// (Enter with a timeout of 0), until none comes, as pkg/event does.
//
// Why a program wants it: every operation in flight holds the file it
// works on, as an open descriptor does. A listener with an accept or a
// poll in the ring stays open after the program has closed it, or exited,
// until the kernel has torn the ring down, later, on a worker thread; and
// a client can connect meanwhile. A server about to exit cancels first.
func (r *Ring) CancelAll() error {
	reg := syncCancelReg{flags: cancelAll | cancelAny, timeout: timespec{sec: -1, nsec: -1}}
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerSyncCancel, uintptr(unsafe.Pointer(&reg)), 1, 0, 0)
	if errno != 0 && errno != unix.ENOENT { // ENOENT: nothing was in flight
		return fmt.Errorf("io_uring: %w", os.NewSyscallError("io_uring_register", errno))
	}
	// On a ring of NewLocked's, ask for completions once, waiting for
	// none: the first batch of the cancelled operations finishes.
	for {
		_, err := r.enter(0, 0, enterGetEvents, nil, 0)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		}
		return fmt.Errorf("io_uring: %w", os.NewSyscallError("io_uring_enter", err))
	}
}
