// Package bufferevent is our own libevent bufferevent
// (<event2/bufferevent.h>), for sockets, on pkg/event and pkg/evbuffer: a
// connection with an input buffer the library reads into and an output
// buffer it writes from, and callbacks that run when there is something
// to read, when the output has drained, and when something happens (the
// end of the stream, an error, a timeout, a connect).
//
//	bev := bufferevent.NewSocket(base, fd, bufferevent.CloseOnFree)
//	bev.SetCallbacks(readcb, nil, eventcb)
//	bev.SetWatermark(event.Read, 0, rot13.MaxLine)
//	bev.Enable(event.Read | event.Write)
//
// On a base whose method is io_uring (EVENT_IOURING), the same calls make
// completion bufferevents (completion.go): the kernel is asked to receive
// and to send, and the callbacks, watermarks and timeouts behave as here.
//
// The library does what 04 did by hand: the reads, bounded per readiness
// so that no client has the loop to itself; the writes, at once when the
// read callback has answered, and through the write event only when the
// socket is full; back-pressure, reading paused while the input holds its
// high watermark or the output its bound; timeouts. A Bufferevent belongs
// to its base's goroutine, like the base's events.
//
// The errors of Del on its events are not checked: Del fails only when the
// backend fails to forget a descriptor (epoll_ctl says EBADF or ENOENT),
// and one the kernel does not know is watched for nothing anyway.
package bufferevent

import (
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/evbuffer"
	"tinyasync/pkg/event"
	"tinyasync/pkg/evutil"
)

// What says what happened, for the event callback: libevent's BEV_EVENT_*.
type What uint16

const (
	Reading   What = 0x01 // while reading
	Writing   What = 0x02 // while writing
	EOF       What = 0x10 // the peer ended its stream
	Error     What = 0x20 // the socket failed: Err says why
	Timeout   What = 0x40 // the read or write timeout passed
	Connected What = 0x80 // a Connect completed
)

func (w What) String() string {
	var names []string
	for _, f := range []struct {
		flag What
		name string
	}{{Reading, "Reading"}, {Writing, "Writing"}, {EOF, "EOF"}, {Error, "Error"}, {Timeout, "Timeout"}, {Connected, "Connected"}} {
		if w&f.flag != 0 {
			names = append(names, f.name)
		}
	}
	return strings.Join(names, "|")
}

// Options change how a Bufferevent treats its socket.
type Options int

const (
	// CloseOnFree closes the socket when the Bufferevent is freed
	// (BEV_OPT_CLOSE_ON_FREE).
	CloseOnFree Options = 1 << iota
)

// MaxRead is the most one readiness reads: a client that sends without
// pause is read a piece at a time, between the others.
const MaxRead = 16384

// DefaultOutputLimit is how much the output may hold before reading
// pauses, unless SetWatermark sets another.
const DefaultOutputLimit = 1 << 20

// Reasons reading is paused, beside Disable.
const (
	pausedInput  = 1 << iota // the input holds the read high watermark
	pausedOutput             // the output holds its bound
)

// A Bufferevent is a socket with buffers and callbacks: libevent's struct
// bufferevent, socket kind.
type Bufferevent struct {
	base            *event.Base
	fd              int
	opts            Options
	readEv, writeEv *event.Event
	input, output   evbuffer.Buffer // in the struct: one allocation, not three
	readcb, writecb func(*Bufferevent)
	eventcb         func(*Bufferevent, What)
	trace           *log.Logger
	cio             *completion // on an io_uring base: what the kernel is doing for us (completion.go)

	enabled                      event.Events
	readLow, readHigh, writeLow  int
	outputLimit                  int
	readTimeout, writeTimeout    time.Duration
	lineTimeout                  time.Duration
	stalledSince                 time.Time // the input held bytes the read callback did not take
	paused                       int
	connecting, closeWhenFlushed bool
	inRead, freed                bool
	err                          error
}

