// Command busy-poll is the book's second Bad Example, "busy-polling all
// sockets" (A tiny introduction to asynchronous IO, just before "Example:
// Using select"): every socket nonblocking, and one loop that asks every
// socket, again and again, whether it has anything.
//
// It works: no client waits for another, as with the blocking loop. But
// when nobody has anything to say, the loop goes on asking, as fast as the
// CPU allows, and burns a whole core doing nothing; with many clients, it
// makes a system call for each of them, whether it has data or not. That is
// why the book asks the kernel instead which sockets are ready
// (03-select-server). Run it with -trace to count the calls that found
// nothing.
//
//	go run ./03-select-server/busy-poll -trace
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

// trace narrates accepts, reads, writes and closes when -trace is on, and
// once a second, how many calls found nothing.
var trace = log.New(io.Discard, "", 0)

// fdState is what the server holds for one connection, as in 03.
type fdState struct {
	rot13.Stream
}

// doRead reads once from fd, if it has anything: unix.EAGAIN says it had
// nothing.
func doRead(fd int, st *fdState) error {
	n, err := evutil.IgnoringEINTRIO(unix.Read, fd, st.Space())
	switch {
	case err != nil:
		return err
	case n == 0:
		trace.Printf("read 0 from fd %d: end of stream", fd)
		st.End()
		return nil
	}
	trace.Printf("read %d from fd %d", n, fd)
	st.Received(n)
	return nil
}

// doWrite sends what fd's stream has ready, as much as the socket takes.
func doWrite(fd int, st *fdState) error {
	n, err := evutil.IgnoringEINTRIO(unix.Write, fd, st.Ready())
	if err != nil {
		return err
	}
	trace.Printf("write %d to fd %d", n, fd)
	st.Sent(n)
	return nil
}

// run asks every socket for work, again and again.
func run(listenAddr string) {
	listener, err := evutil.Listen(listenAddr)
	if err != nil {
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

	var state []*fdState // indexed by descriptor
	var warn evutil.Throttle
	var acceptAgain time.Time
	report := time.Now().Add(time.Second)
	var emptyAccepts, emptyReads int
	for {
		// Ask the listener for a new client.
		if now := time.Now(); now.After(acceptAgain) {
			fd, peer, err := evutil.Accept(listener)
			switch err {
			case nil:
				if err := evutil.MakeNonblocking(fd); err != nil {
					unix.Close(fd)
					break
				}
				trace.Printf("accept fd=%d from %s", fd, peer)
				for len(state) <= fd {
					state = append(state, nil)
				}
				state[fd] = &fdState{}
			case unix.EAGAIN:
				emptyAccepts++
			case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
				warn.Printf("accept: %v; pausing", err)
				acceptAgain = now.Add(100 * time.Millisecond)
			case unix.EINTR, unix.ECONNABORTED:
			default:
				warn.Printf("accept: %v", err)
			}
		}
		// Ask every client for data, and give each what it has waiting.
		for fd, st := range state {
			if st == nil {
				continue
			}
			var err error
			if st.WantsRead() {
				if err = doRead(fd, st); err == unix.EAGAIN {
					emptyReads++ // the kernel had nothing for us
					err = nil
				}
			}
			if err == nil && len(st.Ready()) > 0 {
				if err = doWrite(fd, st); err == unix.EAGAIN {
					err = nil
				}
			}
			if err != nil || st.Done() {
				trace.Printf("close fd %d", fd)
				unix.Close(fd)
				state[fd] = nil
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
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, unix.SIGINT, unix.SIGTERM)
	go func() {
		<-stop
		os.Exit(0) // the kernel closes every connection
	}()
	run(*listenAddr)
}
