//go:build linux || freebsd || dragonfly

package evutil

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket is socket(2) with the descriptor marked close-on-exec in the same
// call, so that a program started by syscall.ForkExec never inherits it by
// accident (02-forking-server hands each child exactly one socket). Like
// unix.Socket, it returns the bare errno, for the caller to compare and wrap.
func Socket(domain, typ, proto int) (int, error) {
	return unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
}

// Accept is accept(2) with the new descriptor marked close-on-exec in the
// same call (accept4 with SOCK_CLOEXEC), like libevent's evutil_accept4,
// and the client's address. The new socket is blocking, whatever the
// listener is. Errors are bare errnos, so that the caller can write
// err == unix.EAGAIN.
//
// It calls accept4 itself, rather than unix.Accept4, so that the address
// comes back in a sockaddr on the stack, as in C: unix.Accept4 allocates two
// objects for it, garbage by the next connection, and a server that accepts
// thousands of clients should not leave a heap of it behind.
func Accept(fd int) (int, netip.AddrPort, error) {
	var rsa unix.RawSockaddrAny
	size := uint32(unix.SizeofSockaddrAny)
	nfd, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd),
		uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&size)), unix.SOCK_CLOEXEC, 0, 0)
	if errno != 0 {
		return -1, netip.AddrPort{}, errno
	}
	return int(nfd), rawAddrPort(&rsa), nil
}

// rawAddrPort reads an IPv4 or IPv6 address out of a sockaddr as the kernel
// wrote it, the port in network byte order; the zero AddrPort for any other
// family.
func rawAddrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), networkOrder(sa.Port))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(withZone(netip.AddrFrom16(sa.Addr), sa.Scope_id), networkOrder(sa.Port))
	}
	return netip.AddrPort{}
}

// networkOrder reads a port as stored in a sockaddr: big-endian, whatever
// the machine (ntohs).
func networkOrder(port uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&port))
	return uint16(b[0])<<8 | uint16(b[1])
}
