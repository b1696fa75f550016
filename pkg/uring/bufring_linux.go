//go:build linux

package uring

// Provided buffers: a ring of buffers we lend the kernel, for multishot
// recv (liburing's io_uring_setup_buf_ring and io_uring_buf_ring_add).
//
// Why lend buffers rather than pass one with each recv, as read(2) takes
// one? A recv that waits holds its buffer for as long as it waits. A server
// with 10,000 idle connections, each with a recv armed and a 4 KiB buffer,
// would pin 40 MB that hold nothing. With provided buffers, a recv names a
// group of buffers, not a buffer, and the kernel picks one from the group
// only when data has come. An idle connection holds no memory at all; the
// ring needs as many buffers as there are chunks of data received and not
// yet consumed.
//
// The buffer ring is a ring like the SQ ring, with us as the writer: we
// put a buffer's address, length and id at the tail, and the kernel takes
// buffers from the head. When it is empty, a recv that has data fails
// with ENOBUFS, and a multishot recv ends (its CQE lacks
// IORING_CQE_F_MORE); the data waits in the socket. The caller gives
// buffers back, then arms a new recv.

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	registerPbufRing   = 22 // IORING_REGISTER_PBUF_RING
	unregisterPbufRing = 23 // IORING_UNREGISTER_PBUF_RING
)

// bufReg is struct io_uring_buf_reg: IORING_REGISTER_PBUF_RING's argument.
type bufReg struct {
	ringAddr    uint64    // ring_addr: the ring's address, page-aligned
	ringEntries uint32    // ring_entries: its slots, a power of two up to 32768
	bgid        uint16    // bgid: the group's number, which SQEs name in buf_group
	flags       uint16    // flags: IOU_PBUF_RING_*; none here
	minLeft     uint32    // min_left (Linux 6.12; reserved before), for IOU_PBUF_RING_INC only
	resv        [5]uint32 // resv
}

// bufEntry is struct io_uring_buf: one slot of the buffer ring.
type bufEntry struct {
	addr uint64 // addr: the buffer's address
	len  uint32 // len: its length
	bid  uint16 // bid: its id, which the CQE hands back
	resv uint16 // resv; in slot 0, the ring's tail (struct io_uring_buf_ring)
}

// A BufRing is a group of equal buffers lent to the kernel for recvs that
// select a buffer (PrepRecvMultishot).
type BufRing struct {
	r     *Ring
	group uint16
	mem   []byte     // one anonymous mapping: the ring, then the buffers
	ring  []bufEntry // the ring, at the start of mem
	data  []byte     // the buffers, size bytes each, buffer id i at i*size
	size  int
	tail  uint16 // the next slot we fill; publishTail shows it to the kernel
}

// RegisterBufRing makes count buffers of size bytes and lends them to the
// kernel as buffer group group (io_uring_setup_buf_ring(3)). count is a
// power of two at most 32768; the ids are 0 to count-1.
func (r *Ring) RegisterBufRing(group uint16, count, size int) (*BufRing, error) {
	if count < 1 || count > 1<<15 || count&(count-1) != 0 || size < 1 {
		return nil, fmt.Errorf("io_uring: a buffer ring needs a power of two up to 32768 buffers, of at least one byte (not %d of %d)", count, size)
	}
	// The kernel wants the ring page-aligned; a mapping is. The buffers
	// follow it from the next page on.
	page := os.Getpagesize()
	ringSize := (count*int(unsafe.Sizeof(bufEntry{})) + page - 1) / page * page
	mem, err := unix.Mmap(-1, 0, ringSize+count*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("io_uring: %w", os.NewSyscallError("mmap", err))
	}
	b := &BufRing{
		r:     r,
		group: group,
		mem:   mem,
		ring:  unsafe.Slice((*bufEntry)(unsafe.Pointer(&mem[0])), count),
		data:  mem[ringSize:],
		size:  size,
	}
	reg := bufReg{ringAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), ringEntries: uint32(count), bgid: group}
	if err := r.register(registerPbufRing, unsafe.Pointer(&reg)); err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	for id := range count {
		b.add(uint16(id))
	}
	b.publishTail()
	return b, nil
}

// register is io_uring_register(2), with one argument.
func (r *Ring) register(op uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), op, uintptr(arg), 1, 0, 0)
	if errno != 0 {
		return fmt.Errorf("io_uring: %w", os.NewSyscallError("io_uring_register", errno))
	}
	return nil
}

// Group returns the buffer group's number, for PrepRecvMultishot.
func (b *BufRing) Group() uint16 {
	return b.group
}

// Bytes returns the first n bytes of buffer id: what a CQE with that
// BufferID and res n received. They are the caller's until Recycle(id).
func (b *BufRing) Bytes(id uint16, n int) []byte {
	off := int(id) * b.size
	return b.data[off : off+n : off+n]
}

// Recycle gives buffer id back to the kernel, for a later recv, once the
// caller is done with its bytes (io_uring_buf_ring_add(3), then
// io_uring_buf_ring_advance(3)).
func (b *BufRing) Recycle(id uint16) {
	b.add(id)
	b.publishTail()
}

// add puts buffer id in the slot at the tail, and moves our tail on; the
// kernel does not see it until publishTail.
func (b *BufRing) add(id uint16) {
	e := &b.ring[b.tail&uint16(len(b.ring)-1)]
	// Field by field, never *e = bufEntry{...}: slot 0's resv is the tail.
	e.addr = uint64(uintptr(unsafe.Pointer(&b.data[int(id)*b.size])))
	e.len = uint32(b.size)
	e.bid = id
	b.tail++
}

// publishTail shows the kernel the buffers added since the last time.
//
// As with the SQ ring, a release store: the kernel takes the slots before
// the tail, so their contents must reach memory first. The tail is 16 bits,
// slot 0's resv field, and sync/atomic cannot store 16 bits; so we store
// the 32-bit word that holds slot 0's bid and the tail, bid unchanged. That
// is safe because we are the only writer of both halves: the kernel only
// reads the ring.
func (b *BufRing) publishTail() {
	var w [4]byte
	binary.NativeEndian.PutUint16(w[0:], b.ring[0].bid)
	binary.NativeEndian.PutUint16(w[2:], b.tail)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b.ring[0].bid)), binary.NativeEndian.Uint32(w[:]))
}

// Close takes the buffers back from the kernel, and frees them
// (io_uring_free_buf_ring(3)). Close it before its Ring, once no recv that
// selects from it is pending: a recv armed after Close fails with ENOBUFS.
func (b *BufRing) Close() error {
	if b.mem == nil {
		return nil
	}
	reg := bufReg{bgid: b.group}
	if err := b.r.register(unregisterPbufRing, unsafe.Pointer(&reg)); err != nil && b.r.fd >= 0 {
		// The kernel may still write into the buffers: better to keep
		// them mapped than to let that memory become something else.
		return err
	}
	unix.Munmap(b.mem)
	b.mem, b.ring, b.data = nil, nil, nil
	return nil
}
