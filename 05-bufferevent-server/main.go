// Command 05-bufferevent-server is the book's last example, "A simpler
// ROT13 server with Libevent" (A tiny introduction to asynchronous IO), in
// Go, on our own bufferevents (pkg/bufferevent and pkg/evbuffer, over
// pkg/event). The library now reads, writes and keeps the buffers: fd_state
// and its doRead and doWrite are gone, and the server is a read callback
// that takes lines out of the input and puts their ROT13 in the output, and
// an event callback for the end.
//
// The book's program, function for function:
//
//	rot13_char         rot13.Char, rot13.InPlace (pkg/rot13, every stage's)
//	readcb             readcb
//	errorcb            errorcb
//	do_accept          doAccept
//	run                run
//	main               main
//
//	go run ./05-bufferevent-server -trace -idle 30s
package main

import (
	"flag"
	"io"
	"log"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/bufferevent"
	"tinyasync/pkg/evbuffer"
	"tinyasync/pkg/event"
	"tinyasync/pkg/evutil"
	"tinyasync/pkg/rot13"
)

// trace narrates what the library and the callbacks do when -trace is on.
var trace = log.New(io.Discard, "", 0)

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

// errorcb is the book's errorcb, with its three cases made real.
func errorcb(bev *bufferevent.Bufferevent, what bufferevent.What) {
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
		// Idle for longer than -idle allows.
		trace.Printf("fd %d: idle: closing", bev.Fd())
		bev.Free()
	}
}

// warn logs what needs the operator's attention, at most once a second.
var warn evutil.Throttle

// doAccept is the book's do_accept: it accepts the connections waiting on
// the listener, and says how long to stop listening: a while, if the
// descriptors ran out.
func doAccept(listener int, base *event.Base, idle time.Duration) (pause time.Duration) {
	// Unlike the book, which accepts one connection per readiness: when
	// many arrive at once, a turn of the loop for each is slow. A bounded
	// batch keeps the others served meanwhile.
	for range 64 {
		// Unlike the book's accept, whose sockaddr sits on the stack in C:
		// unix.Accept returns it as two heap objects per client, garbage
		// that a server of thousands of clients piles up; evutil.Accept
		// keeps it on the stack, and returns the address as a value.
		fd, peer, err := evutil.Accept(listener)
		if err == unix.EAGAIN {
			return 0 // nobody else is waiting
		}
		if err != nil {
			// Unlike the book, which prints the error and is called again
			// at once: out of descriptors, the connection stays queued, the
			// listener stays readable, and the loop would spin, printing.
			if pause := warn.AcceptPause(err); pause > 0 {
				return pause
			}
			continue
		}
		if err := evutil.MakeNonblocking(fd); err != nil {
			unix.Close(fd) // its error tells nothing to act on: the descriptor is gone either way (close(2))
			warn.Printf("accept: %v", err)
			continue
		}
		bev := bufferevent.NewSocket(base, fd, bufferevent.CloseOnFree)
		bev.SetCallbacks(readcb, nil, errorcb)
		// As in the book: stop reading while the input holds MAX_LINE.
		// Unlike the book's, whose output grows while a client never
		// reads, the output is bounded too (1 MiB, its high watermark).
		bev.SetWatermark(event.Read, 0, rot13.MaxLine)
		// Unlike the book, which keeps a client for as long as it stays
		// connected: -idle ends one that sends nothing, reads nothing
		// (its output full, reading paused), or trickles a line a byte at
		// a time and never finishes it (each byte would restart the read
		// timeout).
		bev.SetTimeouts(idle, idle)
		bev.SetLineTimeout(idle)
		// Unlike the book, which closes fd > FD_SETSIZE here, a cap that
		// means nothing to epoll (and is one too late for select): the cap
		// is the select backend's, which refuses a descriptor it cannot
		// watch. Its client is closed at once.
		if err := bev.Enable(event.Read | event.Write); err != nil {
			bev.Free()
			warn.Printf("accept: %v: closed", err)
			continue
		}
		trace.Printf("accept fd=%d from %v", fd, peer)
	}
	return 0
}

// run listens, and hands everything to the event loop.
func run(listenAddr string, idle time.Duration) {
	base, err := event.NewBase()
	if err != nil {
		log.Fatal(err) // Unlike the book: "return; /*XXXerr*/"
	}
	base.SetTrace(trace)
	sin, domain, err := evutil.ParseSockaddrPort(listenAddr) // the book's sin
	if err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "", err))
	}
	listener, err := unix.Socket(domain, unix.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "socket", err))
	}
	if err := evutil.MakeNonblocking(listener); err != nil {
		log.Fatal(evutil.ListenError(listenAddr, "", err))
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

	// The listener's event, paused for a while when the descriptors ran
	// out, and added again by a timer.
	var listenerEvent *event.Event
	resume := event.NewTimer(base, func(int, event.Events) {
		if err := listenerEvent.Add(0); err != nil {
			log.Fatal(err)
		}
	})
	listenerEvent = event.New(base, listener, event.Read|event.Persist, func(fd int, _ event.Events) {
		if pause := doAccept(fd, base, idle); pause > 0 {
			listenerEvent.Del() // fails only as the Add above would have
			if err := resume.Add(pause); err != nil {
				log.Fatal(err)
			}
		}
	})
	// Unlike the book, which never checks that its listener event was
	// added ("/*XXX check it */").
	if err := listenerEvent.Add(0); err != nil {
		log.Fatal(err)
	}
	// Unlike the book, killed by SIGINT or SIGTERM: those are events too.
	// The loop ends, and with it the program; the kernel closes every
	// connection.
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
	if *traceOn {
		trace.SetOutput(os.Stderr)
	}
	run(*listenAddr, *idle)
}