// NewSocket returns a Bufferevent for the nonblocking socket fd
// (bufferevent_socket_new); fd -1 for one that Connect will open. Nothing
// is read or written until Enable.
func NewSocket(base *event.Base, fd int, opts Options) *Bufferevent {
	bev := &Bufferevent{
		base:        base,
		opts:        opts,
		outputLimit: DefaultOutputLimit,
		trace:       base.Tracer(),
		enabled:     event.Write, // as in libevent: writing is on from the start
	}
	bev.input.SetCallback(bev.inputChanged)
	bev.output.SetCallback(bev.outputChanged)
	bev.setFd(fd)
	return bev
}

// setFd gives the Bufferevent its socket, and the events that watch it.
func (bev *Bufferevent) setFd(fd int) {
	bev.fd = fd
	if u := bev.base.Uring(); u != nil {
		// As libevent's bufferevent_socket_new does on a base with IOCP:
		// on an io_uring base, every socket Bufferevent is a completion
		// one (completion.go), so that 05 runs on it unchanged.
		if bev.cio == nil {
			bev.cio = newCompletion(bev, u)
		}
		return
	}
	bev.readEv = event.New(bev.base, fd, event.Read|event.Persist, bev.handleRead)
	bev.writeEv = event.New(bev.base, fd, event.Write|event.Persist, bev.handleWrite)
}

// SetCallbacks sets the read, write and event callbacks
// (bufferevent_setcb); any may be nil.
func (bev *Bufferevent) SetCallbacks(read, write func(*Bufferevent), eventcb func(*Bufferevent, What)) {
	bev.readcb, bev.writecb, bev.eventcb = read, write, eventcb
}

// Input returns the buffer the socket is read into (bufferevent_get_input).
func (bev *Bufferevent) Input() *evbuffer.Buffer { return &bev.input }

// Output returns the buffer written to the socket (bufferevent_get_output).
// What is added to it goes out at once if the read callback is running, or
// in the base's next round otherwise.
func (bev *Bufferevent) Output() *evbuffer.Buffer { return &bev.output }

// Fd returns the socket.
func (bev *Bufferevent) Fd() int { return bev.fd }

// Err returns the error behind the last Error event.
func (bev *Bufferevent) Err() error { return bev.err }

// Write adds a copy of p to the output (bufferevent_write).
func (bev *Bufferevent) Write(p []byte) { bev.output.Add(p) }

// Enable starts reading, writing or both (bufferevent_enable). It fails if
// the base cannot watch the socket (select, past FD_SETSIZE).
func (bev *Bufferevent) Enable(what event.Events) error {
	bev.enabled |= what & (event.Read | event.Write)
	if bev.fd < 0 {
		return nil // Connect starts what is enabled, once it has a socket
	}
	if what&event.Read != 0 && bev.paused == 0 {
		if err := bev.startReading(); err != nil {
			return err
		}
	}
	if what&event.Write != 0 && bev.output.Len() > 0 && !bev.connecting {
		bev.writeEv.Active(event.Write) // write in the next round
	}
	return nil
}

// startReading watches the socket for data, with the read timeout; on
// io_uring, it asks the kernel to receive.
func (bev *Bufferevent) startReading() error {
	if bev.cio != nil {
		return bev.cio.startReading()
	}
	return bev.readEv.Add(bev.readTimeout)
}

// stopReading stops that: the read event, or the kernel's receive.
func (bev *Bufferevent) stopReading() {
	if bev.cio != nil {
		bev.cio.stopReading()
	}
	bev.readEv.Del()
}

// Disable stops reading, writing or both (bufferevent_disable).
func (bev *Bufferevent) Disable(what event.Events) {
	bev.enabled &^= what
	if what&event.Read != 0 {
		bev.stopReading()
	}
	if what&event.Write != 0 && !bev.connecting {
		bev.writeEv.Del()
	}
}

// SetWatermark sets the low and high watermarks for Read or Write
// (bufferevent_setwatermark). The read callback runs once the input holds
// the read low watermark; reading pauses while it holds the read high
// watermark (0: no limit). The write callback runs once the output drains
// to the write low watermark. Unlike libevent's socket bufferevents, which
// ignore it, the write high watermark bounds the output: reading pauses
// while the output holds more (0: DefaultOutputLimit), so that a peer that
// never reads stops being read from.
func (bev *Bufferevent) SetWatermark(what event.Events, low, high int) {
	if what&event.Read != 0 {
		bev.readLow, bev.readHigh = low, high
		bev.checkInput()
	}
	if what&event.Write != 0 {
		bev.writeLow = low
		bev.outputLimit = high
		if high <= 0 {
			bev.outputLimit = DefaultOutputLimit
		}
		bev.checkOutput()
	}
}

