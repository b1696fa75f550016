// Command 06-goroutine-server is the Go epilogue to the book's chapter: the
// same ROT13 service, written the way Go is meant to be written, with
// net.Listen and a goroutine per connection (after gopl.io's ch8 servers).
//
// It reads like 02: blocking calls, one flow of control per client, no
// buffers or state kept by hand. It scales like 04: a goroutine is a few
// kilobytes, not a process, and underneath every net.Conn, Go's runtime
// runs a reactor of its own, the netpoller (runtime/netpoll_epoll.go on
// Linux, netpoll_kqueue.go on the BSDs): a read that would block parks the
// goroutine, and epoll wakes it when the socket is ready.
//
//	go run ./06-goroutine-server -trace
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"tinyasync/pkg/evutil"
	"tinyasync/pkg/rot13"
)

// trace narrates each accept, read, write and close when -trace is on.
var trace = log.New(io.Discard, "", 0)

// handleConn serves one client: read a line, answer it, until the end of
// its stream. A read or write that must wait parks only this goroutine.
func handleConn(c net.Conn) {
	defer func() {
		c.Close() // its error tells nothing to act on: the connection is gone either way
		trace.Printf("close %s", c.RemoteAddr())
	}()
	// The reader's buffer is MAX_LINE: ReadSlice returns a line, or, when
	// MAX_LINE bytes hold no newline, all of them (bufio.ErrBufferFull),
	// or at the end of the stream the unterminated rest.
	r := bufio.NewReaderSize(c, rot13.MaxLine)
	w := bufio.NewWriterSize(c, rot13.MaxLine)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			trace.Printf("read %d from %s", len(line), c.RemoteAddr())
			rot13.InPlace(line) // the reader's own buffer: valid until the next read
			// A write that fails (the client gone) makes the buffered
			// writer fail every call after it, Flush included: the Flush
			// below is where this goroutine finds out, and ends.
			w.Write(line)
		}
		// Answer before waiting for more: when what the reader holds has
		// no complete line left, the next read may block. Until the client
		// reads, Flush waits, and this goroutine reads nothing more:
		// back-pressure.
		if held, _ := r.Peek(r.Buffered()); err != nil || bytes.IndexByte(held, '\n') < 0 {
			n := w.Buffered()
			if ferr := w.Flush(); ferr != nil {
				return // the client is gone
			}
			if n > 0 {
				trace.Printf("write %d to %s", n, c.RemoteAddr())
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return // the end of the stream (everything answered), or a reset
		}
	}
}

func main() {
	flag.CommandLine.Init("06-goroutine-server", flag.ExitOnError)
	listenAddr := flag.String("listen", evutil.DefaultListen, "listen on `host:port` (port 0 picks a free one)")
	traceOn := flag.Bool("trace", false, "narrate each accept, read, write and close on stderr")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("06-goroutine-server: ")
	if *traceOn {
		trace.SetOutput(os.Stderr)
	}

	l, err := net.Listen("tcp", *listenAddr)
	if err != nil {
		log.Fatalf("listen %s: %v", *listenAddr, unwrapOp(err))
	}
	log.Printf("listening on %s", l.Addr())

	// SIGINT and SIGTERM end the program; the kernel closes every
	// connection as it exits.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		os.Exit(0)
	}()

	var warn evutil.Throttle // out of descriptors: a line a second at most
	for {
		c, err := l.Accept()
		if err != nil {
			// Out of descriptors, most likely: accept fails again at once
			// until one is freed. Pause, as net/http's server does.
			warn.Printf("accept: %v; pausing", unwrapOp(err))
			time.Sleep(100 * time.Millisecond)
			continue
		}
		trace.Printf("accept %s", c.RemoteAddr())
		go handleConn(c) // a goroutine per connection
	}
}

// unwrapOp drops net.OpError's own "listen tcp ..." prefix, so that the
// line says each thing once.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
