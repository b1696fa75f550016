// Command 07-completion-server is 04, the book's "A low-level ROT13 server
// with Libevent" (A tiny introduction to asynchronous IO), turned inside
// out, on the model of the book's last section, "What about convenience?
// (and what about Windows?)": the program starts an operation, and the
// kernel says when it has finished. Windows calls that IOCP; Linux has
// io_uring, driven here through our own pkg/uring, with no library between.
//
// 04 asks "what may I do now?", then reads and writes itself. 07 says
// "receive on this socket", "send these bytes"; the kernel does it, and
// hands back a completion (a CQE) that says which operation, and what it
// returned. The loop is ours again: submit, wait, hand each completion on.
//
// The book's program, function for function, and 04's names:
//
//	book               04                    07
//	rot13_char         rot13.Char            rot13.Char
//	struct fd_state    fdState               fdState
//	alloc_fd_state     allocFdState          allocFdState
//	free_fd_state      freeFdState           freeFdState
//	do_read            doRead                onRecv: a receive has completed
//	do_write           doWrite (and flush)   onSend: a send has completed (and flush)
//	do_accept          doAccept              onAccept: an accept has completed
//	run                run (base.Dispatch)   run, and complete: the loop is ours
//	main               main                  main
//
//	go run ./07-completion-server -trace     # Linux 6.1 or later
package main

import (
	"flag"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/evutil"
	"tinyasync/pkg/rot13"
	"tinyasync/pkg/uring"
)

// trace narrates each submission, wait and completion, and each close,
// when -trace is on.
var trace = log.New(io.Discard, "", 0)

// fdState is the book's struct fd_state: what the server holds for one
// connection. Bytes come in at the end of buffer, already ROT13'd; those
// before writeUpto end with a newline, and may be sent; nWritten of them
// have been.
type fdState struct {
	buffer    []byte // grows as bytes come; nil while it would be empty
	nWritten  int
	writeUpto int

	// Unlike the book, which closes the connection at the end of the
	// stream: the client has finished sending, and the connection closes
	// once everything is sent.
	ended bool

	// Unlike 04's events, which say what to ask the kernel: what the
	// kernel is doing for this connection now.
	receiving bool   // a multishot recv is armed: its last CQE has not come
	cancelled bool   // that recv is cancelled, its last CQE on the way
	sending   []byte // what a send in flight sends: the kernel reads it, so it stays here, untouched
	closing   bool   // freeFdState waits for the last CQEs
}

var conns = map[int]*fdState{} // every connection's state, by descriptor

// allocFdState is the book's alloc_fd_state. Unlike the book's, the state
// comes without its buffer: onRecv makes one when bytes arrive, and onSend
// lets it go once they are all sent. Nor does a recv that waits hold a
// buffer of the ring, which the kernel picks only when data comes, so that
// an idle connection costs a few dozen bytes.
func allocFdState(fd int) *fdState {
	st := &fdState{}
	conns[fd] = st
	return st
}

// freeFdState is the book's free_fd_state. Unlike the book's, it closes the
// descriptor; but not while the kernel works on it (a recv armed, a send in
// flight), lest the next client get the number, and with it the old one's
// completions. It cancels those, and the last one's CQE calls it again.
// Then close(2), not the ring's close: nothing of the kernel's names fd by
// then, and a close SQE would hold the number, one state more, until its
// CQE.
func freeFdState(fd int, st *fdState) {
	if !st.closing {
		st.closing = true
		if st.receiving && !st.cancelled {
			cancel(opRecv, fd, st)
		}
		if st.sending != nil {
			cancel(opSend, fd, st)
		}
	}
	if st.receiving || st.sending != nil {
		return
	}
	delete(conns, fd)
	trace.Printf("close fd %d", fd)
	unix.Close(fd) // its error tells nothing to act on: the descriptor is gone either way (close(2))
}