// SetTimeouts sets how long reading may wait for data, and writing for
// room, before the event callback hears of Reading|Timeout or
// Writing|Timeout, and that side is disabled (bufferevent_set_timeouts);
// 0 waits for ever. The read timeout counts only while reading is on and
// not paused; the write timeout only while the socket is full, each write
// that makes progress starting it again. So a peer that never reads, and
// has paused reading, is caught by the write timeout.
func (bev *Bufferevent) SetTimeouts(read, write time.Duration) error {
	bev.readTimeout, bev.writeTimeout = read, write
	if bev.cio != nil {
		bev.cio.restartTimeouts()
		return nil
	}
	if what, _ := bev.readEv.Pending(event.Read); what != 0 {
		bev.readEv.Del()
		if err := bev.readEv.Add(read); err != nil {
			return err
		}
	}
	if what, _ := bev.writeEv.Pending(event.Write); what != 0 {
		bev.writeEv.Del()
		if err := bev.writeEv.Add(write); err != nil {
			return err
		}
	}
	return nil
}

// SetLineTimeout makes input that the read callback leaves where it is
// count against the connection: once the input has held bytes that the
// callback took none of for longer than d, the event callback hears of
// Reading|Timeout, and reading is disabled, as for a read timeout; 0 turns
// it off. A peer that trickles a line a byte at a time, never finishing
// it, restarts the read timeout with every byte: only this ends it.
// libevent has no such thing.
func (bev *Bufferevent) SetLineTimeout(d time.Duration) {
	bev.lineTimeout = d
	bev.stalledSince = time.Time{}
}

// CloseWhenFlushed frees the Bufferevent once everything in its output
// has been written, at once if nothing is left: a peer that half-closed
// still gets every answer.
func (bev *Bufferevent) CloseWhenFlushed() {
	bev.closeWhenFlushed = true
	bev.Disable(event.Read)
	if bev.output.Len() == 0 && !bev.connecting {
		bev.Free()
	}
}

// Free releases the Bufferevent, and closes its socket with CloseOnFree
// (bufferevent_free). It is safe inside the Bufferevent's own callbacks.
func (bev *Bufferevent) Free() {
	if bev.freed {
		return
	}
	bev.freed = true
	if bev.cio != nil {
		bev.cio.free()
	}
	bev.readEv.Free()
	bev.writeEv.Free()
	bev.input.SetCallback(nil)
	bev.output.SetCallback(nil)
	if bev.opts&CloseOnFree != 0 && bev.fd >= 0 {
		unix.Close(bev.fd)
		bev.trace.Printf("close fd %d", bev.fd)
	}
}

// Connect starts connecting the socket to sa without waiting
// (bufferevent_socket_connect); the event callback hears of Connected, or
// of Error. With no socket yet, it opens one.
func (bev *Bufferevent) Connect(sa unix.Sockaddr) error {
	if bev.fd < 0 {
		domain := unix.AF_INET
		if _, ok := sa.(*unix.SockaddrInet6); ok {
			domain = unix.AF_INET6
		}
		fd, err := evutil.Socket(domain, unix.SOCK_STREAM, 0)
		if err != nil {
			return os.NewSyscallError("socket", err)
		}
		if err := evutil.MakeNonblocking(fd); err != nil {
			unix.Close(fd)
			return os.NewSyscallError("fcntl", err)
		}
		bev.setFd(fd)
		// Reading enabled before there was a socket starts now (on
		// io_uring, once connected: see handleWrite).
		if bev.enabled&event.Read != 0 && bev.paused == 0 && bev.cio == nil {
			if err := bev.readEv.Add(bev.readTimeout); err != nil {
				return err
			}
		}
	}
	bev.connecting = true
	switch err := unix.Connect(bev.fd, sa); err {
	case nil:
		bev.writeEv.Active(event.Write) // connected at once; say so in the next round
	case unix.EINPROGRESS, unix.EINTR:
		// The handshake goes on; the socket turns writable when it ends.
		if bev.cio != nil {
			return bev.cio.awaitConnect()
		}
		if err := bev.writeEv.Add(bev.writeTimeout); err != nil {
			return err
		}
	default:
		bev.connecting = false
		return os.NewSyscallError("connect", err)
	}
	return nil
}

