//go:build darwin || netbsd || openbsd

package evutil

import (
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Socket is socket(2) with the descriptor marked close-on-exec. Darwin has
// no SOCK_CLOEXEC (and x/sys gives NetBSD and OpenBSD no accept4), so it
// takes two calls; syscall.ForkLock keeps a concurrent syscall.ForkExec from
// starting a program between them, as Go's net package does.
func Socket(domain, typ, proto int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fd, err := unix.Socket(domain, typ, proto)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	return fd, nil
}

// Accept is accept(2) with the new descriptor marked close-on-exec, in two
// calls under syscall.ForkLock, for want of accept4. The new socket is
// blocking, whatever the listener is.
func Accept(fd int) (int, netip.AddrPort, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	nfd, sa, err := unix.Accept(fd)
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	unix.CloseOnExec(nfd)
	// A socket accepted by accept(2) on the BSDs and Darwin inherits
	// O_NONBLOCK from the listener; on Linux, and from accept4, never.
	if err := unix.SetNonblock(nfd, false); err != nil {
		unix.Close(nfd)
		return -1, netip.AddrPort{}, err
	}
	return nfd, sockaddrAddrPort(sa), nil
}
