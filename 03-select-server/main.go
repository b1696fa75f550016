// Command 03-select-server is the book's "select()-based ROT13 server" (A
// tiny introduction to asynchronous IO) in Go: one process, one thread of
// control, and every socket nonblocking. Each turn of its loop asks the
// kernel, with select(2), which sockets are ready, then reads from and
// writes to those alone, so that a client that waits holds up nobody, and
// costs nothing while it waits.
//
// The book's program, function for function:
//
//	rot13_char         rot13.Char (pkg/rot13, every stage's)
//	struct fd_state    fdState
//	alloc_fd_state     allocFdState
//	free_fd_state      freeFdState
//	make_nonblocking   makeNonblocking
//	do_read            doRead
//	do_write           doWrite
//	run                run, and doAccept (the book accepts inside run)
//	main               main
//
//	go run ./03-select-server -trace     # then, elsewhere: nc 127.0.0.1 40713
package main

import (
	"flag"
	"io"
	"log"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/evutil"
	"tinyasync/pkg/rot13"
)

// trace narrates each select, accept, read, write and close when -trace is on.
var trace = log.New(io.Discard, "", 0)

// fdState is the book's struct fd_state: what the server holds for one
// connection. Bytes come in at bufferUsed, already ROT13'd; those before
// writeUpto end with a newline, and may be sent; nWritten of them have
// been. The book's writing flag is writeUpto > nWritten.
type fdState struct {
	buffer     []byte // MAX_LINE bytes, as the book's; nil while it would be empty
	bufferUsed int
	nWritten   int
	writeUpto  int

	// Unlike the book, which closes the connection at the end of the
	// stream: the client has finished sending, and the connection closes
	// once everything is sent.
	ended bool
}

// allocFdState is the book's alloc_fd_state. Unlike the book's, the state
// comes without its buffer: doRead takes one from a pool when bytes
// arrive, and doWrite gives it back once they are all sent, so that an
// idle connection costs a few dozen bytes.
func allocFdState() *fdState {
	return &fdState{}
}

// freeFdState is the book's free_fd_state.
func freeFdState(st *fdState) {
	if st.buffer != nil {
		rot13.FreeBuffer(st.buffer)
	}
}

// makeNonblocking is the book's make_nonblocking: from now on, a read,
// write or accept on fd that cannot make progress fails with EAGAIN
// instead of waiting. Unlike the book's, which sets O_NONBLOCK alone and so
// clears the descriptor's other flags, it adds O_NONBLOCK to them.
func makeNonblocking(fd int) error {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags|unix.O_NONBLOCK)
	return os.NewSyscallError("fcntl", err)
}

// doRead reads once from fd, which select said is readable, and turns
// what it read into ROT13, a byte at a time, as the book does: each newline
// makes the line before it ready to send.
//
// Unlike the book, whose do_read reads until recv says EAGAIN: a client
// that sends faster than the server reads would keep it in that loop, with
// every other client waiting. One read per turn is fair, and select
// reports the socket again on the next turn if more is waiting.
func doRead(fd int, st *fdState) error {
	if st.buffer == nil {
		st.buffer = rot13.NewBuffer()
	}
	// Unlike the book, whose buffer starts over only once everything in
	// it has been sent (pipelined lines fill it, and the rest is lost):
	// what is still to send moves to the front, to make room.
	if st.nWritten > 0 {
		n := copy(st.buffer, st.buffer[st.nWritten:st.bufferUsed])
		st.bufferUsed, st.writeUpto, st.nWritten = n, st.writeUpto-st.nWritten, 0
	}
	n, err := unix.Read(fd, st.buffer[st.bufferUsed:])
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		// Nothing after all, or a signal: select says so again.
		if st.bufferUsed == 0 { // holding nothing, it holds no buffer
			rot13.FreeBuffer(st.buffer)
			st.buffer = nil
		}
		return nil
	case err != nil:
		return err
	case n == 0:
		// Unlike the book, which closes at once on the end of the stream:
		// the answers still waiting, and the unterminated last line, go
		// out first, and then the connection closes.
		trace.Printf("read 0 from fd %d: end of stream", fd)
		st.ended = true
		st.writeUpto = st.bufferUsed
		return nil
	}
	trace.Printf("read %d from fd %d", n, fd)
	for i := st.bufferUsed; i < st.bufferUsed+n; i++ {
		st.buffer[i] = rot13.Char(st.buffer[i])
		if st.buffer[i] == '\n' {
			st.writeUpto = i + 1
		}
	}
	st.bufferUsed += n
	// Unlike the book, which keeps MAX_LINE bytes of a longer line and
	// drops the rest: a line that fills the buffer is sent as it is.
	if st.bufferUsed-st.writeUpto == len(st.buffer) {
		st.writeUpto = st.bufferUsed
	}
	return nil
}

// doWrite sends what fd's state has ready, as much as the socket takes.
//
// Unlike the book's do_write, which sends until EAGAIN: once the socket
// took less than it was given, it is full, and a second send would only
// say so; select reports it again when it has room. Unlike the book's C
// server, which a send to a client that has gone can kill with SIGPIPE
// (and every connection with it): Go's runtime catches SIGPIPE, so the
// send fails with EPIPE, and that connection alone closes.
func doWrite(fd int, st *fdState) error {
	n, err := unix.Write(fd, st.buffer[st.nWritten:st.writeUpto])
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return nil
	case err != nil:
		return err
	}
	trace.Printf("write %d to fd %d", n, fd)
	st.nWritten += n
	if st.nWritten == st.bufferUsed {
		st.nWritten, st.writeUpto, st.bufferUsed = 0, 0, 0
		rot13.FreeBuffer(st.buffer) // see allocFdState
		st.buffer = nil
	}
	return nil
}

