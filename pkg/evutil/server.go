package evutil

// What every server of the ladder does that the book's do not, once, so
// that each stage calls it in one line: where to listen, what to do when
// accept fails, and how to end on SIGINT or SIGTERM.

import (
	"fmt"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"
)

// ParseSockaddrPort turns a -listen value, "host:port", into the address
// unix.Bind takes and the family unix.Socket needs, like libevent's
// evutil_parse_sockaddr_port: the book's sin, filled in by hand with
// AF_INET, INADDR_ANY and htons(40713). The host is an IP literal (IPv4 or
// IPv6, "[::1]:0"), a name that resolves, or empty for every IPv4 address;
// port 0 picks a free port.
func ParseSockaddrPort(addr string) (sa unix.Sockaddr, domain int, err error) {
	ap, err := resolve(addr)
	if err != nil {
		return nil, 0, err
	}
	sa, domain = SockaddrOf(ap)
	return sa, domain, nil
}

// AcceptPause is how long a server stops accepting when accept fails for
// want of descriptors or memory.
const AcceptPause = 100 * time.Millisecond

// AcceptPause says how long a server should stop accepting after accept
// failed with err, and logs the failure if the operator should know, at
// most once per the Throttle's Every with the rest: 0 to go on at once (a
// signal, a client that left before it was accepted: not logged; anything
// else: logged); AcceptPause, logged, when the descriptors or memory ran
// out.
//
// The book's servers print every failure and call accept again at once.
// When the descriptors have run out (EMFILE, ENFILE), accept fails again
// at once, every time, while the client stays queued in the kernel, so the
// listener stays readable: such a server spins at 100% of a core and
// floods its log until a descriptor comes free.
func (t *Throttle) AcceptPause(err error) time.Duration {
	switch err {
	case unix.EINTR, unix.ECONNABORTED:
		return 0
	case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
		t.Printf("accept: %v; pausing", err)
		return AcceptPause
	}
	t.Printf("accept: %v", err)
	return 0
}

// ExitOnSignal ends the program with exit status 0 when SIGINT or SIGTERM
// arrives; the kernel closes every connection as it exits. Without it, the
// signal's default action kills the program, and its status says so.
func ExitOnSignal() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, unix.SIGINT, unix.SIGTERM)
	go func() {
		<-stop
		os.Exit(0)
	}()
}

// ListenError formats a failure to listen as the contract asks: the
// -listen value as given, the call that failed, the system's reason.
func ListenError(addr, call string, err error) error {
	if call == "" {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return fmt.Errorf("listen %s: %w", addr, os.NewSyscallError(call, err))
}

// The runtime's poller starts before main, in every program that imports
// this package: see startRuntimePoller.
func init() {
	startRuntimePoller()
}
