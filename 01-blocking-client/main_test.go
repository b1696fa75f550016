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

func TestHostHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		port int
		want string
	}{
		{"www.google.com", 80, "www.google.com"},
		{"www.google.com", 8080, "www.google.com:8080"},
		{"127.0.0.1", 80, "127.0.0.1"},
		{"::1", 80, "[::1]"},
		{"::1", 8000, "[::1]:8000"},
		{"fe80::1%eth0", 443, "[fe80::1%eth0]:443"},
	} {
		assert.Equal(t, tc.want, hostHeader(tc.name, tc.port), "%s port %d", tc.name, tc.port)
	}
}
