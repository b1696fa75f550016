package bufferevent

// Bufferevents on completion IO: libevent's bufferevent_async.c, which
// does for Windows' IOCP what this file does for Linux's io_uring.
//
// The book ends by saying that a program written with bufferevents need
// not care whether the kernel reports readiness or completion. This file
// is that claim, in code. On an epoll base, a Bufferevent waits until its
// socket is readable, and then reads (handleRead); on an io_uring base
// (event.Base.Uring), it asks the kernel to receive, and is told when the
// kernel has (completion.received). Writing is the same
// turn: on epoll it writes until the socket is full and then waits to be
// writable; here it hands the kernel the output's first bytes and is told
// how many went (completion.sent). Everything above (the input and
// output, the callbacks, the watermarks, the timeouts) is the same code,
// so 05's main.go runs on either, unchanged.
//
// As libevent's IOCP bufferevents do, each receive asks for at most what
// the input has room for below its read high watermark (and MaxRead), and
// the next is asked for once it has completed and the read callback has
// run: the watermark bounds the input exactly, as on epoll. (A multishot
// recv, which 07 uses, goes on receiving until it is cancelled; what comes
// before the cancel lands would overshoot the watermark.)
//
// What the kernel is given, it owns until it says it is done. A receive
// takes one of the base's provided buffers only when data comes, and the
// bytes are copied into the input at once, the buffer given back: so an
// idle connection holds no buffer. A send reads the output's first chunk
// where it is, so nothing may drain the output while it is in flight, and
// only sent does; adding to the output is safe (evbuffer.Front). Free
// cancels both, and the Bufferevent stays known to the base until their
// last completions have come.

import (
	"os"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/event"
	"tinyasync/pkg/uring"
)

// The tags of a Bufferevent's operations, in their SQEs' user_data.
const (
	tagRecv = 1 + iota // a recv into a provided buffer
	tagSend            // a send of the output's first chunk
)

// completion is what a Bufferevent on io_uring keeps of what the kernel
// is doing for it.
type completion struct {
	bev       *Bufferevent
	u         *event.Uring
	id        uint32       // the base's name for it, in the SQEs' user_data
	receiving bool         // a recv is in flight
	cancelled bool         // and cancelled: its CQE is on the way
	sending   bool         // a send is in flight: the output's first bytes are the kernel's
	connectEv *event.Event // waits for a Connect's handshake
}

// newCompletion makes bev a Bufferevent on io_uring. Its read and write
// events are timers: the read and write timeouts, and (writeEv.Active) a
// write in the next round.
func newCompletion(bev *Bufferevent, u *event.Uring) *completion {
	c := &completion{bev: bev, u: u}
	c.id = u.Register(c)
	bev.readEv = event.NewTimer(bev.base, bev.handleRead)
	bev.writeEv = event.NewTimer(bev.base, bev.handleWrite)
	return c
}

// startReading submits a recv, unless one is in flight (or cancelled, and
// received will submit the next when its CQE comes), and starts the read
// timeout.
func (c *completion) startReading() error {
	bev := c.bev
	if bev.fd < 0 || bev.connecting {
		return nil // Connect's handshake starts it
	}
	if !c.receiving {
		c.recv()
	}
	if bev.readTimeout > 0 {
		return bev.readEv.Add(bev.readTimeout)
	}
	return nil
}

// recv submits a recv of what the input has room for: the kernel receives
// when data comes, into a buffer of the base's, and posts a CQE.
func (c *completion) recv() {
	bev := c.bev
	room := MaxRead
	if bev.readHigh > 0 {
		room = min(room, bev.readHigh-bev.input.Len())
	}
	if room <= 0 {
		return // the input is full: reading is paused, or about to be
	}
	if bev.base.Tracing() {
		bev.trace.Printf("fd %d: submit recv %d", bev.fd, room)
	}
	c.u.SQE(c.id, tagRecv).PrepRecv(bev.fd, c.u.Buffers().Group(), room)
	c.receiving, c.cancelled = true, false
}

// stopReading cancels the recv. If the kernel received before the cancel
// landed, the bytes still come, and go into the input: none is lost.
func (c *completion) stopReading() {
	if c.receiving && !c.cancelled {
		c.bev.trace.Printf("fd %d: submit cancel recv", c.bev.fd)
		c.u.Cancel(c.id, tagRecv)
		c.cancelled = true
	}
}

// wantRecv reports whether the Bufferevent is to be receiving.
func (c *completion) wantRecv() bool {
	bev := c.bev
	return !bev.freed && bev.fd >= 0 && !bev.connecting && bev.enabled&event.Read != 0 && bev.paused == 0
}

// Complete hears of a CQE of one of the Bufferevent's operations.
func (c *completion) Complete(tag uint8, cqe uring.CQE) {
	switch tag {
	case tagRecv:
		c.received(cqe)
	case tagSend:
		c.sent(cqe)
	}
	if c.bev.freed && !c.receiving && !c.sending && c.id != 0 {
		c.u.Unregister(c.id) // the last completion: the id is free for another
		c.id = 0
	}
}

