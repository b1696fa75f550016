// Package evutil holds the socket helpers the stages share, named after
// libevent's evutil, the part of libevent that smooths over the
// differences between systems: evutil_make_socket_nonblocking,
// evutil_parse_sockaddr_port, evutil_format_sockaddr_port.
//
// It holds only what the book itself factors out, or what every stage does
// that the book's do not (server.go). The calls a stage is about (socket,
// bind, listen, accept, read, write, select, fork) stay in that stage's
// main.go, where a student reads them. Listen, which makes all of a
// listener in one call, is for the tests' own servers.
package evutil

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultListen is where a server listens unless told otherwise: the book's
// port, on loopback, so that a classroom laptop serves nobody else unless
// asked to (-listen :40713).
const DefaultListen = "127.0.0.1:40713"

// Listen opens a TCP socket listening on addr, a "host:port" where host is
// an IP literal (IPv4 or IPv6, "[::1]:0"), a name that resolves, or empty
// for every IPv4 address, and port 0 picks a free port. The socket is
// blocking and close-on-exec; the caller makes it nonblocking if it wants.
//
// Errors name the address as given and the call that failed, like
// "listen 127.0.0.1:40713: bind: address already in use".
func Listen(addr string) (int, error) {
	ap, err := resolve(addr)
	if err != nil {
		return -1, fmt.Errorf("listen %s: %w", addr, err)
	}
	sa, domain := SockaddrOf(ap)
	fd, err := Socket(domain, unix.SOCK_STREAM, 0)
	if err != nil {
		return -1, fmt.Errorf("listen %s: %w", addr, os.NewSyscallError("socket", err))
	}
	// SO_REUSEADDR and a backlog of SOMAXCONN, as the stages set them
	// (03-select-server/main.go says why).
	err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err != nil {
		err = os.NewSyscallError("setsockopt", err)
	} else if err = unix.Bind(fd, sa); err != nil {
		err = os.NewSyscallError("bind", err)
	} else if err = unix.Listen(fd, unix.SOMAXCONN); err != nil {
		err = os.NewSyscallError("listen", err)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen %s: %w", addr, err)
	}
	return fd, nil
}

// resolve turns "host:port" into one address to bind.
func resolve(addr string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return netip.AddrPort{}, errors.New(ae.Err)
		}
		return netip.AddrPort{}, err
	}
	pn, err := net.LookupPort("tcp", port)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("invalid port %q", port)
	}
	if host == "" {
		// Like the book's sin_addr = 0 (INADDR_ANY): every IPv4 address.
		return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(pn)), nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), uint16(pn)), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(pn)), nil
}

// SockaddrOf converts ap to the form unix.Bind and unix.Connect take, and
// returns the address family unix.Socket needs for it.
func SockaddrOf(ap netip.AddrPort) (sa unix.Sockaddr, domain int) {
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}, unix.AF_INET
	}
	sa6 := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16()}
	if zone := ip.Zone(); zone != "" {
		if ifi, err := net.InterfaceByName(zone); err == nil {
			sa6.ZoneId = uint32(ifi.Index)
		} else if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
			sa6.ZoneId = uint32(n)
		}
	}
	return sa6, unix.AF_INET6
}

// SockaddrString formats an IPv4 or IPv6 socket address as host:port, in
// net.JoinHostPort form ("127.0.0.1:40713", "[::1]:40713"), like libevent's
// evutil_format_sockaddr_port. Other families are shown by their type.
func SockaddrString(sa unix.Sockaddr) string {
	if ap := sockaddrAddrPort(sa); ap.IsValid() {
		return ap.String()
	}
	return fmt.Sprintf("%T", sa)
}

// sockaddrAddrPort returns an IPv4 or IPv6 socket address as an AddrPort;
// the zero AddrPort for any other family.
func sockaddrAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(withZone(netip.AddrFrom16(sa.Addr), sa.ZoneId), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// withZone gives an IPv6 address its zone: the interface's name, or else
// its number (fe80::1%eth0, fe80::1%2).
func withZone(ip netip.Addr, id uint32) netip.Addr {
	if id == 0 {
		return ip
	}
	zone := strconv.FormatUint(uint64(id), 10)
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		zone = ifi.Name
	}
	return ip.WithZone(zone)
}

// LocalAddr returns the address a socket is bound to, formatted by
// SockaddrString. After Listen on port 0, it tells which port was picked.
func LocalAddr(fd int) (string, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return "", os.NewSyscallError("getsockname", err)
	}
	return SockaddrString(sa), nil
}

