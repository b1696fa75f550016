package evutil

import (
	"bytes"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestAcceptPause: what a server does after each way accept can fail, and
// what it logs: out of descriptors, a pause and one line a second; a
// client that left, or a signal, nothing at all.
func TestAcceptPause(t *testing.T) {
	var out bytes.Buffer
	log.SetOutput(&out)
	defer log.SetOutput(os.Stderr)
	log.SetFlags(0)
	defer log.SetFlags(log.LstdFlags)
	at := time.Unix(1000, 0)
	th := Throttle{now: func() time.Time { return at }}

	assert.Zero(t, th.AcceptPause(unix.EINTR))
	assert.Zero(t, th.AcceptPause(unix.ECONNABORTED))
	assert.Empty(t, out.String(), "a signal, or a client that left: nothing to say")

	for range 1000 { // a spinning server's second
		assert.Equal(t, AcceptPause, th.AcceptPause(unix.EMFILE))
	}
	assert.Equal(t, "accept: too many open files; pausing\n", out.String(), "one line for the second")
	at = at.Add(time.Second)
	assert.Equal(t, AcceptPause, th.AcceptPause(unix.ENFILE))
	assert.Contains(t, out.String(), "(and 999 more like it)")

	out.Reset()
	at = at.Add(time.Second)
	assert.Zero(t, th.AcceptPause(unix.EPERM), "anything else: no pause")
	assert.Contains(t, out.String(), "accept: operation not permitted", "but a line")
}

// TestParseSockaddrPort: a -listen value becomes the address bind takes,
// in the family socket needs; a bad one, an error that says why.
func TestParseSockaddrPort(t *testing.T) {
	sa, domain, err := ParseSockaddrPort("127.0.0.1:40713")
	require.NoError(t, err)
	assert.Equal(t, unix.AF_INET, domain)
	assert.Equal(t, &unix.SockaddrInet4{Port: 40713, Addr: [4]byte{127, 0, 0, 1}}, sa)

	sa, domain, err = ParseSockaddrPort("[::1]:0")
	require.NoError(t, err)
	assert.Equal(t, unix.AF_INET6, domain)
	assert.Equal(t, "[::1]:0", SockaddrString(sa))

	sa, domain, err = ParseSockaddrPort(":40713")
	require.NoError(t, err)
	assert.Equal(t, unix.AF_INET, domain, "no host: every IPv4 address, the book's INADDR_ANY")
	assert.Equal(t, "0.0.0.0:40713", SockaddrString(sa))

	for in, why := range map[string]string{"nonsense": "missing port", "127.0.0.1:99999": "port", "127.0.0.1:x": "port"} {
		_, _, err := ParseSockaddrPort(in)
		if assert.Error(t, err, in) {
			assert.Contains(t, err.Error(), why, in)
		}
	}
}

// TestListenError: one line with the -listen value as given, the call,
// and the system's reason, which errors.Is still finds.
func TestListenError(t *testing.T) {
	err := ListenError("127.0.0.1:40713", "bind", unix.EADDRINUSE)
	assert.Equal(t, "listen 127.0.0.1:40713: bind: address already in use", err.Error())
	assert.ErrorIs(t, err, unix.EADDRINUSE)
	assert.False(t, strings.Contains(ListenError("x", "", unix.EINVAL).Error(), ": :"), "no empty call name")
}