// warn logs what needs the operator's attention, at most once a second.
var warn evutil.Throttle

// doAccept accepts the connections waiting on the listener, and says how
// long to stop watching it: a while, if the descriptors ran out.
func doAccept(listener int, state []*fdState) (pause time.Duration) {
	// Unlike the book, which accepts one connection per turn: when many
	// arrive at once, a turn (and a select over every descriptor) for each
	// is slow. A bounded batch keeps the others served meanwhile.
	for range 64 {
		fd, sa, err := unix.Accept(listener)
		if err == unix.EAGAIN {
			return 0 // nobody else is waiting
		}
		if err != nil {
			// Unlike the book, which prints the error and selects again:
			// out of descriptors, the connection stays queued, the
			// listener stays readable, and the loop would spin, printing.
			if pause := warn.AcceptPause(err); pause > 0 {
				return pause
			}
			continue
		}
		// Unlike the book, which closes fd > FD_SETSIZE, one too late:
		// FD_SET on descriptor FD_SETSIZE writes past the end of the set
		// (and unix.FdSet.Set panics). A descriptor select cannot watch is
		// closed at once, so that its client is told, not left waiting.
		if fd >= unix.FD_SETSIZE {
			unix.Close(fd) // its error tells nothing to act on: the descriptor is gone either way (close(2))
			warn.Printf("accept: fd %d is past FD_SETSIZE (%d): closed", fd, unix.FD_SETSIZE)
			continue
		}
		if err := makeNonblocking(fd); err != nil {
			unix.Close(fd)
			warn.Printf("accept: %v", err)
			continue
		}
		trace.Printf("accept fd=%d from %s", fd, evutil.SockaddrString(sa))
		state[fd] = allocFdState()
	}
	return 0
}

// run listens, then serves every connection from one loop around select.
func run(listenAddr string) {
	sin, domain, err := evutil.ParseSockaddrPort(listenAddr) // the book's sin
	if err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "", err))
	}
	listener, err := unix.Socket(domain, unix.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "socket", err))
	}
	if err := makeNonblocking(listener); err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "", err))
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
	log.Printf("listening on %s", addr)

	state := make([]*fdState, unix.FD_SETSIZE) // indexed by descriptor, like the book's
	var readset, writeset unix.FdSet
	var acceptAgain time.Time
	for {
		// The sets are built again on every turn: select overwrites them
		// with the descriptors that are ready.
		readset.Zero()
		writeset.Zero()
		maxfd, watched := -1, 0
		var timeout *unix.Timeval
		if wait := time.Until(acceptAgain); wait > 0 {
			tv := unix.NsecToTimeval(wait.Nanoseconds())
			timeout = &tv // wake up to watch the listener again
		} else {
			readset.Set(listener)
			maxfd, watched = listener, 1
		}
		for fd, st := range state {
			if st == nil {
				continue
			}
			// Unlike the book, which reads on when the buffer is full, and
			// drops what does not fit: no reading while the buffer holds
			// nothing but bytes still to send (the kernel then makes the
			// client wait), nor after the end of the stream.
			if !st.ended && (st.buffer == nil || st.bufferUsed-st.nWritten < len(st.buffer)) {
				readset.Set(fd)
			}
			if st.writeUpto > st.nWritten { // the book's writing
				writeset.Set(fd)
			}
			maxfd = max(maxfd, fd)
			watched++
		}

		n, err := unix.Select(maxfd+1, &readset, &writeset, nil, timeout)
		if err == unix.EINTR {
			// Unlike the book, which gives up: a signal that arrives while
			// select waits interrupts it (select never restarts, see
			// signal(7)), and signals can come unasked: SIGWINCH when a
			// terminal's window changes, a profiler's SIGPROF, a SIGURG
			// from another program. Build the sets again and wait again.
			trace.Printf("select: interrupted by a signal (EINTR); again")
			continue
		}
		if err != nil {
			log.Fatal(os.NewSyscallError("select", err))
		}
		trace.Printf("select: %d of %d ready (max fd %d)", n, watched, maxfd)

		if readset.IsSet(listener) {
			if pause := doAccept(listener, state); pause > 0 {
				acceptAgain = time.Now().Add(pause)
			}
		}
		for fd := 0; fd <= maxfd; fd++ {
			st := state[fd]
			if fd == listener || st == nil {
				continue
			}
			var err error
			if readset.IsSet(fd) {
				err = doRead(fd, st)
			}
			if err == nil && writeset.IsSet(fd) {
				err = doWrite(fd, st)
			}
			if err != nil || st.ended && st.nWritten == st.bufferUsed {
				trace.Printf("close fd %d", fd)
				freeFdState(st)
				state[fd] = nil
				unix.Close(fd)
			}
		}
	}
}

func main() {
	flag.CommandLine.Init("03-select-server", flag.ExitOnError)
	listenAddr := flag.String("listen", evutil.DefaultListen, "listen on `host:port` (port 0 picks a free one)")
	traceOn := flag.Bool("trace", false, "narrate each select, accept, read, write and close on stderr")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("03-select-server: ")
	if *traceOn {
		trace.SetOutput(os.Stderr)
	}
	// Unlike the book, killed by SIGINT or SIGTERM: exit with status 0.
	// (04 brings signals into its event loop.)
	evutil.ExitOnSignal()
	run(*listenAddr)
}
