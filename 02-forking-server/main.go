// Command 02-forking-server is the book's "Forking ROT13 server" (A tiny
// introduction to asynchronous IO) in Go: it answers each line a client
// sends with the line's ROT13, and gives each connection a process of its
// own, so that a client that waits holds up nobody else.
//
// The book's program, function for function:
//
//	rot13_char          rot13.Char (pkg/rot13, every stage's)
//	child               child
//	run                 run
//	fork() == 0         fork.Child (pkg/fork: Go cannot fork a running program, so it starts this one again)
//	main                main
//
//	go run ./02-forking-server -trace     # then, elsewhere: nc 127.0.0.1 40713
package main

import (
	"flag"
	"io"
	"log"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/evutil"
	"tinyasync/pkg/fork"
	"tinyasync/pkg/rot13"
)

// trace narrates accepts, forks, reads, writes and exits when -trace is on.
var trace = log.New(io.Discard, "", 0)

// conn is one client: its socket, and the line being read from it (the
// book's child keeps outbuf and outbuf_used).
type conn struct {
	fd         int
	outbuf     []byte
	outbufUsed int
}

// child is the book's child: it serves one connection with blocking reads
// and writes, a turn of serve at a time, until the client closes its side.
// It runs in a process of its own, started by fork.Child.
func child(fd int) {
	c := &conn{fd: fd, outbuf: make([]byte, rot13.MaxLine)}
	for serve(c) {
	}
	unix.Close(fd) // its error tells nothing to act on: the descriptor is gone either way (close(2))
}

// serve reads what the client has sent, and answers each complete line.
// The recv blocks until the client sends something or closes.
func serve(c *conn) (open bool) {
	// Unlike the book, which calls recv once per byte (a system call for
	// every byte): read what has arrived, as much as fits.
	n, err := evutil.IgnoringEINTRIO(unix.Read, c.fd, c.outbuf[c.outbufUsed:])
	if err != nil {
		trace.Printf("read from fd %d: %v", c.fd, err) // a reset: nobody to answer
		return false
	}
	lineEnd := 0
	if n == 0 {
		// Unlike the book, which drops it: the last line goes out even
		// without its newline.
		trace.Printf("read 0 from fd %d: end of stream", c.fd)
		lineEnd = c.outbufUsed
	} else {
		trace.Printf("read %d from fd %d", n, c.fd)
	}
	for i := c.outbufUsed; i < c.outbufUsed+n; i++ {
		c.outbuf[i] = rot13.Char(c.outbuf[i])
		if c.outbuf[i] == '\n' {
			lineEnd = i + 1
		}
	}
	c.outbufUsed += n
	// Unlike the book, which keeps MAX_LINE bytes of a longer line and
	// drops the rest: a line that fills the buffer is sent as it is.
	if c.outbufUsed == len(c.outbuf) && lineEnd == 0 {
		lineEnd = c.outbufUsed
	}
	if lineEnd > 0 {
		// Unlike the book, whose send ignores what it returns: send it all
		// (01's send loop). While the client does not read, this waits,
		// and reads nothing more: back-pressure.
		if err := evutil.WriteAll(c.fd, c.outbuf[:lineEnd]); err != nil {
			trace.Printf("write to fd %d: %v", c.fd, err)
			return false
		}
		trace.Printf("write %d to fd %d", lineEnd, c.fd)
		c.outbufUsed = copy(c.outbuf, c.outbuf[lineEnd:c.outbufUsed])
	}
	return n > 0
}

// warn logs what needs the operator's attention, at most once a second.
var warn evutil.Throttle

// run listens and starts a child for each connection it accepts.
func run(listenAddr string) {
	sin, domain, err := evutil.ParseSockaddrPort(listenAddr) // the book's sin
	if err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "", err))
	}
	listener, err := unix.Socket(domain, unix.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "socket", err))
	}
	// Unlike the book, whose children inherit the listening socket, and
	// keep the port open after the server has gone.
	unix.CloseOnExec(listener)
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
	// Unlike the book, which never waits for its children and leaves them
	// serving when it is stopped: reap each child that exits, and on
	// SIGINT or SIGTERM stop them all, then exit 0.
	if err := fork.Supervise(trace); err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", addr)

	for {
		fd, sa, err := unix.Accept(listener)
		if err != nil {
			// Unlike the book, which prints every failure and tries again
			// at once: out of descriptors, accept fails again at once until
			// one is freed, so pause instead of spinning.
			time.Sleep(warn.AcceptPause(err))
			continue
		}
		trace.Printf("accept fd %d from %s", fd, evutil.SockaddrString(sa))
		unix.CloseOnExec(fd) // the child gets it as its fd 3, and only so

		// The book's fork(): the child serves fd as its descriptor 3.
		// NOTE: like the book's, it starts a child for every client there
		// is: nothing but the system's limits caps their number.
		pid, err := fork.Child(fd)
		// Unlike the book, whose parent keeps its copy of every connection:
		// a descriptor leaked per client, and a client that never sees the
		// end of its stream, since the parent still holds the socket open.
		unix.Close(fd)
		switch {
		case err == fork.ErrStopping: // fork.Supervise ends the program
		case err != nil:
			// Unlike the book, which takes a failed fork (-1) for the
			// parent's return and goes on: say so, and drop the client.
			warn.Printf("fork: %v", err)
		default:
			trace.Printf("fork: child %d serves fd %d as its fd %d; close fd %d", pid, fd, fork.FD, fd)
		}
	}
}

func main() {
	flag.CommandLine.Init("02-forking-server", flag.ExitOnError)
	listenAddr := flag.String("listen", evutil.DefaultListen, "listen on `host:port` (port 0 picks a free one)")
	traceOn := flag.Bool("trace", false, "narrate accepts, forks, reads, writes and exits on stderr")
	inChild := fork.InChild()
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("02-forking-server: ")
	if *traceOn {
		trace.SetOutput(os.Stderr)
	}
	if inChild {
		trace.SetPrefix("[child " + strconv.Itoa(os.Getpid()) + "] ")
		child(fork.FD)
		return
	}
	run(*listenAddr)
}
