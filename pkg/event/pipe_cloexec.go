//go:build linux || dragonfly || freebsd || netbsd || openbsd

package event

import "golang.org/x/sys/unix"

// pipe makes the base's own pipe, nonblocking and close-on-exec.
func pipe(p []int) error {
	return unix.Pipe2(p, unix.O_NONBLOCK|unix.O_CLOEXEC)
}
