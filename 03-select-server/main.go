// Command 03-select-server is the book's "select()-based ROT13 server" (A
// tiny introduction to asynchronous IO) in Go: one process, one thread of
// control, and every socket nonblocking. Each pass of its loop asks the
// kernel, with select(2), which sockets are ready, then reads from and
// writes to those alone, so that a client that waits holds up nobody, and
// costs nothing while it waits.
//
//	go run ./03-select-server -trace     # then, elsewhere: nc 127.0.0.1 40713
package main

import (
	"flag"
	"io"
	"log"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/evutil"
	"tinyasync/pkg/rot13"
)

// trace narrates each select, accept, read, write and close when -trace is on.
var trace = log.New(io.Discard, "", 0)

// fdState is the book's struct fd_state: what the server holds for one
// connection. A rot13.Stream keeps the book's buffer, buffer_used,
// n_written and write_upto, with their bugs fixed; the book's writing flag
// is whether the stream has bytes ready.
type fdState struct {
	rot13.Stream
}

// doRead reads once from fd, which select said is readable.
//
// Unlike the book, which reads until recv says EAGAIN: a client that sends
// faster than the server reads would keep it in that loop, with every other
// client waiting. One read per pass is fair, and select reports the socket
// again on the next pass if more is waiting.
func doRead(fd int, st *fdState) error {
	n, err := evutil.IgnoringEINTRIO(unix.Read, fd, st.Space())
	switch {
	case err == unix.EAGAIN:
		return nil // spurious: select can report a socket that then has nothing
	case err != nil:
		return err
	case n == 0:
		// Unlike the book, which closes at once on the end of the stream:
		// the answers still waiting, and the unterminated last line, go
		// out first, and then the connection closes.
		trace.Printf("read 0 from fd %d: end of stream", fd)
		st.End()
		return nil
	}
	trace.Printf("read %d from fd %d", n, fd)
	st.Received(n)
	return nil
}

// doWrite sends what fd's stream has ready, as much as the socket takes.
//
// Unlike the book's C server, which a send to a client that has gone can
// kill with SIGPIPE (the signal's default action), and every connection
// with it: Go's runtime catches SIGPIPE, so the send fails with EPIPE, and
// that connection alone closes.
func doWrite(fd int, st *fdState) error {
	n, err := evutil.IgnoringEINTRIO(unix.Write, fd, st.Ready())
	if err == unix.EAGAIN {
		return nil
	}
	if err != nil {
		return err
	}
	trace.Printf("write %d to fd %d", n, fd)
	st.Sent(n)
	return nil
}

// doAccept accepts the connections waiting on the listener, and says how
// long to stop watching it: a while, if the descriptors ran out.
func doAccept(listener int, state []*fdState, warn *evutil.Throttle) (pause time.Duration) {
	// Unlike the book, which accepts one connection per pass: when many
	// arrive at once, a pass (and a select over every descriptor) for each
	// is slow. A bounded batch keeps the others served meanwhile.
	for range 64 {
		fd, peer, err := evutil.Accept(listener)
		switch err {
		case nil:
		case unix.EAGAIN:
			return 0
		case unix.EINTR, unix.ECONNABORTED: // a signal; a client that left
			continue
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			// Unlike the book, which prints the error and selects again: the
			// connection stays queued, so the listener stays readable and
			// the loop would spin, printing. Stop watching it for a while.
			warn.Printf("accept: %v; pausing", err)
			return 100 * time.Millisecond
		default:
			warn.Printf("accept: %v", err)
			return 0
		}
		// Unlike the book, which closes fd > FD_SETSIZE, one too late:
		// FD_SET on descriptor FD_SETSIZE writes past the end of the set
		// (and unix.FdSet.Set panics). A descriptor select cannot watch is
		// closed at once, so that its client is told, not left waiting.
		if fd >= unix.FD_SETSIZE {
			unix.Close(fd)
			warn.Printf("accept: fd %d is past FD_SETSIZE (%d): closed", fd, unix.FD_SETSIZE)
			continue
		}
		if err := evutil.MakeNonblocking(fd); err != nil {
			unix.Close(fd)
			warn.Printf("fcntl: %v", err)
			continue
		}
		trace.Printf("accept fd=%d from %s", fd, peer)
		state[fd] = &fdState{}
	}
	return 0
}

// run listens, then serves every connection from one loop around select.
func run(listenAddr string) {
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
	log.Printf("listening on %s", addr)

	state := make([]*fdState, unix.FD_SETSIZE) // indexed by descriptor, like the book's
	var readset, writeset unix.FdSet
	var warn evutil.Throttle // out of descriptors: a line a second at most
	var acceptAgain time.Time
	for {
		// The sets are rebuilt on every pass: select overwrites them with
		// the descriptors that are ready.
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
			// Unlike the book, which reads on while its buffer overflows:
			// no reading from a client whose answers pile up unread (the
			// kernel then makes the client wait), nor after its end.
			if st.WantsRead() {
				readset.Set(fd)
			}
			if len(st.Ready()) > 0 {
				writeset.Set(fd)
			}
			maxfd = max(maxfd, fd)
			watched++
		}

		n, err := unix.Select(maxfd+1, &readset, &writeset, nil, timeout)
		if err == unix.EINTR {
			// Unlike the book, which gives up: a signal that arrives while
			// select waits interrupts it (select never restarts, see
			// signal(7)). Signals come unasked: Go's runtime sends SIGURG
			// to preempt a goroutine, a terminal sends SIGWINCH when its
			// window changes. Build the sets again and wait again.
			trace.Printf("select: interrupted by a signal (EINTR); again")
			continue
		}
		if err != nil {
			log.Fatal(os.NewSyscallError("select", err))
		}
		trace.Printf("select: %d of %d ready (max fd %d)", n, watched, maxfd)

		if readset.IsSet(listener) {
			if pause := doAccept(listener, state, &warn); pause > 0 {
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
			if err != nil || st.Done() {
				trace.Printf("close fd %d", fd)
				unix.Close(fd)
				state[fd] = nil
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

	// NOTE: SIGINT and SIGTERM end the server from a goroutine of its own,
	// and the kernel closes every connection as the process exits. Stage 04
	// brings signals into the event loop instead.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, unix.SIGINT, unix.SIGTERM)
	go func() {
		<-stop
		os.Exit(0)
	}()
	run(*listenAddr)
}