// onRecv is the book's do_read, turned around: do_read runs when fd is
// readable, and reads; onRecv runs when the kernel has received, into a
// buffer of the ring. It turns the bytes into ROT13 as the book does: each
// newline makes the line before it ready to send.
func onRecv(fd int, st *fdState, c uring.CQE) {
	if !c.More() { // the recv's last CQE: flush arms another, or not
		st.receiving, st.cancelled = false, false
	}
	switch err := c.Err(); {
	case c.Res > 0:
		id, _ := c.BufferID()
		trace.Printf("complete recv fd %d: %d bytes in buffer %d (more: %t)", fd, c.Res, id, c.More())
		start := len(st.buffer)
		st.buffer = append(st.buffer, bufs.Bytes(id, int(c.Res))...)
		bufs.Recycle(id) // at once: the buffers are every connection's
		for i := start; i < len(st.buffer); i++ {
			st.buffer[i] = rot13.Char(st.buffer[i])
			if st.buffer[i] == '\n' {
				st.writeUpto = i + 1
			}
		}
		// Unlike the book, which keeps MAX_LINE bytes of a longer line and
		// drops the rest: a line that fills MAX_LINE is sent as it is.
		if len(st.buffer)-st.writeUpto >= rot13.MaxLine {
			st.writeUpto = len(st.buffer)
		}
	case c.Res == 0:
		// Unlike the book, which closes at once on the end of the stream:
		// the answers still waiting, and the unterminated last line, go
		// out first, and then the connection closes.
		trace.Printf("complete recv fd %d: end of stream", fd)
		st.ended = true
		st.writeUpto = len(st.buffer)
	case err == unix.ENOBUFS:
		// The ring ran dry, and the recv ended, its data waiting in the
		// socket. By the time flush's new recv reaches the kernel, the
		// buffers are back: each went back as its CQE was handled.
		trace.Printf("complete recv fd %d: no buffer left", fd)
	case err == unix.ECANCELED:
		trace.Printf("complete recv fd %d: cancelled", fd)
	default: // a reset, or worse: no answer, and the connection closes
		trace.Printf("complete recv fd %d: %v", fd, err)
		freeFdState(fd, st)
		return
	}
	flush(fd, st)
}

// onSend is the book's do_write, turned around: do_write runs when fd is
// writable, and sends; onSend runs when the kernel has sent, and is told
// how much.
func onSend(fd int, st *fdState, c uring.CQE) {
	st.sending = nil                // the kernel is done with those bytes
	if err := c.Err(); err != nil { // the client is gone, or freeFdState cancelled it
		trace.Printf("complete send fd %d: %v", fd, err)
		freeFdState(fd, st)
		return
	}
	trace.Printf("complete send fd %d: %d", fd, c.Res)
	st.nWritten += int(c.Res)
	if st.nWritten == len(st.buffer) {
		// Unlike the book, whose do_write sets buffer_used = 1 here, a
		// byte of the buffer never used again: all three start over, and
		// the buffer goes (see allocFdState).
		st.buffer, st.nWritten, st.writeUpto = nil, 0, 0
	} else {
		// Unlike the book, whose buffer starts over only once everything
		// in it has been sent: what is still to send moves to the front.
		// Only here, with no send in flight: the kernel reads those bytes.
		n := copy(st.buffer, st.buffer[st.nWritten:])
		st.buffer, st.writeUpto, st.nWritten = st.buffer[:n], st.writeUpto-st.nWritten, 0
	}
	flush(fd, st)
}

// flush starts a send of what fd's state has ready, unless one is in
// flight, and decides what comes next: receiving, or closing.
//
// Unlike the book's C server, which a send to a client that has gone can
// kill with SIGPIPE (and every connection with it): with MSG_NOSIGNAL the
// send fails with EPIPE, and that connection alone closes.
func flush(fd int, st *fdState) {
	if st.closing {
		freeFdState(fd, st)
		return
	}
	// Unlike the book's do_write, which sends until EAGAIN: one send at a
	// time. The kernel sends on its own, until the socket has taken what
	// it can; a second send beside it could put bytes out of order.
	if st.sending == nil && st.writeUpto > st.nWritten {
		st.sending = st.buffer[st.nWritten:st.writeUpto]
		trace.Printf("submit send fd %d: %d bytes", fd, len(st.sending))
		getSQE(opSend, fd).PrepSend(fd, st.sending, unix.MSG_NOSIGNAL)
	}
	if st.ended && st.sending == nil { // everything is sent
		freeFdState(fd, st)
		return
	}
	// Unlike 04, whose reads wait until it asks for them: a multishot recv
	// receives on its own. Past maxPending waiting to be sent, it is
	// cancelled (the kernel's buffers then fill, and the client waits),
	// and armed again once the client has read enough.
	pending := len(st.buffer) - st.nWritten
	switch {
	case st.receiving && !st.cancelled && pending > maxPending:
		cancel(opRecv, fd, st)
	case !st.receiving && !st.ended && pending <= maxPending:
		trace.Printf("submit recv (multishot) on fd %d", fd)
		getSQE(opRecv, fd).PrepRecvMultishot(fd, bufs.Group())
		st.receiving = true
	}
}

// cancel asks the kernel to stop fd's recv or send: it completes with
// ECANCELED, unless it was finishing anyway.
func cancel(op, fd int, st *fdState) {
	what := "send"
	if op == opRecv {
		what, st.cancelled = "recv", true
	}
	trace.Printf("submit cancel %s fd %d", what, fd)
	getSQE(opCancel, fd).PrepCancel(userData(op, fd))
}

