// Command 02-forking-server is the book's "Forking ROT13 server" (A tiny
// introduction to asynchronous IO) in Go: it answers each line a client
// sends with the line's ROT13, and gives each connection a process of its
// own, so that a client that waits holds up nobody else.
//
// Go cannot fork(2) a running program: a Go process is many threads, and a
// forked copy would hold only the thread that called fork. So where the
// book's parent forks and the copy runs child(fd), this parent starts its
// own binary again with syscall.ForkExec and hands it the accepted socket as
// an inherited descriptor, the way inetd does. The new process knows it is
// a child by its name, argv[0], and runs child(3).
//
//	go run ./02-forking-server -trace     # then, elsewhere: nc 127.0.0.1 40713
package main

import (
	"flag"
	"io"
	"log"
	"os"
	"os/signal"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/evutil"
	"tinyasync/pkg/rot13"
)

const (
	childName = "02-forking-server(child)" // a child's argv[0], as ps shows it

	// childFD is where a child finds its connection: the first descriptor
	// after stdin, stdout and stderr, which it shares with its parent, so
	// that its log and trace reach the same terminal. (inetd hands the
	// socket over as stdin and stdout instead.)
	childFD = 3
)

// trace narrates accepts, forks, reads, writes and exits when -trace is on.
var trace = log.New(io.Discard, "", 0)

// child serves one connection with blocking reads and writes until the
// client closes its side. It runs in a program of its own, started by
// forkChild, not in a copy of the parent.
//
// Unlike the book, which calls recv once per byte (a system call for every
// byte), it reads what has arrived, up to MAX_LINE bytes, and answers all
// the complete lines in it with one send. A rot13.Stream keeps the line
// being read: it is the book's outbuf, with the book's bugs fixed.
func child(fd int) {
	defer unix.Close(fd)
	var lines rot13.Stream
	for !lines.Done() {
		n, err := evutil.IgnoringEINTRIO(unix.Read, fd, lines.Space())
		switch {
		case err != nil:
			trace.Printf("read from fd %d: %v", fd, err) // a reset: nobody to answer
			return
		case n == 0:
			// Unlike the book, which drops it: the last line goes out
			// even without its newline.
			trace.Printf("read from fd %d: end of stream", fd)
			lines.End()
		default:
			trace.Printf("read %d from fd %d", n, fd)
			lines.Received(n)
		}
		out := lines.Ready()
		if len(out) == 0 {
			continue // no complete line yet
		}
		// Unlike the book, whose send ignores what it returns: send it all
		// (evutil.WriteAll says why a send can fall short). While the
		// client does not read, this waits and reads nothing more: that is
		// this server's back-pressure.
		if err := evutil.WriteAll(fd, out); err != nil {
			trace.Printf("write to fd %d: %v", fd, err)
			return
		}
		trace.Printf("write %d to fd %d", len(out), fd)
		lines.Sent(len(out))
	}
}

// run listens and starts a child for each connection it accepts.
func run(listenAddr, self string, childArgs []string) {
	listener, err := evutil.Listen(listenAddr)
	if err != nil {
		// Unlike the book, whose run returns when bind fails, and whose
		// main then exits 0: one line, and exit status 1.
		log.Fatal(err)
	}
	addr, err := evutil.LocalAddr(listener)
	if err != nil {
		log.Fatal(err)
	}

	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, unix.SIGINT, unix.SIGTERM)
	go supervise(listener, sigchld, stop)

	evutil.StartRuntimePoller() // before descriptors can run out (see there)

	log.Printf("listening on %s", addr)
	var warn evutil.Throttle // out of descriptors: a line a second at most
	for {
		fd, peer, err := evutil.Accept(listener)
		if stopping() {
			if err == nil {
				unix.Close(fd)
			}
			select {} // supervise ends the program once the children are gone
		}
		switch err {
		case nil:
		case unix.EINTR, unix.ECONNABORTED: // a signal; a client that left
			continue
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			// Unlike the book, which retries at once and prints every
			// failure: out of descriptors, accept fails again at once until
			// one is freed, so pause instead of spinning.
			warn.Printf("accept: %v; pausing", err)
			time.Sleep(100 * time.Millisecond)
			continue
		default:
			warn.Printf("accept: %v", err)
			continue
		}
		trace.Printf("accept fd %d from %s", fd, peer)

		// The parent's half of the book's if (fork() == 0). NOTE: like the
		// book's, it starts a child for every client there is: nothing but
		// the system's limits caps their number.
		pid, err := forkChild(self, childArgs, fd)
		// Unlike the book, whose parent keeps its copy of every connection:
		// a descriptor leaked per client, and a client that never sees the
		// end of its stream, since the parent still holds the socket open.
		unix.Close(fd)
		if err != nil {
			// Unlike the book, which takes a failed fork (-1) for the
			// parent's return and goes on: say so, and drop the client.
			warn.Printf("fork: %v", err)
			continue
		}
		trace.Printf("fork: child %d serves fd %d as its fd %d; close fd %d", pid, fd, childFD, fd)
	}
}

func main() {
	flag.CommandLine.Init("02-forking-server", flag.ExitOnError)
	listenAddr := flag.String("listen", evutil.DefaultListen, "listen on `host:port` (port 0 picks a free one)")
	traceOn := flag.Bool("trace", false, "narrate accepts, forks, reads, writes and exits on stderr")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("02-forking-server: ")
	if *traceOn {
		trace.SetOutput(os.Stderr)
	}

	if os.Args[0] == childName {
		trace.SetPrefix("[child " + strconv.Itoa(os.Getpid()) + "] ")
		child(childFD)
		return
	}
	self, err := selfExe()
	if err != nil {
		log.Fatal(err)
	}
	// Descriptors this program inherited without close-on-exec (from a
	// shell, a CI runner) would otherwise pass on to every child.
	if err := evutil.CloseOnExecInherited(); err != nil {
		log.Fatal(err)
	}
	childArgs := []string{childName}
	if *traceOn {
		childArgs = append(childArgs, "-trace")
	}
	run(*listenAddr, self, childArgs)
}