// received is handleRead's turn on io_uring: the kernel has received, and
// the bytes go into the input; then the same as after a read.
func (c *completion) received(cqe uring.CQE) {
	bev := c.bev
	c.receiving, c.cancelled = false, false // below, the next is submitted, or not
	bev.inRead = true
	n, err := 0, cqe.Err()
	if id, ok := cqe.BufferID(); ok {
		if cqe.Res > 0 && !bev.freed {
			n = int(cqe.Res)
			bev.input.Add(c.u.Buffers().Bytes(id, n))
		}
		c.u.Buffers().Recycle(id) // at once: the buffers are every connection's
	}
	if bev.freed {
		bev.inRead = false
		return
	}
	if err == unix.ENOBUFS || err == unix.ECANCELED {
		// The buffers ran dry, the data waiting in the socket (asked for
		// again below: by then they are back, each recycled as its CQE
		// came); or the recv was cancelled. Nothing received, as EAGAIN
		// for a read.
		err = unix.EAGAIN
	}
	if n > 0 && bev.readTimeout > 0 && c.wantRecv() {
		// Data: the read timeout starts again; while its timer is pending,
		// that costs nothing (event.timerHeap.set). A timer that came due
		// in this same round has its callback queued: Del drops it, and
		// the data wins, as on epoll.
		if what, _ := bev.readEv.Pending(event.Timeout); what == 0 {
			bev.readEv.Del()
		}
		bev.readEv.Add(bev.readTimeout)
	}
	bev.afterRead("recv", n, err)
	if !c.receiving && c.wantRecv() {
		c.recv()
	}
}

// send hands the kernel the output's first chunk, unless a send is in
// flight: one at a time, so that the bytes go in order. Each send starts
// the write timeout again: it counts while the kernel cannot send. Its
// timer is not stopped when the output drains, which would cost two
// moves in the heap of timers per answer: it stays pending, and if it
// comes due with no send in flight, handleWrite lets it go.
func (c *completion) send() {
	bev := c.bev
	if c.sending || bev.freed || bev.fd < 0 || bev.output.Len() == 0 {
		return
	}
	p := bev.output.Front()
	if bev.base.Tracing() {
		bev.trace.Printf("fd %d: submit send %d (output %d)", bev.fd, len(p), bev.output.Len())
	}
	// MSG_NOSIGNAL: a peer that has gone fails the send with EPIPE, and
	// raises no SIGPIPE.
	c.u.SQE(c.id, tagSend).PrepSend(bev.fd, p, unix.MSG_NOSIGNAL)
	c.sending = true
	if bev.writeTimeout > 0 {
		bev.writeEv.Add(bev.writeTimeout)
	}
}

// sent is flush's turn on io_uring: the kernel has sent cqe.Res bytes of
// the output's first chunk, which now drain.
func (c *completion) sent(cqe uring.CQE) {
	bev := c.bev
	c.sending = false
	if bev.freed {
		return
	}
	if err := cqe.Err(); err == unix.ECANCELED {
		// Cancelled when the loop ended (event.Uring.quiesce), before the
		// kernel sent anything: send it in the next.
		c.send()
		return
	} else if err != nil {
		bev.err = os.NewSyscallError("send", err)
		bev.Disable(event.Write)
		bev.event(Writing | Error)
		return
	}
	bev.output.Drain(int(cqe.Res))
	if bev.base.Tracing() {
		bev.trace.Printf("fd %d: sent %d (output %d)", bev.fd, cqe.Res, bev.output.Len())
	}
	if bev.output.Len() > 0 {
		if bev.enabled&event.Write != 0 {
			c.send()
		}
		return
	}
	bev.drained(int(cqe.Res))
}

// restartTimeouts applies new timeouts (SetTimeouts) to what is under way.
func (c *completion) restartTimeouts() {
	bev := c.bev
	bev.readEv.Del()
	if c.receiving && !c.cancelled && bev.readTimeout > 0 {
		bev.readEv.Add(bev.readTimeout)
	}
	bev.writeEv.Del()
	if c.sending && bev.writeTimeout > 0 {
		bev.writeEv.Add(bev.writeTimeout)
	}
}

// awaitConnect waits for Connect's handshake, as on epoll: until the
// socket is writable (a poll in the ring), or the write timeout.
func (c *completion) awaitConnect() error {
	bev := c.bev
	c.connectEv = event.New(bev.base, bev.fd, event.Write, func(_ int, what event.Events) {
		c.connectEv.Free()
		c.connectEv = nil
		bev.handleWrite(bev.fd, what)
	})
	return c.connectEv.Add(bev.writeTimeout)
}

// free cancels what is in flight; Complete lets the id go once the last
// CQE has come. The socket may be closed at once: the kernel holds the
// socket itself while it works on it, not its number.
func (c *completion) free() {
	c.stopReading()
	if c.sending {
		c.u.Cancel(c.id, tagSend)
	}
	if c.connectEv != nil {
		c.connectEv.Free()
		c.connectEv = nil
	}
	if !c.receiving && !c.sending {
		c.u.Unregister(c.id)
		c.id = 0
	}
}
