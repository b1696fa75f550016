package event

import (
	"time"

	"golang.org/x/sys/unix"
)

// pollBackend is poll(2): no cap on descriptor numbers, unlike select, but
// the whole list goes to the kernel on every call, and comes back to be
// scanned, however few are ready.
type pollBackend struct {
	fds   []unix.PollFd
	index map[int]int // where each descriptor is in fds
}

func newPoll() (backend, error) {
	return &pollBackend{index: map[int]int{}}, nil
}

func (p *pollBackend) name() string        { return "poll" }
func (p *pollBackend) edgeTriggered() bool { return false }

func pollEvents(in Events) int16 {
	var ev int16
	if in&Read != 0 {
		ev |= unix.POLLIN
	}
	if in&Write != 0 {
		ev |= unix.POLLOUT
	}
	return ev
}

func (p *pollBackend) add(fd int, old, new Events) error {
	if i, ok := p.index[fd]; ok {
		p.fds[i].Events = pollEvents(new)
		return nil
	}
	p.index[fd] = len(p.fds)
	p.fds = append(p.fds, unix.PollFd{Fd: int32(fd), Events: pollEvents(new)})
	return nil
}

func (p *pollBackend) del(fd int, old, new Events) error {
	i, ok := p.index[fd]
	if !ok {
		return nil
	}
	if new&(Read|Write) != 0 {
		p.fds[i].Events = pollEvents(new)
		return nil
	}
	last := len(p.fds) - 1
	p.fds[i] = p.fds[last]
	p.index[int(p.fds[i].Fd)] = i
	p.fds = p.fds[:last]
	delete(p.index, fd)
	return nil
}

func (p *pollBackend) dispatch(timeout time.Duration, ready func(int, Events)) (int, error) {
	n, err := unix.Poll(p.fds, msTimeout(timeout))
	if err != nil || n == 0 {
		return 0, err
	}
	for _, pfd := range p.fds {
		var what Events
		if pfd.Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
			what |= Read
		}
		if pfd.Revents&(unix.POLLOUT|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
			what |= Write
		}
		if what != 0 {
			ready(int(pfd.Fd), what)
		}
	}
	return n, nil
}

func (p *pollBackend) close() error { return nil }