// event tells the event callback what happened.
func (bev *Bufferevent) event(what What) {
	if bev.base.Tracing() {
		bev.trace.Printf("fd %d: event %v", bev.fd, what)
	}
	if bev.eventcb != nil {
		bev.eventcb(bev, what)
	}
}

// handleRead runs when the socket is readable, or the read timeout passed.
func (bev *Bufferevent) handleRead(fd int, what event.Events) {
	if what == event.Timeout {
		// Timed out, with nothing to read: data that came in the same round
		// wins, as in libevent.
		bev.Disable(event.Read)
		bev.event(Reading | Timeout)
		return
	}
	limit := MaxRead
	if bev.readHigh > 0 {
		limit = min(limit, bev.readHigh-bev.input.Len())
	}
	if limit <= 0 {
		return // the input is full: reading is paused, or about to be
	}
	// While the read and its callback run, the input may reach its high
	// watermark: whether reading pauses is decided after the callback has
	// taken what it can, not in between (that would pause and resume, two
	// epoll_ctl calls, on every full read).
	bev.inRead = true
	n, err := bev.input.ReadFrom(fd, limit)
	bev.afterRead("read", n, err)
}

// afterRead is what follows a read of n bytes into the input (or one on
// io_uring, a recv, call naming which), err saying why it read none: the
// end of the stream, an error, or the read callback. inRead is on.
func (bev *Bufferevent) afterRead(call string, n int, err error) {
	fd := bev.fd
	if err != nil || n == 0 {
		bev.inRead = false
	}
	switch {
	case err == unix.EAGAIN:
		return
	case err != nil:
		bev.err = os.NewSyscallError(call, err)
		bev.Disable(event.Read)
		bev.event(Reading | Error)
		return
	case n == 0:
		bev.Disable(event.Read)
		bev.trace.Printf("fd %d: %s 0: end of stream", fd, call)
		bev.event(Reading | EOF)
		return
	}
	if bev.base.Tracing() {
		bev.trace.Printf("fd %d: %s %d into input (%d)", fd, call, n, bev.input.Len())
	}
	if bev.input.Len() >= bev.readLow && bev.readcb != nil {
		before := bev.input.Len()
		bev.readcb(bev)
		if bev.lineStalled(before) {
			bev.inRead = false
			bev.Disable(event.Read)
			bev.event(Reading | Timeout)
			return
		}
	}
	bev.inRead = false
	if !bev.freed {
		bev.checkInput()
		bev.flush() // what the callback answered goes out now
	}
}

// lineStalled says whether the read callback, which found before bytes in
// the input, has left them there for longer than the line timeout. Only a
// callback that leaves the input as full as it found it reads the clock.
func (bev *Bufferevent) lineStalled(before int) bool {
	switch left := bev.input.Len(); {
	case bev.lineTimeout == 0 || bev.freed:
		return false
	case left == 0 || left < before:
		bev.stalledSince = time.Time{} // the callback took something: progress
		return false
	case bev.stalledSince.IsZero():
		bev.stalledSince = time.Now()
		return false
	}
	return time.Since(bev.stalledSince) > bev.lineTimeout
}

