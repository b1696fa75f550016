// Command 05-bufferevent-server is the book's last example, "A simpler
// ROT13 server with Libevent" (A tiny introduction to asynchronous IO), in
// Go, on our own bufferevents (pkg/bufferevent, pkg/evbuffer, pkg/listener,
// over pkg/event). The library now reads, writes and keeps the buffers; the
// server is a read callback that takes lines out of the input and puts
// their ROT13 in the output, and an event callback for the end.
//
//	go run ./05-bufferevent-server -trace -idle 30s
package main

import (
	"flag"
	"io"
	"log"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/bufferevent"
	"tinyasync/pkg/evbuffer"
	"tinyasync/pkg/event"
	"tinyasync/pkg/evutil"
	"tinyasync/pkg/listener"
	"tinyasync/pkg/rot13"
)

// trace narrates what the library and the callbacks do when -trace is on.
// The line traced for every line served tests tracing first: a call to
// trace.Printf allocates its arguments even when it writes nowhere.
var (
	trace   = log.New(io.Discard, "", 0)
	tracing bool
)

var newline = []byte{'\n'}

// readcb is the book's readcb: it runs when the input holds something, and
// answers every complete line in it.
func readcb(bev *bufferevent.Bufferevent) {
	input, output := bev.Input(), bev.Output()
	for {
		line, ok := input.ReadLine(evbuffer.EOLLF)
		if !ok {
			break
		}
		rot13.InPlace(line)
		output.Add(line)
		output.Add(newline)
		if tracing {
			trace.Printf("fd %d: line %d out (output %d)", bev.Fd(), len(line), output.Len())
		}
	}
	if input.Len() >= rot13.MaxLine {
		// Too long: send what there is, so that the input does not grow
		// without end. Unlike the book, which adds a "\n" after it, a byte
		// the client never sent, the bytes go out exactly as they came.
		answerAll(bev)
	}
}

// answerAll moves all of the input to the output, ROT13'd in place: the
// chunks move, nothing is copied.
func answerAll(bev *bufferevent.Bufferevent) {
	input := bev.Input()
	for _, chunk := range input.Peek(-1) {
		rot13.InPlace(chunk)
	}
	n := input.RemoveBuffer(bev.Output(), input.Len())
	trace.Printf("fd %d: %d bytes without a newline out (output %d)", bev.Fd(), n, bev.Output().Len())
}

// eventcb is the book's errorcb, with its three cases made real.
func eventcb(bev *bufferevent.Bufferevent, what bufferevent.What) {
	switch {
	case what&bufferevent.EOF != 0:
		// The client has finished sending. Unlike the book, which frees
		// the bufferevent at once, dropping the answers not yet written
		// and the last line if it had no newline: answer that line too,
		// and close once everything is written.
		answerAll(bev)
		bev.CloseWhenFlushed()
	case what&bufferevent.Error != 0:
		// A reset, most likely: the client is gone, and nobody is left to
		// answer. A client's ordinary behaviour: nothing to log.
		trace.Printf("fd %d: %v", bev.Fd(), bev.Err())
		bev.Free()
	case what&bufferevent.Timeout != 0:
		// Silent for longer than -idle allows.
		trace.Printf("fd %d: idle: closing", bev.Fd())
		bev.Free()
	}
}

// unfinished guards against a client that trickles a line a byte at a
// time: every byte restarts the read timeout, so -idle alone would never
// end it. Its line must be finished within -idle of when it was first seen
// unfinished.
//
// Unlike the book, which keeps any client as long as it sends something:
// a thousand such clients would hold a thousand connections for ever.
func unfinished(idle time.Duration) func(*bufferevent.Bufferevent) {
	var since time.Time // when the input last held a line making no progress
	return func(bev *bufferevent.Bufferevent) {
		before := bev.Input().Len()
		readcb(bev)
		switch left := bev.Input().Len(); {
		case left == 0 || left < before || idle == 0:
			since = time.Time{} // a line answered: progress
		case since.IsZero():
			since = time.Now()
		case time.Since(since) > idle:
			trace.Printf("fd %d: a line unfinished for %v: closing", bev.Fd(), idle)
			bev.Free()
		}
	}
}

// doAccept is the book's do_accept: each new client gets a bufferevent.
func doAccept(base *event.Base, idle time.Duration, warn *evutil.Throttle) listener.AcceptFunc {
	return func(_ *listener.Listener, fd int, _ netip.AddrPort) {
		bev := bufferevent.NewSocket(base, fd, bufferevent.CloseOnFree)
		bev.SetCallbacks(unfinished(idle), nil, eventcb)
		// As in the book: stop reading while the input holds MAX_LINE.
		// The output is bounded too (1 MiB, the write high watermark):
		// unlike the book's, whose output grows while a client never reads.
		bev.SetWatermark(event.Read, 0, rot13.MaxLine)
		// -idle times reading (a client that never speaks) and writing (a
		// client that never reads: once its output holds 1 MiB, reading
		// pauses, and the write timeout is what ends it).
		bev.SetTimeouts(idle, idle)
		// Unlike the book, which closes fd > FD_SETSIZE here, a cap that
		// means nothing to epoll: the select backend refuses a descriptor
		// it cannot watch, and the client is closed at once.
		if err := bev.Enable(event.Read | event.Write); err != nil {
			bev.Free()
			warn.Printf("accept: %v: closed", err)
		}
	}
}

// run listens, and hands everything to the event loop.
func run(listenAddr string, idle time.Duration) {
	base, err := event.NewBase()
	if err != nil {
		log.Fatal(err) // Unlike the book: "return; /*XXXerr*/"
	}
	base.SetTrace(trace)
	var warn evutil.Throttle // out of descriptors: a line a second at most
	l, err := listener.Bind(base, listenAddr, doAccept(base, idle, &warn))
	if err != nil {
		// Unlike the book, whose run returns when bind fails, and whose
		// main then exits 0: one line, and exit status 1.
		log.Fatal(err)
	}
	addr, err := l.Addr()
	if err != nil {
		log.Fatal(err)
	}
	evutil.StartRuntimePoller() // before descriptors can run out (see there)
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
	flag.CommandLine.Init("05-bufferevent-server", flag.ExitOnError)
	listenAddr := flag.String("listen", evutil.DefaultListen, "listen on `host:port` (port 0 picks a free one)")
	traceOn := flag.Bool("trace", false, "narrate reads, lines, writes, watermarks and events on stderr")
	idle := flag.Duration("idle", 10*time.Minute, "close a client that sends nothing, reads nothing, or leaves a line unfinished, for this `long`;\n"+
		"0 for never. The default outlasts a student thinking at an nc prompt, and still\n"+
		"clears connections a class forgot in a lesson's time")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("05-bufferevent-server: ")
	if tracing = *traceOn; tracing {
		trace.SetOutput(os.Stderr)
	}
	run(*listenAddr, *idle)
}
