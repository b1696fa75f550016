//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package event

import (
	"time"

	"golang.org/x/sys/unix"
)

// kqueue is the BSDs' kqueue(2): like epoll, the kernel keeps the watched
// set; each descriptor has a filter for reading and one for writing.
type kqueue struct {
	fd     int
	events []unix.Kevent_t // what a wait returns; grows when it comes back full
}

func newKqueue() (backend, error) {
	fd, err := unix.Kqueue()
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(fd)
	return &kqueue{fd: fd, events: make([]unix.Kevent_t, 32)}, nil
}

func (k *kqueue) name() string        { return "kqueue" }
func (k *kqueue) edgeTriggered() bool { return true }

// change applies the filter changes from old to new, one filter at a
// time; if adding one fails, it takes back those it added, so that the
// kernel watches exactly what the base believes.
func (k *kqueue) change(fd int, old, new Events) error {
	var added []int
	for _, f := range []struct {
		flag   Events
		filter int
	}{{Read, unix.EVFILT_READ}, {Write, unix.EVFILT_WRITE}} {
		var kev unix.Kevent_t
		switch {
		case new&f.flag != 0 && old&f.flag == 0:
			flags := unix.EV_ADD
			if new&ET != 0 {
				flags |= unix.EV_CLEAR // kqueue's edge triggering
			}
			unix.SetKevent(&kev, fd, f.filter, flags)
		case old&f.flag != 0 && new&f.flag == 0:
			unix.SetKevent(&kev, fd, f.filter, unix.EV_DELETE)
		default:
			continue
		}
		if _, err := unix.Kevent(k.fd, []unix.Kevent_t{kev}, nil, nil); err != nil {
			for _, filter := range added {
				unix.SetKevent(&kev, fd, filter, unix.EV_DELETE)
				unix.Kevent(k.fd, []unix.Kevent_t{kev}, nil, nil)
			}
			return err
		}
		if kev.Flags&unix.EV_ADD != 0 {
			added = append(added, f.filter)
		}
	}
	return nil
}

func (k *kqueue) add(fd int, old, new Events) error {
	return k.change(fd, old, new)
}

func (k *kqueue) del(fd int, old, new Events) error {
	err := k.change(fd, old, new)
	if err == unix.ENOENT || err == unix.EBADF {
		return nil // closed already: the kernel has forgotten it
	}
	return err
}

func (k *kqueue) dispatch(timeout time.Duration, ready func(int, Events)) (int, error) {
	var ts *unix.Timespec
	if timeout >= 0 {
		t := unix.NsecToTimespec(timeout.Nanoseconds())
		ts = &t
	}
	n, err := unix.Kevent(k.fd, nil, k.events, ts)
	if err != nil {
		return 0, err
	}
	for _, kev := range k.events[:n] {
		var what Events
		switch {
		case kev.Flags&unix.EV_EOF != 0:
			what = Read | Write // a hang-up: let the callbacks find out
		case kev.Filter == unix.EVFILT_READ:
			what = Read
		case kev.Filter == unix.EVFILT_WRITE:
			what = Write
		}
		ready(int(kev.Ident), what)
	}
	if n == len(k.events) && n < 4096 {
		k.events = make([]unix.Kevent_t, 2*n)
	}
	return n, nil
}

func (k *kqueue) close() error {
	return unix.Close(k.fd)
}
