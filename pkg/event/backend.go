package event

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// A backend is one of the kernel's readiness interfaces (epoll, kqueue,
// poll, select; io_uring's polls) behind the few calls the Base needs: libevent's struct
// eventop (event-internal.h), as Go.
//
// The contract every backend keeps:
//
//   - The Base tells a backend about changes only. add(fd, old, new) says
//     that fd's interest grows from old to new (old may be empty: a new
//     descriptor); del(fd, old, new) that it shrinks from old to new (new
//     may be empty: forget the descriptor). Interest is Read and Write,
//     with ET when every event on the descriptor asked for it. A backend
//     that cannot watch a descriptor (select, past FD_SETSIZE) or does not
//     do edge triggering says so with an error, never a panic.
//   - dispatch waits for readiness at most timeout: a negative timeout
//     waits until something is ready, zero only looks, a positive one waits
//     at most that long, rounded up to what the call can express (epoll and
//     poll count whole milliseconds; a wait of 0.3 ms must not become a
//     busy loop of zero-length waits). It reports ready descriptors through
//     ready(fd, what), what being Read, Write or both, once per descriptor
//     or (kqueue) once per kind of readiness, the base adding them up; a
//     hang-up or an error on the descriptor counts as both, so that the
//     callbacks find out by reading or writing. Interrupted by a signal, it
//     returns unix.EINTR at once: the loop recomputes its deadline and
//     calls again.
//   - A backend reports only descriptors it was told about, and nothing
//     about a descriptor after del forgot it.
//   - close releases what the backend holds (its epoll or kqueue
//     descriptor).
//
// Backends are not safe for concurrent use; the Base calls them from its
// loop's goroutine only.
type backend interface {
	name() string
	edgeTriggered() bool // whether ET is supported
	add(fd int, old, new Events) error
	del(fd int, old, new Events) error
	dispatch(timeout time.Duration, ready func(fd int, what Events)) (n int, err error)
	close() error
}

// A method is a backend's name, how to tell if this system has it, and how
// to make one.
type method struct {
	name string
	init func() (backend, error)
}

// SupportedMethods returns the backends this system has, the most
// efficient first: the order in which NewBase tries them.
func SupportedMethods() []string {
	var names []string
	for _, m := range methods {
		names = append(names, m.name)
	}
	return names
}

// A Config changes how NewBaseWithConfig picks a backend, like libevent's
// struct event_config.
type Config struct {
	avoid     map[string]bool
	ignoreEnv bool
}

// NewConfig returns a Config that changes nothing.
func NewConfig() *Config {
	return &Config{avoid: map[string]bool{}}
}

// AvoidMethod rules out the backend called name ("epoll"), like
// event_config_avoid_method.
func (c *Config) AvoidMethod(name string) {
	c.avoid[name] = true
}

// IgnoreEnv makes the Base ignore EVENT_NOEPOLL and its kind, like
// EVENT_BASE_FLAG_IGNORE_ENV.
func (c *Config) IgnoreEnv() {
	c.ignoreEnv = true
}

// pickBackend makes the first backend of the preference list that the
// configuration and the environment allow and that this system can start.
// As in libevent, EVENT_NOEPOLL, EVENT_NOKQUEUE, EVENT_NOPOLL and
// EVENT_NOSELECT, set to anything but the empty string, rule one out.
//
// EVENT_IOURING, set so, asks for io_uring, as a libevent program asks
// for IOCP: the base uses it, or NewBase fails and says why (an older
// kernel, io_uring_disabled, a container's seccomp profile). A server
// told to use it should not quietly fall back to epoll.
func pickBackend(c *Config) (backend, error) {
	if !c.ignoreEnv && os.Getenv("EVENT_IOURING") != "" && !c.avoid["io_uring"] {
		be, err := newUring()
		if err != nil {
			return nil, fmt.Errorf("event: EVENT_IOURING is set, but %w", err)
		}
		return be, nil
	}
	var tried []string
	for _, m := range methods {
		if c.avoid[m.name] {
			continue
		}
		// Unlike libevent, a variable set to the empty string rules
		// nothing out (CONTRACT.md: any non-empty value).
		if !c.ignoreEnv && os.Getenv("EVENT_NO"+strings.ToUpper(m.name)) != "" {
			continue
		}
		be, err := m.init()
		if err == nil {
			return be, nil
		}
		tried = append(tried, fmt.Sprintf("%s: %v", m.name, err))
	}
	if len(tried) == 0 {
		return nil, fmt.Errorf("event: every method was ruled out (supported: %s)", strings.Join(SupportedMethods(), ", "))
	}
	return nil, fmt.Errorf("event: no method works: %s", strings.Join(tried, "; "))
}

// maxWait is the longest wait a backend asks for. epoll_wait and poll take
// their timeout as a 32-bit count of milliseconds, and read a longer one as
// negative, that is, as no limit at all; so a timer weeks away would be
// missed. As libevent's epoll.c (MAX_EPOLL_TIMEOUT_MSEC), wait at most 35
// minutes, then look again.
const maxWait = 35 * time.Minute

// msTimeout converts a dispatch timeout to what epoll_wait and poll take:
// -1 for no limit, else milliseconds, rounded up, and at most maxWait.
func msTimeout(d time.Duration) int {
	if d < 0 {
		return -1
	}
	return int((min(d, maxWait) + time.Millisecond - 1) / time.Millisecond)
}
