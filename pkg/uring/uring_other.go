//go:build !linux

package uring

// io_uring is Linux's alone. Elsewhere the package has the same calls,
// and each fails, so that a program that offers io_uring as one choice
// among others still builds, and says why it cannot have it.

import (
	"errors"
	"time"
)

// errNotLinux is every call's answer here.
var errNotLinux = errors.New("io_uring: Linux only")

// A Ring is an io_uring instance; here, New never makes one.
type Ring struct{}

// An SQE is a submission queue entry; here, GetSQE never returns one.
type SQE struct{}

// A BufRing is a ring of provided buffers; here, RegisterBufRing never
// makes one.
type BufRing struct{}

// Available says that io_uring is Linux only.
func Available() error { return errNotLinux }

// New fails: io_uring is Linux only.
func New(entries uint32) (*Ring, error) { return nil, errNotLinux }

// NewLocked fails: io_uring is Linux only.
func NewLocked(entries uint32) (*Ring, error) { return nil, errNotLinux }

// Close does nothing.
func (r *Ring) Close() error { return nil }

// GetSQE returns nil.
func (r *Ring) GetSQE() *SQE { return nil }

// Submit fails: io_uring is Linux only.
func (r *Ring) Submit() (int, error) { return 0, errNotLinux }

// SubmitAndWait fails: io_uring is Linux only.
func (r *Ring) SubmitAndWait(n uint32) (int, error) { return 0, errNotLinux }

// SubmitAndWaitTimeout fails: io_uring is Linux only.
func (r *Ring) SubmitAndWaitTimeout(n uint32, d time.Duration) (int, error) {
	return 0, errNotLinux
}

// Enter fails: io_uring is Linux only.
func (r *Ring) Enter(n uint32, d time.Duration) error { return errNotLinux }

// CancelAll fails: io_uring is Linux only.
func (r *Ring) CancelAll() error { return errNotLinux }

// ReapCQEs finds nothing.
func (r *Ring) ReapCQEs(cqes []CQE) int { return 0 }

// PrepTimeout does nothing.
func (r *Ring) PrepTimeout(sqe *SQE, d time.Duration) {}

// RegisterBufRing fails: io_uring is Linux only.
func (r *Ring) RegisterBufRing(group uint16, count, size int) (*BufRing, error) {
	return nil, errNotLinux
}

// SetData does nothing.
func (sqe *SQE) SetData(userData uint64) {}

// PrepNop does nothing.
func (sqe *SQE) PrepNop() {}

// PrepMultishotAccept does nothing.
func (sqe *SQE) PrepMultishotAccept(fd int, flags int) {}

// PrepAccept does nothing.
func (sqe *SQE) PrepAccept(fd int, flags int) {}

// PrepRead does nothing.
func (sqe *SQE) PrepRead(fd int, p []byte) {}

// PrepRecvMultishot does nothing.
func (sqe *SQE) PrepRecvMultishot(fd int, group uint16) {}

// PrepRecv does nothing.
func (sqe *SQE) PrepRecv(fd int, group uint16, n int) {}

// PrepSend does nothing.
func (sqe *SQE) PrepSend(fd int, p []byte, flags int) {}

// PrepPollAdd does nothing.
func (sqe *SQE) PrepPollAdd(fd int, mask uint32) {}

// PrepPollRemove does nothing.
func (sqe *SQE) PrepPollRemove(userData uint64) {}

// PrepShutdown does nothing.
func (sqe *SQE) PrepShutdown(fd int, how int) {}

// PrepClose does nothing.
func (sqe *SQE) PrepClose(fd int) {}

// PrepCancel does nothing.
func (sqe *SQE) PrepCancel(userData uint64) {}

// Group returns 0.
func (b *BufRing) Group() uint16 { return 0 }

// Bytes returns nothing.
func (b *BufRing) Bytes(id uint16, n int) []byte { return nil }

// Recycle does nothing.
func (b *BufRing) Recycle(id uint16) {}

// Close does nothing.
func (b *BufRing) Close() error { return nil }
