//go:build !linux

package tests

import "net"

// waitSent cannot see the send queue here; the suite's figures come from
// Linux's /proc, and so does this.
func waitSent(c *check, conn *net.TCPConn) {
	c.Fatal("waitSent needs Linux's SIOCOUTQ")
}
