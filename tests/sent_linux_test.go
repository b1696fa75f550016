package tests

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// waitSent waits until the peer has acknowledged every byte written to
// conn: its send queue (SIOCOUTQ, tcp(7)) is empty, so the bytes are in the
// peer's kernel, whatever happens to the connection next.
func waitSent(c *check, conn *net.TCPConn) {
	raw, err := conn.SyscallConn()
	if err != nil {
		c.Errorf("waitSent: %v", err)
		return
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		queued := -1
		raw.Control(func(fd uintptr) {
			queued, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		})
		if err != nil || queued == 0 {
			return
		}
		time.Sleep(time.Millisecond) // Polls a condition; orders nothing.
	}
	c.Errorf("waitSent: the peer did not acknowledge the data within 5 s")
}
