package listener

import (
	"bytes"
	"log"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"tinyasync/pkg/event"
	"tinyasync/pkg/evutil"
)

func TestPausesWhenOutOfDescriptors(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		var logged bytes.Buffer
		log.SetOutput(&logged)
		defer log.SetOutput(os.Stderr)

		var accepted []int
		l, err := Bind(base, "127.0.0.1:0", func(_ *Listener, fd int, _ netip.AddrPort) { accepted = append(accepted, fd) })
		require.NoError(t, err)
		defer l.Free()
		addr, err := l.Addr()
		require.NoError(t, err)

		// The client's socket is opened first; then this process is left
		// no descriptor to accept it with.
		client, err := evutil.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		require.NoError(t, err)
		defer unix.Close(client)
		var lim unix.Rlimit
		require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &lim))
		free, err := unix.FcntlInt(uintptr(client), unix.F_DUPFD_CLOEXEC, 0) // the lowest free number
		require.NoError(t, err)
		unix.Close(free)
		low := lim
		low.Cur = uint64(free)
		require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &low))
		restored := false
		restore := func() {
			if !restored {
				require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &lim))
				restored = true
			}
		}
		defer restore()

		tcp, err := net.ResolveTCPAddr("tcp", addr)
		require.NoError(t, err)
		sa := &unix.SockaddrInet4{Port: tcp.Port, Addr: [4]byte{127, 0, 0, 1}}
		require.NoError(t, unix.Connect(client, sa))

		// A second of that: the listener tries, pauses, tries again, ten
		// times, and logs once.
		start := time.Now()
		for time.Since(start) < time.Second {
			tick := event.NewTimer(base, func(int, event.Events) {})
			tick.Add(50 * time.Millisecond)
			require.NoError(t, base.Loop(event.Once))
			tick.Free()
		}
		assert.Empty(t, accepted)
		lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
		assert.LessOrEqual(t, len(lines), 2, "once a second at most:\n%s", logged.String())
		assert.Contains(t, lines[0], "too many open files")

		restore()
		deadline := time.Now().Add(5 * time.Second)
		for len(accepted) == 0 && time.Now().Before(deadline) {
			tick := event.NewTimer(base, func(int, event.Events) {})
			tick.Add(20 * time.Millisecond)
			require.NoError(t, base.Loop(event.Once))
			tick.Free()
		}
		assert.Len(t, accepted, 1, "accepted once descriptors came free")
		for _, fd := range accepted {
			unix.Close(fd)
		}
	})
}
