package evutil

import (
	"bytes"
	"errors"
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
)

func TestListenIPv4AndIPv6(t *testing.T) {
	for _, tc := range []struct{ addr, wantPrefix string }{
		{"127.0.0.1:0", "127.0.0.1:"},
		{"[::1]:0", "[::1]:"},
		{"localhost:0", "127.0.0.1:"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			fd, err := Listen(tc.addr)
			require.NoError(t, err)
			defer unix.Close(fd)

			local, err := LocalAddr(fd)
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(local, tc.wantPrefix), "LocalAddr = %q", local)
			assert.NotEqual(t, tc.wantPrefix+"0", local, "port 0 must be replaced by the bound port")

			assertCloexec(t, fd)
			reuse, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR)
			require.NoError(t, err)
			assert.NotZero(t, reuse, "SO_REUSEADDR")

			// The socket really listens: a client connects, and accept
			// gives a blocking socket whose peer is that client.
			c, err := net.Dial("tcp", local)
			require.NoError(t, err)
			defer c.Close()
			nfd, peer, err := unix.Accept(fd)
			require.NoError(t, err)
			defer unix.Close(nfd)
			assert.Equal(t, c.LocalAddr().String(), SockaddrString(peer))
			fl, err := unix.FcntlInt(uintptr(nfd), unix.F_GETFL, 0)
			require.NoError(t, err)
			assert.Zero(t, fl&unix.O_NONBLOCK, "an accepted socket starts blocking")

			require.NoError(t, MakeNonblocking(nfd))
			fl, err = unix.FcntlInt(uintptr(nfd), unix.F_GETFL, 0)
			require.NoError(t, err)
			assert.NotZero(t, fl&unix.O_NONBLOCK, "MakeNonblocking")
			_, err = unix.Read(nfd, make([]byte, 1))
			assert.Equal(t, unix.EAGAIN, err, "a nonblocking read with nothing to read")
		})
	}
}

func assertCloexec(t *testing.T, fd int) {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	require.NoError(t, err)
	assert.NotZero(t, fl&unix.FD_CLOEXEC, "fd %d must be close-on-exec", fd)
}

func TestListenErrorsNameAddressAndCause(t *testing.T) {
	busy, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	defer unix.Close(busy)
	inUse, err := LocalAddr(busy)
	require.NoError(t, err)

	for _, tc := range []struct{ addr, cause string }{
		{inUse, "bind: address already in use"},
		{"nonsense", "missing port in address"},
		{"127.0.0.1:99999", `invalid port "99999"`},
		{"127.0.0.1:http-alt-nope", `invalid port "http-alt-nope"`},
		{"192.0.2.1:0", "bind: cannot assign requested address"}, // TEST-NET-1, on no interface here
		{"bad..name:0", "no such host"},
	} {
		fd, err := Listen(tc.addr)
		if !assert.Error(t, err, tc.addr) {
			unix.Close(fd)
			continue
		}
		assert.Equal(t, -1, fd)
		msg := err.Error()
		assert.True(t, strings.HasPrefix(msg, "listen "+tc.addr+": "), "%q must start with the address as given", msg)
		assert.Contains(t, msg, tc.cause)
		assert.NotContains(t, msg, "\n")
	}
}

func TestListenInUseUnwrapsToErrno(t *testing.T) {
	busy, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	defer unix.Close(busy)
	addr, err := LocalAddr(busy)
	require.NoError(t, err)
	_, err = Listen(addr)
	assert.True(t, errors.Is(err, unix.EADDRINUSE), "%v", err)
}

func TestSockaddrRoundTrip(t *testing.T) {
	for _, s := range []string{"127.0.0.1:40713", "[::1]:80", "0.0.0.0:0", "[2001:db8::1]:65535", "[fe80::1%1]:9"} {
		ap := netip.MustParseAddrPort(s)
		sa, domain := SockaddrOf(ap)
		if ap.Addr().Is4() {
			assert.Equal(t, unix.AF_INET, domain, s)
		} else {
			assert.Equal(t, unix.AF_INET6, domain, s)
		}
		got := SockaddrString(sa)
		if ap.Addr().Zone() != "" {
			// Zone 1 is the loopback interface's index; either form is right.
			assert.True(t, got == s || got == "[fe80::1%lo]:9", "%s -> %s", s, got)
			continue
		}
		assert.Equal(t, s, got)
	}
	// An IPv4-mapped IPv6 address is an IPv4 address.
	sa, domain := SockaddrOf(netip.MustParseAddrPort("[::ffff:127.0.0.1]:7"))
	assert.Equal(t, unix.AF_INET, domain)
	assert.Equal(t, "127.0.0.1:7", SockaddrString(sa))
	assert.Equal(t, "*unix.SockaddrUnix", SockaddrString(&unix.SockaddrUnix{Name: "/tmp/x"}))
}

func TestIgnoringEINTR(t *testing.T) {
	calls := 0
	err := IgnoringEINTR(func() error {
		calls++
		if calls < 3 {
			return unix.EINTR
		}
		return unix.EAGAIN
	})
	assert.Equal(t, unix.EAGAIN, err)
	assert.Equal(t, 3, calls)

	calls = 0
	n, err := IgnoringEINTRIO(func(fd int, p []byte) (int, error) {
		calls++
		if calls == 1 {
			return -1, unix.EINTR
		}
		return len(p), nil
	}, 7, make([]byte, 5))
	assert.NoError(t, err)
	assert.Equal(t, 5, n)
	assert.Equal(t, 2, calls)
}

func TestThrottle(t *testing.T) {
	at := time.Unix(1000, 0)
	th := Throttle{now: func() time.Time { return at }}

	ok, missed := th.allow()
	assert.True(t, ok, "the first report is allowed")
	assert.Zero(t, missed)
	for i := 0; i < 5; i++ {
		at = at.Add(100 * time.Millisecond)
		ok, _ = th.allow()
		assert.False(t, ok, "within the second")
	}
	at = at.Add(500 * time.Millisecond) // 1.0 s after the first report
	ok, missed = th.allow()
	assert.True(t, ok)
	assert.Equal(t, 5, missed)
	ok, missed = th.allow()
	assert.False(t, ok)
	assert.Zero(t, missed)

	th = Throttle{Every: 10 * time.Millisecond, now: th.now}
	ok, _ = th.allow()
	assert.True(t, ok)
	at = at.Add(10 * time.Millisecond)
	ok, missed = th.allow()
	assert.True(t, ok)
	assert.Zero(t, missed)
}

func TestThrottlePrintf(t *testing.T) {
	var out bytes.Buffer
	log.SetOutput(&out)
	defer log.SetOutput(os.Stderr)
	log.SetFlags(0)
	defer log.SetFlags(log.LstdFlags)

	at := time.Unix(1000, 0)
	th := Throttle{now: func() time.Time { return at }}
	for i := range 3 {
		th.Printf("accept: %v", i)
	}
	at = at.Add(time.Second)
	th.Printf("accept: %v", 3)
	assert.Equal(t, "accept: 0\naccept: 3 (and 2 more like it)\n", out.String())
}
