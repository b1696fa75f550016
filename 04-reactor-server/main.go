// Command 04-reactor-server is the book's "A low-level ROT13 server with
// Libevent" (A tiny introduction to asynchronous IO) in Go, on our own
// libevent, pkg/event. The fd_sets of 03 are gone: each connection has a
// read event and a write event, the base watches them with the most
// efficient interface the system has (epoll, kqueue, poll or select), and
// calls doRead or doWrite when one is ready. The loop is the library's.
//
// The book's program, function for function:
//
//	rot13_char         rot13.Char (pkg/rot13, every stage's)
//	struct fd_state    fdState
//	alloc_fd_state     allocFdState
//	free_fd_state      freeFdState
//	do_read            doRead
//	do_write           doWrite (and flush, which both call)
//	do_accept          doAccept
//	run                run
//	main               main
//
//	go run ./04-reactor-server -trace                        # on epoll, on Linux
//	EVENT_NOEPOLL=1 EVENT_SHOW_METHOD=1 go run ./04-reactor-server   # on poll
package main

import (
	"flag"
	"io"
	"log"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/event"
	"tinyasync/pkg/evutil"
	"tinyasync/pkg/rot13"
)

// trace narrates each wait, callback, accept, read, write and close when
// -trace is on.
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

	readEvent, writeEvent *event.Event
}

// allocFdState is the book's alloc_fd_state: the events for fd, not yet
// pending. Unlike the book's, the state comes without its buffer: doRead
// takes one from a pool when bytes arrive, and flush gives it back once
// they are all sent, so that an idle connection costs a few dozen bytes.
func allocFdState(base *event.Base, fd int) *fdState {
	st := &fdState{}
	st.readEvent = event.New(base, fd, event.Read|event.Persist, func(fd int, _ event.Events) { doRead(fd, st) })
	st.writeEvent = event.New(base, fd, event.Write|event.Persist, func(fd int, _ event.Events) { doWrite(fd, st) })
	return st
}

// freeFdState is the book's free_fd_state. Unlike the book's, it closes the
// descriptor: the book frees the state and leaks the socket, so the client
// never learns that the server is done with it.
func freeFdState(fd int, st *fdState) {
	st.readEvent.Free()
	st.writeEvent.Free()
	if st.buffer != nil {
		rot13.FreeBuffer(st.buffer)
	}
	trace.Printf("close fd %d", fd)
	unix.Close(fd) // its error tells nothing to act on: the descriptor is gone either way (close(2))
}

// doRead reads once from fd, which the base said is readable, and turns
// what it read into ROT13, a byte at a time, as the book does: each newline
// makes the line before it ready to send.
//
// Unlike the book, whose do_read reads until recv says EAGAIN: a client
// that sends faster than the server reads would keep it in that loop, with
// every other client waiting. One read per turn is fair, and the base
// reports the socket again on the next turn if more is waiting.
func doRead(fd int, st *fdState) {
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
		// Nothing after all, or a signal: the base says so again.
		if st.bufferUsed == 0 { // holding nothing, it holds no buffer
			rot13.FreeBuffer(st.buffer)
			st.buffer = nil
		}
		return
	case err != nil:
		freeFdState(fd, st)
		return
	case n == 0:
		// Unlike the book, which closes at once on the end of the stream:
		// the answers still waiting, and the unterminated last line, go
		// out first, and then the connection closes.
		trace.Printf("read 0 from fd %d: end of stream", fd)
		st.ended = true
		st.writeUpto = st.bufferUsed
		flush(fd, st)
		return
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
	// Unlike the book, which adds the write event for every line and
	// deletes it once the line is sent (two epoll_ctl calls per answer):
	// write now, and wait for the socket to be writable only if it is full.
	flush(fd, st)
}

// doWrite is the book's do_write: it runs when fd is writable again, after
// a write found it full.
func doWrite(fd int, st *fdState) {
	flush(fd, st)
}

// flush sends what fd's state has ready, as much as the socket takes, and
// sets the events for what comes next.
//
// Unlike the book's C server, which a send to a client that has gone can
// kill with SIGPIPE (and every connection with it): Go's runtime catches
// SIGPIPE, so the send fails with EPIPE, and that connection alone closes.
func flush(fd int, st *fdState) {
	// Unlike the book's do_write, which sends until EAGAIN: once the
	// socket took less than it was given, it is full, and a second send
	// would only say so; the write event says when it has room.
	if st.writeUpto > st.nWritten {
		n, err := unix.Write(fd, st.buffer[st.nWritten:st.writeUpto])
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
		case err != nil:
			freeFdState(fd, st)
			return
		default:
			trace.Printf("write %d to fd %d", n, fd)
			st.nWritten += n
		}
	}
	if st.nWritten == st.bufferUsed && st.buffer != nil {
		// Unlike the book, whose do_write sets buffer_used = 1 here, a
		// byte of the buffer never used again: all three start over.
		st.nWritten, st.writeUpto, st.bufferUsed = 0, 0, 0
		rot13.FreeBuffer(st.buffer) // see allocFdState
		st.buffer = nil
	}
	if st.ended && st.nWritten == st.bufferUsed {
		freeFdState(fd, st)
		return
	}
	// An error here is the backend's (an epoll_ctl that failed): the
	// connection is then past serving.
	var err error
	if st.writeUpto > st.nWritten {
		err = st.writeEvent.Add(0)
	} else {
		err = st.writeEvent.Del()
	}
	// Unlike the book, which reads on when the buffer is full, and drops
	// what does not fit: no reading while the buffer holds nothing but
	// bytes still to send (the kernel then makes the client wait), nor
	// after the end of the stream.
	if err == nil && !st.ended && (st.buffer == nil || st.bufferUsed-st.nWritten < len(st.buffer)) {
		err = st.readEvent.Add(0)
	} else if err == nil {
		err = st.readEvent.Del()
	}
	if err != nil {
		warn.Printf("fd %d: %v", fd, err)
		freeFdState(fd, st)
	}
}

