//go:build darwin || linux || openbsd

package evbuffer

import "golang.org/x/sys/unix"

// readv and writev are the kernel's scatter and gather calls: several
// pieces of memory in one system call.
func readv(fd int, iov [][]byte) (int, error) {
	for {
		n, err := unix.Readv(fd, iov)
		if err != unix.EINTR {
			return n, err
		}
	}
}

func writev(fd int, iov [][]byte) (int, error) {
	for {
		n, err := unix.Writev(fd, iov)
		if err != unix.EINTR {
			return n, err
		}
	}
}
