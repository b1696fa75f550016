package listener

import (
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"tinyasync/pkg/event"
)

func forEachMethod(t *testing.T, test func(t *testing.T, base *event.Base)) {
	for _, name := range event.SupportedMethods() {
		t.Run(name, func(t *testing.T) {
			cfg := event.NewConfig()
			cfg.IgnoreEnv()
			for _, other := range event.SupportedMethods() {
				if other != name {
					cfg.AvoidMethod(other)
				}
			}
			base, err := event.NewBaseWithConfig(cfg)
			require.NoError(t, err)
			defer base.Free()
			test(t, base)
		})
	}
}

func TestAcceptsEveryWaitingConnection(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		var accepted []int
		l, err := Bind(base, "127.0.0.1:0", func(_ *Listener, fd int, peer netip.AddrPort) {
			fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
			assert.NoError(t, err)
			assert.NotZero(t, fl&unix.O_NONBLOCK, "handed over nonblocking")
			accepted = append(accepted, fd)
		})
		require.NoError(t, err)
		defer l.Free()
		addr, err := l.Addr()
		require.NoError(t, err)
		for range 50 {
			c, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer c.Close()
		}
		require.NoError(t, base.Loop(event.Once))
		assert.Len(t, accepted, 50, "one readiness: every connection waiting, until EAGAIN")
		for _, fd := range accepted {
			unix.Close(fd)
		}
	})
}