// handleWrite runs when the socket is writable again, when a connect
// ends, when output added outside the read callback is due, or when the
// write timeout passed.
func (bev *Bufferevent) handleWrite(_ int, what event.Events) {
	if what == event.Timeout {
		if bev.cio != nil && !bev.cio.sending && !bev.connecting {
			return // on io_uring: the output drained meanwhile (completion.send)
		}
		bev.Disable(event.Write)
		bev.event(Writing | Timeout)
		return
	}
	if bev.connecting {
		bev.connecting = false
		bev.writeEv.Del()
		soerr, err := unix.GetsockoptInt(bev.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && soerr != 0 {
			err = unix.Errno(soerr)
		}
		if err != nil {
			bev.err = os.NewSyscallError("connect", err)
			bev.event(Error)
			return
		}
		bev.event(Connected)
		if bev.freed {
			return
		}
		if bev.cio != nil && bev.enabled&event.Read != 0 && bev.paused == 0 {
			if err := bev.cio.startReading(); err != nil {
				bev.err = err
				bev.event(Reading | Error)
				return
			}
		}
	}
	bev.flush()
}

// flush writes what the output holds, as much as the socket takes: all of
// it, usually, and then there is nothing to wait for; the write event is
// pending only while the socket is full.
func (bev *Bufferevent) flush() {
	if bev.enabled&event.Write == 0 || bev.connecting {
		return
	}
	if bev.cio != nil {
		bev.cio.send() // the kernel writes; sent hears how much
		return
	}
	wrote := 0
	for bev.output.Len() > 0 {
		n, err := bev.output.WriteTo(bev.fd)
		if bev.freed {
			return // a callback, told of the drained output, freed it
		}
		if err == unix.EAGAIN {
			bev.trace.Printf("fd %d: socket full, output %d: waiting to write", bev.fd, bev.output.Len())
			if err := bev.writeEv.Add(bev.writeTimeout); err != nil {
				bev.err = err
				bev.event(Writing | Error)
			}
			return
		}
		if err != nil {
			bev.err = os.NewSyscallError("write", err)
			bev.Disable(event.Write)
			bev.event(Writing | Error)
			return
		}
		wrote += n
		if bev.base.Tracing() {
			bev.trace.Printf("fd %d: wrote %d (output %d)", bev.fd, n, bev.output.Len())
		}
	}
	bev.drained(wrote)
}

// drained follows writes that emptied the output, wrote bytes of it.
func (bev *Bufferevent) drained(wrote int) {
	if bev.cio == nil { // on io_uring the write timer stays: see completion.send
		bev.writeEv.Del()
	}
	if bev.closeWhenFlushed {
		bev.Free()
		return
	}
	// The write callback hears of output that drained, as in libevent:
	// not of a round in which nothing was written.
	if wrote > 0 && bev.writecb != nil && bev.output.Len() <= bev.writeLow {
		bev.writecb(bev)
	}
}

// outputChanged hears of every change to the output: additions are to be
// written (now, if the read callback is running: flush follows it; else in
// the base's next round), and the output's size may pause or resume
// reading.
func (bev *Bufferevent) outputChanged(c evbuffer.Change) {
	if c.Added > 0 && !bev.inRead && bev.enabled&event.Write != 0 && !bev.connecting {
		if bev.cio != nil {
			bev.cio.send() // to the kernel at the next wait, with everything else
		} else {
			bev.writeEv.Active(event.Write)
		}
	}
	bev.checkOutput()
}

// inputChanged hears of every change to the input: a drained input may
// resume reading (but see handleRead).
func (bev *Bufferevent) inputChanged(evbuffer.Change) {
	if !bev.inRead {
		bev.checkInput()
	}
}

// checkInput pauses reading while the input holds the read high watermark.
func (bev *Bufferevent) checkInput() {
	bev.pause(pausedInput, bev.readHigh > 0 && bev.input.Len() >= bev.readHigh, "input", bev.input.Len())
}

// checkOutput pauses reading while the output holds more than its bound.
func (bev *Bufferevent) checkOutput() {
	bev.pause(pausedOutput, bev.output.Len() > bev.outputLimit, "output", bev.output.Len())
}

// pause sets or clears one reason for reading to be paused, and starts or
// stops reading when that changes whether any reason is left.
func (bev *Bufferevent) pause(reason int, on bool, buf string, n int) {
	was := bev.paused
	if on {
		bev.paused |= reason
	} else {
		bev.paused &^= reason
	}
	if bev.freed || bev.enabled&event.Read == 0 || (was == 0) == (bev.paused == 0) {
		return
	}
	if bev.paused != 0 {
		bev.trace.Printf("fd %d: %s %d at its watermark: reading paused", bev.fd, buf, n)
		bev.stopReading()
	} else {
		bev.trace.Printf("fd %d: %s %d below its watermark: reading resumed", bev.fd, buf, n)
		if err := bev.startReading(); err != nil {
			bev.err = fmt.Errorf("resume reading: %w", err)
			bev.event(Reading | Error)
		}
	}
}
