package uring

import "syscall"

// A CQE is one completion: struct io_uring_cqe (16 bytes), copied out of
// the CQ ring by ReapCQEs. It is the same on every system, so that code
// which only reads CQEs builds everywhere.
type CQE struct {
	UserData uint64 // user_data: the SQE's, handed back unchanged
	Res      int32  // res: what the system call would have returned, or -errno
	Flags    uint32 // flags: IORING_CQE_F_*, and a provided buffer's id in the top 16 bits
}

const (
	cqeFBuffer     = 1 << 0 // IORING_CQE_F_BUFFER: the top 16 bits of flags are a buffer id
	cqeFMore       = 1 << 1 // IORING_CQE_F_MORE: the SQE will post more CQEs
	cqeBufferShift = 16     // IORING_CQE_BUFFER_SHIFT
)

// More reports whether the multishot SQE that posted c goes on (it set
// IORING_CQE_F_MORE). When it does not, c is that SQE's last CQE: to go on
// accepting or receiving, submit a new one.
func (c CQE) More() bool {
	return c.Flags&cqeFMore != 0
}

// BufferID returns the provided buffer the kernel put c's data in, if it
// used one (IORING_CQE_F_BUFFER). The buffer is the caller's until it gives
// it back with BufRing.Recycle.
func (c CQE) BufferID() (id uint16, ok bool) {
	if c.Flags&cqeFBuffer == 0 {
		return 0, false
	}
	return uint16(c.Flags >> cqeBufferShift), true
}

// Err returns the error c reports, as an errno to compare with ==
// (err == unix.ECONNRESET), or nil when Res is not negative.
func (c CQE) Err() error {
	if c.Res >= 0 {
		return nil
	}
	return syscall.Errno(-c.Res)
}
