// Command blocking-loop is the book's first Bad Example (A tiny
// introduction to asynchronous IO, just before "Example: Forking ROT13
// server"): one process serves every client with blocking calls, asking
// each connection in turn for what it has to say.
//
// It is 02-forking-server without fork (diff the two files): the same
// conn and serve, called for every client in turn by one loop, instead of
// by a process for each. It serves one client perfectly. With two, the
// first one that has nothing to say stops the loop in its recv, and every
// other client waits behind it, answered or not, for as long as that
// client keeps quiet. That is why the book gives each connection a process
// of its own (02-forking-server).
//
//	go run ./02-forking-server/blocking-loop -trace
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

// trace narrates each accept, read, write and close when -trace is on.
var trace = log.New(io.Discard, "", 0)

// conn is one client: its socket, and the line being read from it (the
// book's child keeps outbuf and outbuf_used).
type conn struct {
	fd         int
	outbuf     []byte
	outbufUsed int
}

// serve reads what the client has sent, and answers each complete line.
// The recv blocks until the client sends something or closes: this is the
// call that stalls the loop.
func serve(c *conn) (open bool) {
	trace.Printf("recv on fd %d: waits until that client speaks", c.fd)
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
		// and the loop with it.
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

// accept takes new clients: it waits for one when there is nobody to
// serve, and otherwise takes only those already waiting.
func accept(listener int, conns []*conn) []*conn {
	for {
		if err := unix.SetNonblock(listener, len(conns) > 0); err != nil {
			log.Fatal(os.NewSyscallError("fcntl", err))
		}
		fd, sa, err := unix.Accept(listener)
		if err == unix.EAGAIN {
			return conns // nobody else is waiting
		}
		if err != nil {
			// Unlike the book, which prints every failure and tries again
			// at once: out of descriptors, accept fails again at once until
			// one is freed, so pause instead of spinning (or serve the
			// clients there are meanwhile).
			pause := warn.AcceptPause(err)
			if pause > 0 && len(conns) > 0 {
				return conns
			}
			time.Sleep(pause)
			continue
		}
		trace.Printf("accept fd %d from %s", fd, evutil.SockaddrString(sa))
		conns = append(conns, &conn{fd: fd, outbuf: make([]byte, rot13.MaxLine)})
	}
}

// run is the book's Bad Example: recv on each socket in turn, forever.
func run(listenAddr string) {
	sin, domain, err := evutil.ParseSockaddrPort(listenAddr) // the book's sin
	if err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "", err))
	}
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
	log.Printf("listening on %s", addr)

	var conns []*conn
	for {
		conns = accept(listener, conns)
		kept := conns[:0]
		for _, c := range conns { // each client in turn, waiting for each
			if serve(c) {
				kept = append(kept, c)
				continue
			}
			trace.Printf("close fd %d", c.fd)
			unix.Close(c.fd) // its error tells nothing to act on: the descriptor is gone either way (close(2))
		}
		conns = kept
	}
}

func main() {
	flag.CommandLine.Init("blocking-loop", flag.ExitOnError)
	listenAddr := flag.String("listen", evutil.DefaultListen, "listen on `host:port` (port 0 picks a free one)")
	traceOn := flag.Bool("trace", false, "narrate each accept, recv, write and close on stderr")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("blocking-loop: ")
	if *traceOn {
		trace.SetOutput(os.Stderr)
	}
	// Unlike the book, killed by SIGINT or SIGTERM: exit with status 0.
	evutil.ExitOnSignal()
	run(*listenAddr)
}
