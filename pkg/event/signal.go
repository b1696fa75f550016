package event

// Signals (libevent's signal.c), and the base's own pipe that brings them,
// and LoopExit and LoopBreak from other goroutines, into the loop.

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// wake makes the loop's wait return, by writing to the base's own pipe;
// after Free, it does nothing (the number may be another file's by then).
func (b *Base) wake() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.freed {
		return nil
	}
	_, err := unix.Write(b.notifyW, []byte{0})
	if err == unix.EAGAIN {
		return nil // the pipe is full: the loop will wake anyway
	}
	return err
}

// notified empties the base's pipe, and does what was asked: exits to
// schedule, signals whose events to make active.
func (b *Base) notified() {
	var buf [256]byte
	for {
		if n, err := unix.Read(b.notifyR, buf[:]); n <= 0 || err != nil {
			break
		}
	}
	b.scheduleExits()
	for sig := range b.sigCount {
		// Every count is taken, so that a signal that came while no
		// event watched it is not handed to one added later.
		n := b.sigCount[sig].Swap(0)
		for _, ev := range b.signals[syscall.Signal(sig)] {
			if n > 0 {
				ev.ncalls += n
				b.activate(ev, Signal)
			}
		}
	}
}

// A sigWatcher delivers one signal into the loop: Go's os/signal catches
// it and sends it on ch; a goroutine counts it and wakes the loop through
// the base's pipe; the loop runs the callbacks (notified). Each signal has
// its own channel, so that watching one stops without touching the others:
// os/signal can stop a channel only for every signal it carries at once,
// and a signal caught by nobody, even for a moment, may kill the process.
type sigWatcher struct {
	ch   chan os.Signal
	done chan struct{} // closed when the goroutine ends
}

// watchSignal starts delivering the signal ev.fd into the loop.
func (b *Base) watchSignal(ev *Event) error {
	sig := syscall.Signal(ev.fd)
	if sig <= 0 || int(sig) >= len(b.sigCount) {
		return fmt.Errorf("event: no signal %d", sig)
	}
	if b.sigWatch[sig] == nil {
		w := &sigWatcher{ch: make(chan os.Signal, 64), done: make(chan struct{})}
		b.sigWatch[sig] = w
		b.sigCount[sig].Store(0)
		go func() {
			defer close(w.done)
			for range w.ch {
				b.sigCount[sig].Add(1)
				b.wake() // fails only once the base is freed: nobody to wake
			}
		}()
		signal.Notify(w.ch, sig)
	}
	b.signals[sig] = append(b.signals[sig], ev)
	ev.watched = true
	return nil
}

// unwatchSignal stops delivering ev's signal, once no event waits for it.
func (b *Base) unwatchSignal(ev *Event) {
	sig := syscall.Signal(ev.fd)
	rest := remove(b.signals[sig], ev)
	if len(rest) > 0 {
		b.signals[sig] = rest
		return
	}
	delete(b.signals, sig)
	b.stopSignal(sig)
}

// stopSignal stops sig's watcher, and waits for its goroutine to end.
func (b *Base) stopSignal(sig syscall.Signal) {
	w := b.sigWatch[sig]
	delete(b.sigWatch, sig)
	signal.Stop(w.ch) // after it, nothing more is sent on ch
	close(w.ch)
	<-w.done
}
