// Package uring is our own io_uring, Linux's completion interface, written
// to be read beside liburing (github.com/axboe/liburing) and the kernel's
// include/uapi/linux/io_uring.h. It is what the book's last section, "What
// about convenience? (and what about Windows?)", calls the other model: the
// kernel does the IO and tells us when it has finished.
//
// Readiness against completion, in four sentences. epoll (stage 04) says
// a socket is ready, and then we make the system call that reads it.
// io_uring takes the whole operation ("receive on this socket"), does it
// when it can, and then reports that it is done and what it returned. We
// hand it work through a ring of memory we share with the kernel, and it
// hands back results through a second one. So one system call can start
// many operations and collect the results of many others.
//
// The words, in the order the files use them. A ring is an array used in a
// circle: the writer puts entries at its tail, the reader takes them from
// its head, and each counts up forever, the slot being the count modulo
// the ring's size. An SQE (submission queue entry) is one operation we ask
// for; the SQ ring carries them to the kernel. A CQE (completion queue
// entry) is one result; the CQ ring carries them back. Each SQE has a
// user_data, a 64-bit number of the caller's choosing that comes back in
// its CQEs, so the caller knows what finished. A multishot SQE goes on
// posting CQEs (one per accepted connection, one per received chunk) until
// it ends; each CQE but the last has IORING_CQE_F_MORE. A provided buffer
// is memory we lend the kernel ahead of time, for it to receive into when
// data comes (bufring_linux.go).
//
// Our names and liburing's:
//
//	uring.New(entries)              io_uring_queue_init
//	uring.NewLocked(entries)        io_uring_queue_init, with
//	                                SINGLE_ISSUER and DEFER_TASKRUN
//	r.Close()                       io_uring_queue_exit
//	r.GetSQE()                      io_uring_get_sqe
//	sqe.SetData(cookie)             io_uring_sqe_set_data64
//	sqe.PrepMultishotAccept(...)    io_uring_prep_multishot_accept, and the
//	                                other io_uring_prep_* in sqe_linux.go
//	r.PrepTimeout(sqe, d)           io_uring_prep_timeout
//	r.Submit()                      io_uring_submit
//	r.SubmitAndWait(n)              io_uring_submit_and_wait
//	r.SubmitAndWaitTimeout(n, d)    io_uring_submit_and_wait_timeout
//	r.ReapCQEs(cqes)                io_uring_peek_batch_cqe, then
//	                                io_uring_cq_advance
//	cqe.More(), cqe.BufferID()      IORING_CQE_F_MORE, IORING_CQE_F_BUFFER
//	r.RegisterBufRing(...)          io_uring_setup_buf_ring
//	br.Bytes(id, n)                 (none: the caller indexes its buffers)
//	br.Recycle(id)                  io_uring_buf_ring_add, then
//	                                io_uring_buf_ring_advance
//	br.Close()                      io_uring_free_buf_ring
//	uring.Available()               (none: a C program tests
//	                                io_uring_queue_init's error)
//
// It needs Linux 6.1 (multishot recv came in 6.0, DEFER_TASKRUN in 6.1);
// Available says why a kernel or a sandbox refuses io_uring altogether, or
// why this kernel is too old.
// Elsewhere, every call fails with "io_uring: Linux only" (uring_other.go).
//
// A Ring and its buffer rings belong to one goroutine at a time, like an
// event.Base. With New, that goroutine may move between threads; with
// NewLocked, it must not (see the setup flags in ring_linux.go).
package uring
