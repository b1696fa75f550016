//go:build darwin || netbsd || openbsd

package evutil

import (
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
