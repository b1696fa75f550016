// Command busy-poll is the book's second Bad Example, "busy-polling all
// sockets" (A tiny introduction to asynchronous IO, just before "Example:
// Using select"): every socket nonblocking, and one loop that asks every
// socket, again and again, whether it has anything.
//
// It is 03-select-server without select: the same fdState, doRead, doWrite
// and doAccept (diff the two files), and a run that calls them all on every
// turn instead of asking the kernel which sockets are ready. It works: no
// client waits for another, as with the blocking loop. But when nobody has
// anything to say, the loop goes on asking, as fast as the CPU allows, and
// burns a whole core doing nothing; with many clients, it makes a system
// call for each of them, whether it has data or not. Run it with -trace to
// count the calls that found nothing.
//
//	go run ./03-select-server/busy-poll -trace
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

// trace narrates accepts, reads, writes and closes when -trace is on, and
// once a second, how many calls found nothing.
var trace = log.New(io.Discard, "", 0)

// emptyReads and emptyAccepts count the calls that found nothing.
var emptyReads, emptyAccepts int

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

// doRead reads once from fd, if it has anything, and turns
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
		emptyReads++            // the kernel had nothing for us
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
// say so; the next turn tries again. Unlike the book's C
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
// long to stop asking it: a while, if the descriptors ran out.
func doAccept(listener int, state map[int]*fdState) (pause time.Duration) {
	// Unlike the book, which accepts one connection per turn: when many
	// arrive at once, a turn over every descriptor for each is slow. A
	// bounded batch keeps the others served meanwhile.
	for range 64 {
		fd, sa, err := unix.Accept(listener)
		if err == unix.EAGAIN {
			emptyAccepts++
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
		if err := makeNonblocking(fd); err != nil {
			unix.Close(fd) // its error tells nothing to act on: the descriptor is gone either way (close(2))
			warn.Printf("accept: %v", err)
			continue
		}
		trace.Printf("accept fd=%d from %s", fd, evutil.SockaddrString(sa))
		state[fd] = allocFdState()
	}
	return 0
}

// run listens, then asks every socket for work, again and again.
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

	state := map[int]*fdState{} // by descriptor: no select, so no FD_SETSIZE
	var acceptAgain time.Time
	report := time.Now().Add(time.Second)
	for {
		// Ask the listener for new clients.
		if time.Now().After(acceptAgain) {
			if pause := doAccept(listener, state); pause > 0 {
				acceptAgain = time.Now().Add(pause)
			}
		}
		// Ask every client for data, and give each what it has waiting.
		for fd, st := range state {
			var err error
			if !st.ended && (st.buffer == nil || st.bufferUsed-st.nWritten < len(st.buffer)) {
				err = doRead(fd, st)
			}
			if err == nil && st.writeUpto > st.nWritten {
				err = doWrite(fd, st)
			}
			if err != nil || st.ended && st.nWritten == st.bufferUsed {
				trace.Printf("close fd %d", fd)
				freeFdState(st)
				delete(state, fd)
				unix.Close(fd)
			}
		}
		if now := time.Now(); now.After(report) {
			trace.Printf("in the last second, %d recv and %d accept calls found nothing", emptyReads, emptyAccepts)
			emptyReads, emptyAccepts, report = 0, 0, now.Add(time.Second)
		}
	}
}

func main() {
	flag.CommandLine.Init("busy-poll", flag.ExitOnError)
	listenAddr := flag.String("listen", evutil.DefaultListen, "listen on `host:port` (port 0 picks a free one)")
	traceOn := flag.Bool("trace", false, "narrate accepts, reads, writes and closes, and count the calls that found nothing")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("busy-poll: ")
	if *traceOn {
		trace.SetOutput(os.Stderr)
	}
	// Unlike the book, killed by SIGINT or SIGTERM: exit with status 0.
	evutil.ExitOnSignal()
	run(*listenAddr)
}
