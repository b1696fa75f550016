// Command 02-forking-server is the book's "Forking ROT13 server" (A tiny
// introduction to asynchronous IO) in Go: it answers each line a client
// sends with the line's ROT13, and gives every connection a process of its
// own, so that one client waiting never holds up another.
//
// Go cannot fork(2) a running program: a Go process is many threads, and a
// forked copy would hold only the one that called fork. So where the book's
// parent forks and the copy runs child(fd), this parent starts its own
// binary again with syscall.ForkExec, handing it the accepted socket as an
// inherited descriptor, the way inetd hands a socket to the program it
// starts. The new process sees it is a child by its name (argv[0]) and runs
// child(3).
//
//	go run ./02-forking-server -trace     # then, elsewhere: nc 127.0.0.1 40713
package main

import (
	"bytes"
	"flag"
	"io"
	"log"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/evutil"
	"tinyasync/pkg/rot13"
)

const (
	// childName is argv[0] of a child, and how it knows it is one; ps shows it.
	childName = "02-forking-server(child)"
	// childFD is the descriptor a child finds its connection on: the first
	// after stdin, stdout and stderr. Unlike the book's C child, which a
	// send to a vanished client kills with SIGPIPE: a Go program is killed
	// so only when that write goes to descriptor 1 or 2 (os/signal), so the
	// socket is not handed over as stdout, the way inetd would.
	childFD = 3
)

// trace narrates accepts, forks, reads, writes and exits on stderr when
// -trace is given; a child prefixes its lines with its pid.
var trace = log.New(io.Discard, "", 0)

// children holds the pids of the running children, so that the parent can
// reap each one and stop them all when it is told to stop.
var children = struct {
	sync.Mutex
	pids     map[int]bool
	stopping bool
}{pids: map[int]bool{}}

// child serves one connection with blocking reads and writes until the
// client closes its side.
//
// Unlike the book, which receives one byte per recv call (one system call
// per byte of input), it reads whatever has arrived, up to MAX_LINE bytes,
// and answers every complete line in that read with one send.
func child(fd int) {
	defer unix.Close(fd)
	buf := make([]byte, evutil.MaxLine)
	used := 0
	for {
		n, err := evutil.IgnoringEINTRIO(unix.Read, fd, buf[used:])
		if n <= 0 {
			// End of stream, or an error such as a reset: a client's
			// ordinary behaviour, so nothing to log.
			trace.Printf("read from fd %d: %v", fd, endOf(err))
			break
		}
		trace.Printf("read %d from fd %d", n, fd)
		rot13.InPlace(buf[used : used+n])
		used += n

		end := bytes.LastIndexByte(buf[:used], '\n') + 1
		if used == len(buf) {
			// Unlike the book, which drops what passes MAX_LINE: a full
			// buffer with no newline goes out as it is.
			end = used
		}
		// Unlike the book, whose send ignores what it returns: write
		// everything (evutil.WriteAll says why a send can fall short).
		// While the client does not read, this waits, and reads nothing
		// more: that is this server's back-pressure.
		if err := evutil.WriteAll(fd, buf[:end]); err != nil {
			trace.Printf("write to fd %d: %v", fd, err)
			return // The client is gone; nobody is left to answer.
		}
		trace.Printf("write %d to fd %d", end, fd)
		used = copy(buf, buf[end:used])
	}
	// Unlike the book, which drops it: the last line, even unterminated.
	if evutil.WriteAll(fd, buf[:used]) == nil && used > 0 {
		trace.Printf("write %d to fd %d", used, fd)
	}
}

// endOf tells why a read returned nothing.
func endOf(err error) string {
	if err == nil {
		return "end of stream"
	}
	return err.Error()
}

