//go:build !(darwin || linux || openbsd)

package evbuffer

import "golang.org/x/sys/unix"

// readv and writev use one piece at a time where x/sys has no readv and
// writev for the system (FreeBSD, NetBSD): a read or write of the first.
func readv(fd int, iov [][]byte) (int, error) {
	for {
		n, err := unix.Read(fd, iov[0])
		if err != unix.EINTR {
			return n, err
		}
	}
}

func writev(fd int, iov [][]byte) (int, error) {
	for {
		n, err := unix.Write(fd, iov[0])
		if err != unix.EINTR {
			return n, err
		}
	}
}