// warn logs what needs the operator's attention, at most once a second.
var warn evutil.Throttle

// doAccept is the book's do_accept: it accepts the connections waiting on
// the listener, and says how long to stop listening: a while, if the
// descriptors ran out.
func doAccept(listener int, base *event.Base) (pause time.Duration) {
	// Unlike the book, which accepts one connection per readiness: when
	// many arrive at once, a turn of the loop for each is slow. A bounded
	// batch keeps the others served meanwhile.
	for range 64 {
		// Unlike the book's accept, whose sockaddr sits on the stack in C:
		// unix.Accept returns it as two heap objects per client, garbage
		// that a server of thousands of clients piles up; evutil.Accept
		// keeps it on the stack, and returns the address as a value.
		fd, peer, err := evutil.Accept(listener)
		if err == unix.EAGAIN {
			return 0 // nobody else is waiting
		}
		if err != nil {
			// Unlike the book, which prints the error and is called again
			// at once: out of descriptors, the connection stays queued, the
			// listener stays readable, and the loop would spin, printing.
			if pause := warn.AcceptPause(err); pause > 0 {
				return pause
			}
			continue
		}
		if err := evutil.MakeNonblocking(fd); err != nil {
			unix.Close(fd)
			warn.Printf("accept: %v", err)
			continue
		}
		// Unlike the book, which closes fd > FD_SETSIZE here, a cap that
		// means nothing to epoll (and is one too late for select): the cap
		// is the select backend's, which refuses a descriptor it cannot
		// watch. Its client is closed at once.
		st := allocFdState(base, fd)
		if err := st.readEvent.Add(0); err != nil {
			freeFdState(fd, st)
			warn.Printf("accept: %v: closed", err)
			continue
		}
		trace.Printf("accept fd=%d from %v", fd, peer)
	}
	return 0
}

// run listens, and hands everything to the event loop.
func run(listenAddr string) {
	base, err := event.NewBase()
	if err != nil {
		log.Fatal(err) // Unlike the book: "return; /*XXXerr*/"
	}
	base.SetTrace(trace)
	sin, domain, err := evutil.ParseSockaddrPort(listenAddr) // the book's sin
	if err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "", err))
	}
	listener, err := unix.Socket(domain, unix.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "socket", err))
	}
	if err := evutil.MakeNonblocking(listener); err != nil {
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

	// The listener's event, paused for a while when the descriptors ran
	// out, and added again by a timer.
	var listenerEvent *event.Event
	resume := event.NewTimer(base, func(int, event.Events) {
		if err := listenerEvent.Add(0); err != nil {
			log.Fatal(err)
		}
	})
	listenerEvent = event.New(base, listener, event.Read|event.Persist, func(fd int, _ event.Events) {
		if pause := doAccept(fd, base); pause > 0 {
			listenerEvent.Del() // fails only as the Add above would have
			if err := resume.Add(pause); err != nil {
				log.Fatal(err)
			}
		}
	})
	// Unlike the book, which never checks that its listener event was
	// added ("/*XXX check it */").
	if err := listenerEvent.Add(0); err != nil {
		log.Fatal(err)
	}
	// Unlike the book, killed by SIGINT or SIGTERM: those are events too.
	// The loop ends, and with it the program; the kernel closes every
	// connection.
	for _, sig := range []unix.Signal{unix.SIGINT, unix.SIGTERM} {
		stop := event.NewSignal(base, sig, func(int, event.Events) {
			trace.Printf("signal %v: stopping", sig)
			base.LoopBreak()
		})
		if err := stop.Add(0); err != nil {
			log.Fatal(err)
		}
	}

	log.Printf("listening on %s", addr)
	trace.Printf("method %s", base.Method())
	if err := base.Dispatch(); err != nil {
		log.Fatal(err)
	}
}

func main() {
	flag.CommandLine.Init("04-reactor-server", flag.ExitOnError)
	listenAddr := flag.String("listen", evutil.DefaultListen, "listen on `host:port` (port 0 picks a free one)")
	traceOn := flag.Bool("trace", false, "narrate each wait, callback, accept, read, write and close on stderr")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("04-reactor-server: ")
	if *traceOn {
		trace.SetOutput(os.Stderr)
	}
	run(*listenAddr)
}