// MakeNonblocking puts fd in nonblocking mode, like the book's
// make_nonblocking and libevent's evutil_make_socket_nonblocking, so that a
// read, write or accept that cannot make progress fails with EAGAIN instead
// of waiting.
func MakeNonblocking(fd int) error {
	return unix.SetNonblock(fd, true)
}

// IgnoringEINTR calls fn until it fails with something other than EINTR.
//
// A signal that arrives while a system call waits can make it fail with
// EINTR before it did anything. Go installs its signal handlers with
// SA_RESTART, which makes the kernel resume most calls itself, but not all
// (select, poll and epoll_wait never resume, see signal(7)). A signal can
// come at any time: SIGWINCH from a terminal, SIGPROF from a profiler, or
// SIGURG, which Go's runtime sends to preempt a thread running Go code (one
// blocked in a system call rarely gets it). Retrying is safe for read,
// write and accept, which did nothing when they report EINTR.
// It is wrong for close (the descriptor is gone whatever close reports, and
// may already be another file's) and for connect (an interrupted connect
// goes on in the background and a second call fails with EALREADY).
func IgnoringEINTR(fn func() error) error {
	for {
		err := fn()
		if err != unix.EINTR {
			return err
		}
	}
}

// IgnoringEINTRIO is IgnoringEINTR for unix.Read and unix.Write, after Go's
// internal/poll: n, err := evutil.IgnoringEINTRIO(unix.Read, fd, buf).
func IgnoringEINTRIO(fn func(fd int, p []byte) (int, error), fd int, p []byte) (int, error) {
	for {
		n, err := fn(fd, p)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// startRuntimePoller makes Go's runtime open, now, the descriptors it keeps
// for its own network poller and timers (on Linux, an epoll instance and
// an eventfd). The runtime opens them the first time anything waits on a
// timer: a goroutine's sleep, or, sooner or later, the runtime's own
// memory scavenger. If that first time comes when the program's
// descriptors have run out, the runtime cannot open them, and ends the
// program: "fatal error: runtime: netpollinit failed". A C program has no
// such hidden descriptors. This package's init calls it, before any
// server's main runs.
func startRuntimePoller() {
	time.Sleep(time.Nanosecond)
}

// WriteAll writes all of p to the blocking socket fd.
//
// The book asks "XXX Can send succeed partially?" Yes. A blocking send
// normally waits until the kernel has taken every byte, but it returns
// early, with the count so far, when a signal the process catches arrives
// after it took some (send(2), signal(7)): SIGCHLD as a child exits,
// SIGWINCH as a terminal is resized, any signal os/signal is asked for. It
// also stops short when an error (a reset) follows some progress, and on a
// nonblocking socket a partial send is the rule. So WriteAll calls write
// again with what is left, until nothing is.
func WriteAll(fd int, p []byte) error {
	return writeAll(fd, p, unix.Write)
}

// writeAll is WriteAll with the write call as a parameter, so that a test
// can watch each call return.
func writeAll(fd int, p []byte, write func(int, []byte) (int, error)) error {
	for len(p) > 0 {
		n, err := IgnoringEINTRIO(write, fd, p)
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// Throttle logs a condition that repeats (accept failing with EMFILE, many
// times a second) at most once per Every, so that the log stays readable
// and logging does not become the load; each report says how many it held
// back. The zero value reports at most once a second. A Throttle is not
// safe for concurrent use.
type Throttle struct {
	Every time.Duration

	next   time.Time
	missed int
	now    func() time.Time // for tests; nil means time.Now
}

// Printf logs through the standard logger, unless it logged less than
// Every ago.
func (t *Throttle) Printf(format string, args ...any) {
	ok, missed := t.allow()
	if !ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if missed > 0 {
		msg += fmt.Sprintf(" (and %d more like it)", missed)
	}
	log.Print(msg)
}

// allow reports whether to report now, and if so, how many reports it
// refused since the last one.
func (t *Throttle) allow() (ok bool, missed int) {
	now := time.Now
	if t.now != nil {
		now = t.now
	}
	every := t.Every
	if every <= 0 {
		every = time.Second
	}
	at := now()
	if at.Before(t.next) {
		t.missed++
		return false, 0
	}
	t.next = at.Add(every)
	missed, t.missed = t.missed, 0
	return true, missed
}
