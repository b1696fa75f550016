//go:build darwin

package event

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// pipe makes the base's own pipe, nonblocking and close-on-exec: in three
// calls, Darwin having no pipe2, under syscall.ForkLock so that no program
// is started in between.
func pipe(p []int) error {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	if err := unix.Pipe(p); err != nil {
		return err
	}
	for _, fd := range p {
		unix.CloseOnExec(fd)
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(p[0])
			unix.Close(p[1])
			return err
		}
	}
	return nil
}