// run listens and starts a child for each connection it accepts.
func run(listenAddr, self string, childArgs []string) {
	listener, err := evutil.Listen(listenAddr)
	if err != nil {
		log.Fatal(err)
	}
	addr, err := evutil.LocalAddr(listener)
	if err != nil {
		log.Fatal(err)
	}

	// Unlike the book, which never waits for its children: each one that
	// exits stays a zombie until its parent reaps it. SIGCHLD says when.
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)
	go reapChildren(sigchld)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, unix.SIGINT, unix.SIGTERM)
	go stopOnSignal(stop)

	// Unlike a C program, a Go program's runtime opens descriptors of its
	// own: an epoll instance and an eventfd, the first time a goroutine
	// sleeps. Have that happen now, while descriptors are plentiful; the
	// first sleep would otherwise come when accept fails with EMFILE
	// (below), and a runtime that cannot open them ends the program
	// ("fatal error: runtime: netpollinit failed").
	time.Sleep(time.Nanosecond)

	log.Printf("listening on %s", addr)
	var warn evutil.Throttle // out of descriptors: one line a second at most
	for {
		fd, sa, err := evutil.Accept(listener)
		if err != nil {
			switch err {
			case unix.EINTR, unix.ECONNABORTED:
				// A signal, or a client that reset before we got to it.
			case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
				// Unlike the book, which retries at once and prints every
				// failure: out of descriptors, accept fails again at once
				// until one is freed, so pause instead of spinning.
				warn.Printf("accept: %v; pausing", err)
				time.Sleep(100 * time.Millisecond)
			default:
				warn.Printf("accept: %v", err)
			}
			continue
		}
		trace.Printf("accept fd %d from %s", fd, evutil.SockaddrString(sa))

		pid, err := forkChild(self, childArgs, fd)
		// Unlike the book, whose parent keeps its copy of every
		// connection: one descriptor leaked per client, and the client
		// never sees the end of the stream, because the socket stays open
		// in the parent after the child closes it.
		unix.Close(fd)
		if err != nil {
			// Unlike the book, which takes a failed fork (-1) for the
			// parent's return and carries on: say so, and drop the client.
			warn.Printf("fork: %v", err)
			continue
		}
		trace.Printf("fork: child %d serves fd %d as its fd %d; close fd %d", pid, fd, childFD, fd)
	}
}

// forkChild starts a child to serve the connection on fd.
//
// The child inherits stdin, stdout, stderr and this socket, nothing else:
// every descriptor this program opens is close-on-exec. Unlike the book,
// whose children keep the listening socket, and with it the port, open.
func forkChild(self string, args []string, fd int) (int, error) {
	children.Lock()
	defer children.Unlock()
	if children.stopping {
		return 0, unix.ESHUTDOWN
	}
	pid, err := syscall.ForkExec(self, args, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2, uintptr(fd)},
	})
	if err == nil {
		children.pids[pid] = true
	}
	return pid, err
}

// reapChildren waits for every child that exits, each time SIGCHLD says
// one did.
func reapChildren(sigchld <-chan os.Signal) {
	for range sigchld {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break // No child has exited (0), or there are none (ECHILD).
			}
			children.Lock()
			delete(children.pids, pid)
			children.Unlock()
			trace.Printf("reap child %d: exit status %d", pid, ws.ExitStatus())
		}
	}
}

// stopOnSignal stops the server on SIGINT or SIGTERM: no new child starts,
// every running child is told to stop, and the parent exits once all of
// them have, so that none outlives it.
func stopOnSignal(stop <-chan os.Signal) {
	sig := <-stop
	children.Lock()
	children.stopping = true
	trace.Printf("%v: stopping %d children", sig, len(children.pids))
	for pid := range children.pids {
		unix.Kill(pid, unix.SIGTERM)
	}
	children.Unlock()

	// A child dies of SIGTERM at once, but give up on one that does not.
	time.AfterFunc(time.Second, func() {
		children.Lock()
		defer children.Unlock()
		for pid := range children.pids {
			unix.Kill(pid, unix.SIGKILL)
		}
	})
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.ECHILD {
			break
		}
		if pid > 0 {
			children.Lock()
			delete(children.pids, pid)
			children.Unlock()
		}
	}
	os.Exit(0)
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
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	childArgs := []string{childName}
	if *traceOn {
		childArgs = append(childArgs, "-trace")
	}
	run(*listenAddr, self, childArgs)
}