// warn logs what needs the operator's attention, at most once a second.
var warn evutil.Throttle

// onAccept is the book's do_accept, turned around: do_accept runs when the
// listener is readable, and accepts; onAccept runs when the kernel has
// accepted, and is handed the new descriptor. It says how long to wait
// before accepting again: a while, if the descriptors ran out.
func onAccept(c uring.CQE) (pause time.Duration) {
	if err := c.Err(); err != nil {
		trace.Printf("complete accept: %v", err)
		// Unlike the book, which prints the error and accepts again at
		// once: out of descriptors, the client stays queued, and an accept
		// at once would fail at once, again and again, printing.
		return warn.AcceptPause(err)
	}
	fd := int(c.Res)
	trace.Printf("complete accept: fd %d from %v", fd, peer(fd))
	flush(fd, allocFdState(fd)) // which arms its recv
	return 0
}

// accept submits an accept on the listener, for the next client.
//
// Unlike a multishot accept, one SQE for every client: the kernel reads
// the limit on descriptors (RLIMIT_NOFILE) when it takes the SQE
// (io_uring/net.c, io_accept_prep), and a multishot accept would go on
// past a lower limit set since (prlimit(1)). An accept per client reads
// it afresh, and goes to the kernel with that client's first recv.
func accept(listener int) {
	trace.Printf("submit accept on fd %d", listener)
	// No accept4 flags: the kernel waits, not us, so no SOCK_NONBLOCK; and
	// this program starts no other, so no SOCK_CLOEXEC.
	getSQE(opAccept, listener).PrepAccept(listener, 0)
}

// peer is a descriptor that -trace prints as the client's address: an
// accept's CQE has the descriptor alone. The trace asks only if it prints.
type peer int

func (fd peer) String() string {
	sa, err := unix.Getpeername(int(fd))
	if err != nil {
		return err.Error()
	}
	return evutil.SockaddrString(sa)
}

// The operations. An SQE's user_data, which its CQEs hand back, is its
// operation in the top 32 bits and the descriptor it works on below.
const (
	opAccept = iota + 1 // an accept on the listener
	opPause             // a timeout: accept again after a pause
	opRecv              // a multishot recv on a connection
	opSend              // a send on a connection
	opCancel            // a cancel of a connection's recv or send
	opSignal            // a read of the pipe that brings SIGINT and SIGTERM
)

// userData is the user_data of operation op on fd.
func userData(op, fd int) uint64 {
	return uint64(op)<<32 | uint64(fd)
}

// The ring, and the buffers it lends the kernel for every connection's
// recvs: bufCount of MAX_LINE bytes, what 04 reads at most at once. Each
// comes back as soon as its bytes are copied, in the same turn of the
// loop. With fewer than the chunks that arrive between two turns, a recv
// ends with ENOBUFS, its data waiting in the socket, and is armed again.
// With more, a client past maxPending gets more in before its recv's
// cancel lands: what the kernel received into the ring must be kept. 64
// (1 MiB) bound that to 1 MiB; 256 let a client's answers reach 5 MiB.
var (
	ring *uring.Ring
	bufs *uring.BufRing
)

const (
	entries    = 1024    // SQEs in the ring, and twice as many CQEs
	bufCount   = 64      // provided buffers
	maxPending = 1 << 20 // the contract's bound on a client's answers waiting to be sent
)

// queued counts the SQEs filled since the last submit, for -trace.
var queued int

// getSQE returns a free SQE for op on fd, with its user_data. When the SQ
// ring is full, it submits what is there first.
func getSQE(op, fd int) *uring.SQE {
	sqe := ring.GetSQE()
	for sqe == nil {
		trace.Printf("enter: submit %d, wait for 0", queued)
		if _, err := ring.Submit(); err != nil {
			log.Fatal(err)
		}
		queued = 0
		sqe = ring.GetSQE()
	}
	queued++
	sqe.SetData(userData(op, fd))
	return sqe
}

var signalByte [1]byte // the buffer of the read that brings a signal: on the heap (uring.SQE.PrepRead)

