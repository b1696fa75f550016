// Command 04-reactor-server is the book's "A low-level ROT13 server with
// Libevent" (A tiny introduction to asynchronous IO) in Go, on our own
// libevent, pkg/event. The fd_sets of 03 are gone: each connection has a
// read event and a write event, the base watches them with the most
// efficient interface the system has (epoll, kqueue, poll or select), and
// calls doRead or doWrite when one is ready. The loop is the library's.
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
// -trace is on. The lines on the way of every line served test tracing
// first: a call to trace.Printf allocates its arguments even when it
// writes nowhere (what libevent avoids by compiling event_debug out).
var (
	trace   = log.New(io.Discard, "", 0)
	tracing bool
)

// fdState is the book's struct fd_state: a connection's stream (as in 03)
// and its two events.
type fdState struct {
	rot13.Stream
	readEvent, writeEvent *event.Event
}

// allocFdState is the book's alloc_fd_state: the events for fd, not yet
// pending.
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
	unix.Close(fd)
	trace.Printf("close fd %d", fd)
}

// doRead runs when fd is readable: it reads once, and answers.
//
// Unlike the book, whose do_read reads until recv says EAGAIN: as in 03,
// one read per readiness keeps a client that sends faster than the server
// reads from having the loop to itself; the backend reports the socket
// again if more is waiting.
func doRead(fd int, st *fdState) {
	n, err := evutil.IgnoringEINTRIO(unix.Read, fd, st.Space())
	switch {
	case err == unix.EAGAIN:
		return
	case err != nil:
		freeFdState(fd, st)
		return
	case n == 0:
		// Unlike the book, which frees the state at once on the end of the
		// stream: the answers still waiting, and the last line, go first.
		trace.Printf("read 0 from fd %d: end of stream", fd)
		st.End()
	default:
		if tracing {
			trace.Printf("read %d from fd %d", n, fd)
		}
		st.Received(n)
	}
	// Unlike the book, which adds the write event for every line and
	// deletes it once the line is sent (two epoll_ctl calls per reply):
	// write now, and wait for the socket to be writable only if it is full.
	flush(fd, st)
}

// doWrite runs when fd is writable again, after a write found it full.
func doWrite(fd int, st *fdState) {
	flush(fd, st)
}

// flush sends what fd's stream has ready, as much as the socket takes, and
// sets the events for what comes next.
func flush(fd int, st *fdState) {
	for len(st.Ready()) > 0 {
		n, err := evutil.IgnoringEINTRIO(unix.Write, fd, st.Ready())
		if err == unix.EAGAIN {
			break // full: wait until it is writable
		}
		if err != nil {
			freeFdState(fd, st)
			return
		}
		if tracing {
			trace.Printf("write %d to fd %d", n, fd)
		}
		st.Sent(n)
	}
	// Unlike the book, whose do_write sets buffer_used = 1 after a full
	// write (a typo for 0, which makes it send a stray byte with the next
	// line), the stream keeps its own accounts.
	if st.Done() {
		freeFdState(fd, st)
		return
	}
	if len(st.Ready()) > 0 {
		st.writeEvent.Add(0)
	} else {
		st.writeEvent.Del()
	}
	// Unlike the book, which reads on whatever waits unsent: no reading
	// while 1 MiB of answers wait, so that the kernel makes the client wait.
	if st.WantsRead() {
		st.readEvent.Add(0)
	} else {
		st.readEvent.Del()
	}
}

// doAccept accepts the connections waiting on the listener, and says how
// long to stop listening: a while, if the descriptors ran out.
func doAccept(listener int, base *event.Base, warn *evutil.Throttle) (pause time.Duration) {
	for range 64 { // as in 03: a bounded batch
		fd, peer, err := evutil.Accept(listener)
		switch err {
		case nil:
		case unix.EAGAIN:
			// Unlike the book ("XXXX eagain??"): another pass found the
			// connection gone, or took it. Nothing to do.
			return 0
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			// Unlike the book, which prints the error, and is called again
			// at once, the listener being readable still: stop listening
			// for a while.
			warn.Printf("accept: %v; pausing", err)
			return 100 * time.Millisecond
		default:
			warn.Printf("accept: %v", err)
			return 0
		}
		if err := evutil.MakeNonblocking(fd); err != nil {
			unix.Close(fd)
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
		if tracing {
			trace.Printf("accept fd=%d from %s", fd, peer)
		}
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
	listener, err := evutil.Listen(listenAddr)
	if err != nil {
		// Unlike the book, whose run returns when bind fails, and whose
		// main then exits 0: one line, and exit status 1.
		log.Fatal(err)
	}
	addr, err := evutil.LocalAddr(listener)
	if err == nil {
		err = evutil.MakeNonblocking(listener)
	}
	if err != nil {
		log.Fatal(err)
	}
	evutil.StartRuntimePoller() // before descriptors can run out (see there)

	var warn evutil.Throttle // out of descriptors: a line a second at most
	var listenerEvent *event.Event
	resume := event.NewTimer(base, func(int, event.Events) { listenerEvent.Add(0) })
	listenerEvent = event.New(base, listener, event.Read|event.Persist, func(fd int, _ event.Events) {
		if pause := doAccept(fd, base, &warn); pause > 0 {
			listenerEvent.Del()
			resume.Add(pause)
		}
	})
	// Unlike the book, which never checks that its listener event was
	// added ("/*XXX check it */").
	if err := listenerEvent.Add(0); err != nil {
		log.Fatal(err)
	}
	// SIGINT and SIGTERM are events too: the loop ends, and with it the
	// program; the kernel closes every connection.
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
	if tracing = *traceOn; tracing {
		trace.SetOutput(os.Stderr)
	}
	run(*listenAddr)
}
