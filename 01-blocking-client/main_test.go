package main

import (
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestConnectTriesEachAddress: unlike the book, which tries the first
// address only, connect goes on to the next when one refuses.
func TestConnectTriesEachAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	// Nothing listens on ::1 at that port; 127.0.0.1 answers.
	fd, err := connect([]netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")}, port)
	require.NoError(t, err)
	defer unix.Close(fd)
	peer, err := unix.Getpeername(fd)
	require.NoError(t, err)
	assert.Equal(t, port, uint16(peer.(*unix.SockaddrInet4).Port))

	ln.Close()
	_, err = connect([]netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")}, port)
	require.Error(t, err)
	for _, addr := range []string{"[::1]:", "127.0.0.1:"} {
		assert.Contains(t, err.Error(), addr+strconv.Itoa(int(port))+": connection refused")
	}
}
