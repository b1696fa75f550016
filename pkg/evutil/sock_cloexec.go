//go:build linux || freebsd || dragonfly

package evutil

import (
	"golang.org/x/sys/unix"
)

// Socket is socket(2) with the descriptor marked close-on-exec in the same
// call, so that a program started by syscall.ForkExec never inherits it by
// accident (02-forking-server hands each child exactly one socket). Like
// unix.Socket, it returns the bare errno, for the caller to compare and wrap.
func Socket(domain, typ, proto int) (int, error) {
	return unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
}