// run listens, and runs the loop.
func run(listenAddr string) {
	// Unlike 04's base, which falls back from epoll to poll to select:
	// io_uring is the lesson. Where it is missing (not Linux, an older
	// kernel, io_uring_disabled, a seccomp profile), one line says why.
	if err := uring.Available(); err != nil {
		log.Fatal(err)
	}
	var err error
	// This goroutine keeps its thread, and the ring is that thread's
	// alone: the kernel then finishes the operations when the loop waits,
	// rather than interrupting it for each (uring.NewLocked).
	runtime.LockOSThread()
	if ring, err = uring.NewLocked(entries); err != nil {
		log.Fatal(err)
	}
	if bufs, err = ring.RegisterBufRing(0, bufCount, rot13.MaxLine); err != nil {
		log.Fatal(err)
	}
	sin, domain, err := evutil.ParseSockaddrPort(listenAddr) // the book's sin
	if err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "", err))
	}
	// Unlike 04, the listener stays blocking: nothing here calls accept;
	// the kernel does, when a client comes.
	listener, err := unix.Socket(domain, unix.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "socket", err))
	}
	// Unlike the book, which sets SO_REUSEADDR only on Windows: on Unix it
	// lets a server that was just stopped bind its port again while its
	// old connections wait out TIME_WAIT.
	if err := unix.SetsockoptInt(listener, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "setsockopt", err))
	}
	if err := unix.Bind(listener, sin); err != nil {
		// Unlike the book, whose run returns when bind fails, and whose
		// main then exits 0: one line, and exit status 1.
		log.Fatal(evutil.ListenError(listenAddr, "bind", err))
	}
	// Unlike the book's backlog of 16: when a thousand clients connect at
	// once, a short queue makes the kernel drop their handshakes, and each
	// dropped client waits a second or more to try again.
	if err := unix.Listen(listener, unix.SOMAXCONN); err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "listen", err))
	}
	addr, err := evutil.LocalAddr(listener)
	if err != nil {
		log.Fatal(err)
	}

	// Unlike the book, killed by SIGINT or SIGTERM: a signal is one more
	// completion. Go's os/signal catches it, a goroutine writes a byte to
	// a pipe, and the ring's read of the pipe completes (libevent's
	// signal.c uses a socketpair so, pkg/event a pipe). The loop ends, and
	// with it the program.
	var pipe [2]int
	if err := unix.Pipe(pipe[:]); err != nil {
		log.Fatal(os.NewSyscallError("pipe", err))
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, unix.SIGINT, unix.SIGTERM)
	go func() {
		for range signals {
			unix.Write(pipe[1], []byte{1}) // fails only when the pipe is full: the loop wakes anyway
		}
	}()
	trace.Printf("submit read on fd %d (signals)", pipe[0])
	getSQE(opSignal, pipe[0]).PrepRead(pipe[0], signalByte[:])
	accept(listener)

	log.Printf("listening on %s", addr)
	cqes := make([]uring.CQE, 2*entries) // as many as the CQ ring holds: each reap empties it
	for {
		trace.Printf("enter: submit %d, wait for 1", queued)
		// Another signal that lands while the kernel waits (SIGURG from
		// Go's runtime, SIGWINCH from a terminal) cuts the wait short with
		// EINTR, and SubmitAndWait waits again.
		if _, err := ring.SubmitAndWait(1); err != nil {
			log.Fatal(err)
		}
		queued = 0
		for _, c := range cqes[:ring.ReapCQEs(cqes)] {
			if complete(c) {
				// Unlike 04, whose sockets the kernel closes as the program
				// exits: an operation in flight (the accept, each recv) holds
				// its socket open until the kernel has torn the ring down,
				// after the program has gone. Shut down now, the listener
				// refuses clients, and each client reads the end of stream.
				unix.Shutdown(listener, unix.SHUT_RDWR)
				for fd := range conns {
					unix.Shutdown(fd, unix.SHUT_RDWR)
				}
				return
			}
		}
	}
}

// complete hands a completion to the function for its operation, and
// reports whether it says to stop.
func complete(c uring.CQE) (stop bool) {
	op, fd := int(c.UserData>>32), int(uint32(c.UserData))
	switch op {
	case opAccept:
		if pause := onAccept(c); pause > 0 {
			trace.Printf("submit timeout %v (accept pause)", pause)
			ring.PrepTimeout(getSQE(opPause, fd), pause)
		} else {
			accept(fd)
		}
	case opPause:
		trace.Printf("complete timeout: accept again")
		accept(fd)
	case opRecv:
		onRecv(fd, conns[fd], c)
	case opSend:
		onSend(fd, conns[fd], c)
	case opCancel:
		trace.Printf("complete cancel fd %d: res %d", fd, c.Res) // 0, or -ENOENT if it had ended
	case opSignal:
		trace.Printf("complete read fd %d: a signal: stopping", fd)
		return true
	}
	return false
}

func main() {
	flag.CommandLine.Init("07-completion-server", flag.ExitOnError)
	listenAddr := flag.String("listen", evutil.DefaultListen, "listen on `host:port` (port 0 picks a free one)")
	traceOn := flag.Bool("trace", false, "narrate each submission, wait, completion and close on stderr")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("07-completion-server: ")
	if *traceOn {
		trace.SetOutput(os.Stderr)
	}
	run(*listenAddr)
}
