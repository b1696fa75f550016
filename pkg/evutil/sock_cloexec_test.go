//go:build linux || freebsd || dragonfly

package evutil

import (
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestAcceptAllocatesNothing: the client's address comes back on the stack,
// on IPv4 and IPv6 alike, and is right.
func TestAcceptAllocatesNothing(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			fd, err := Listen(addr)
			if err != nil && addr[0] == '[' {
				t.Skipf("no IPv6 loopback here: %v", err)
			}
			require.NoError(t, err)
			defer unix.Close(fd)
			local, err := LocalAddr(fd)
			require.NoError(t, err)

			const runs = 20
			clients := map[string]bool{}
			for range runs + 1 { // AllocsPerRun runs once more, to warm up
				c, err := net.Dial("tcp", local)
				require.NoError(t, err)
				defer c.Close()
				clients[c.LocalAddr().String()] = true
			}
			peers := make([]netip.AddrPort, 0, runs+1)
			allocs := testing.AllocsPerRun(runs, func() {
				nfd, peer, err := Accept(fd)
				if err != nil {
					t.Fatal(err)
				}
				unix.Close(nfd)
				peers = append(peers, peer) // formatted after, outside the count
			})
			assert.Zero(t, allocs, "allocations per accept")
			assert.Len(t, peers, runs+1)
			for _, p := range peers {
				assert.True(t, clients[p.String()], "accepted %s, not a client of ours", p)
			}
		})
	}
}
