// Command blocking-loop is the book's first Bad Example (A tiny
// introduction to asynchronous IO, just before "Example: Forking ROT13
// server"): one process serves every client with blocking calls, asking
// each connection in turn for what it has to say.
//
// It serves one client perfectly. With two, the first one that has nothing
// to say stops the loop in its recv, and every other client waits behind
// it, answered or not, for as long as that client keeps quiet. That is why
// the book gives each connection a process of its own (02-forking-server).
//
//	go run ./02-forking-server/blocking-loop -trace
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

// trace narrates each accept, read, write and close when -trace is on.
var trace = log.New(io.Discard, "", 0)

// conn is one client: its socket and the line being read from it.
type conn struct {
	fd    int
	lines rot13.Stream
}

// serve asks one client for what it has to say, and answers it. The
// recv blocks until the client sends something or closes: this is the
// call that stalls the loop.
func serve(c *conn) (open bool) {
	trace.Printf("recv on fd %d: waits until that client speaks", c.fd)
	n, err := evutil.IgnoringEINTRIO(unix.Read, c.fd, c.lines.Space())
	switch {
	case err != nil:
		return false
	case n == 0:
		trace.Printf("read 0 from fd %d: end of stream", c.fd)
		c.lines.End()
	default:
		trace.Printf("read %d from fd %d", n, c.fd)
		c.lines.Received(n)
	}
	out := c.lines.Ready()
	if len(out) > 0 {
		// A client that does not read stalls the loop here too, once
		// its socket's buffers are full.
		if evutil.WriteAll(c.fd, out) != nil {
			return false
		}
		trace.Printf("write %d to fd %d", len(out), c.fd)
		c.lines.Sent(len(out))
	}
	return !c.lines.Done()
}

// accept takes new clients: it waits for one when there is nobody to
// serve, and otherwise takes only those already waiting.
func accept(listener int, conns []*conn, warn *evutil.Throttle) []*conn {
	for {
		if err := unix.SetNonblock(listener, len(conns) > 0); err != nil {
			log.Fatal(os.NewSyscallError("fcntl", err))
		}
		fd, peer, err := evutil.Accept(listener)
		switch err {
		case nil:
		case unix.EINTR, unix.ECONNABORTED: // a signal; a client that left
			continue
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			warn.Printf("accept: %v; pausing", err)
			if len(conns) == 0 {
				time.Sleep(100 * time.Millisecond) // instead of spinning
				continue
			}
			return conns
		default: // EAGAIN: nobody else is waiting
			if err != unix.EAGAIN {
				warn.Printf("accept: %v", err)
			}
			return conns
		}
		trace.Printf("accept fd %d from %s", fd, peer)
		conns = append(conns, &conn{fd: fd})
	}
}

// run is the book's Bad Example: recv on each socket in turn, forever.
func run(listenAddr string) {
	listener, err := evutil.Listen(listenAddr)
	if err != nil {
		log.Fatal(err)
	}
	addr, err := evutil.LocalAddr(listener)
	if err != nil {
		log.Fatal(err)
	}
	evutil.StartRuntimePoller() // before descriptors can run out (see there)
	log.Printf("listening on %s", addr)

	var conns []*conn
	var warn evutil.Throttle
	for {
		conns = accept(listener, conns, &warn)
		kept := conns[:0]
		for _, c := range conns { // each client in turn, waiting for each
			if serve(c) {
				kept = append(kept, c)
				continue
			}
			trace.Printf("close fd %d", c.fd)
			unix.Close(c.fd)
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
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, unix.SIGINT, unix.SIGTERM)
	go func() {
		<-stop
		os.Exit(0) // the kernel closes every connection
	}()
	run(*listenAddr)
}
