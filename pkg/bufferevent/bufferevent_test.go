package bufferevent

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"tinyasync/pkg/evbuffer"
	"tinyasync/pkg/event"
	"tinyasync/pkg/evutil"
	"tinyasync/pkg/uring"
)

// The tests follow libevent's regress_bufferevent.c, on every backend.

// forEachMethod runs test with a base of each method this system has.
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
			if name == "io_uring" && uring.Available() != nil {
				t.Skip(uring.Available()) // a sandbox or an older kernel: the reason, in one line
			}
			require.NoError(t, err)
			defer base.Free()
			test(t, base)
		})
	}
}

// pair returns two connected, nonblocking stream sockets: one for a
// bufferevent, one for the test to play the peer with.
func pair(t *testing.T) (mine, peer int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	require.NoError(t, err)
	for _, fd := range fds {
		unix.CloseOnExec(fd)
		require.NoError(t, unix.SetNonblock(fd, true))
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// readAll reads what the peer has been sent so far.
func readAll(fd int) string {
	var out []byte
	buf := make([]byte, 65536)
	for {
		n, err := unix.Read(fd, buf)
		if n <= 0 || err != nil {
			return string(out)
		}
		out = append(out, buf[:n]...)
	}
}

// loopUntil runs the base until cond holds, failing after 5 s.
func loopUntil(t *testing.T, base *event.Base, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "the condition never held")
		stop := event.NewTimer(base, func(int, event.Events) {})
		stop.Add(10 * time.Millisecond)
		require.NoError(t, base.Loop(event.Once))
		stop.Free()
	}
}

// wait runs the base for d.
func wait(t *testing.T, base *event.Base, d time.Duration) {
	t.Helper()
	done := false
	tick := event.NewTimer(base, func(int, event.Events) { done = true })
	require.NoError(t, tick.Add(d))
	for !done {
		require.NoError(t, base.Loop(event.Once))
	}
}

func TestEchoWritesFromTheReadCallback(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		mine, peer := pair(t)
		bev := NewSocket(base, mine, CloseOnFree)
		defer bev.Free()
		reads := 0
		bev.SetCallbacks(func(b *Bufferevent) {
			reads++
			b.Output().AddBuffer(b.Input()) // echo
		}, nil, nil)
		require.NoError(t, bev.Enable(event.Read|event.Write))
		unix.Write(peer, []byte("hello\n"))
		require.NoError(t, base.Loop(event.Once))
		assert.Equal(t, 1, reads)
		if base.Uring() != nil {
			// Completion: the send is handed to the kernel in the same
			// round, and the output keeps its bytes until it says it has
			// sent them, in the next.
			assert.True(t, bev.cio.sending, "a send submitted in the same round as the read")
			assert.Equal(t, 6, bev.Output().Len(), "the bytes stay in the output while the kernel sends them")
			require.NoError(t, base.Loop(event.Once))
			assert.False(t, bev.cio.sending)
			assert.Zero(t, bev.Output().Len(), "drained once sent")
			assert.Equal(t, "hello\n", readAll(peer), "sent by the next round")
			return
		}
		assert.Equal(t, "hello\n", readAll(peer), "written in the same round as it was read")
		what, _ := bev.writeEv.Pending(event.Write)
		assert.Zero(t, what, "the write event is not pending: the socket took everything")
	})
}

func TestReadLowWatermarkDelaysTheCallback(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		mine, peer := pair(t)
		bev := NewSocket(base, mine, CloseOnFree)
		defer bev.Free()
		var seen []int
		bev.SetCallbacks(func(b *Bufferevent) { seen = append(seen, b.Input().Len()) }, nil, nil)
		bev.SetWatermark(event.Read, 10, 0)
		require.NoError(t, bev.Enable(event.Read))
		unix.Write(peer, []byte("12345"))
		loopUntil(t, base, func() bool { return bev.Input().Len() == 5 })
		assert.Empty(t, seen, "5 bytes, below the low watermark: no callback")
		unix.Write(peer, []byte("67890"))
		loopUntil(t, base, func() bool { return len(seen) > 0 })
		assert.Equal(t, []int{10}, seen)
	})
}

func TestReadHighWatermarkPausesReading(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		mine, peer := pair(t)
		bev := NewSocket(base, mine, CloseOnFree)
		defer bev.Free()
		calls := 0
		bev.SetCallbacks(func(b *Bufferevent) { calls++ }, nil, nil) // reads nothing out
		bev.SetWatermark(event.Read, 0, 100)
		require.NoError(t, bev.Enable(event.Read))
		unix.Write(peer, bytes.Repeat([]byte("x"), 1000))
		loopUntil(t, base, func() bool { return bev.Input().Len() >= 100 })
		require.NoError(t, base.Loop(event.NonBlock))
		assert.Equal(t, 100, bev.Input().Len(), "reading stops at the high watermark")
		what, _ := bev.readEv.Pending(event.Read)
		assert.Zero(t, what, "the read event is paused")
		bev.Input().Drain(60) // below the watermark: reading resumes
		loopUntil(t, base, func() bool { return bev.Input().Len() == 100 })
		bev.Input().Drain(100)
		loopUntil(t, base, func() bool { return bev.Input().Len() == 100 })
		bev.Input().Drain(100)
		loopUntil(t, base, func() bool { return bev.Input().Len() == 100 })
		assert.Greater(t, calls, 3)
	})
}

func TestWriteLowWatermarkAndOutputBound(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		mine, peer := pair(t)
		require.NoError(t, unix.SetsockoptInt(mine, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096))
		bev := NewSocket(base, mine, CloseOnFree)
		defer bev.Free()
		var drained []int
		bev.SetCallbacks(func(b *Bufferevent) {
			b.Output().AddBuffer(b.Input())
		}, func(b *Bufferevent) { drained = append(drained, b.Output().Len()) }, nil)
		bev.SetWatermark(event.Write, 1000, 50000) // the output is bounded at 50,000
		require.NoError(t, bev.Enable(event.Read|event.Write))

		// The peer writes and never reads: the output fills to its bound,
		// then reading pauses, then the peer's writes stall.
		chunk := bytes.Repeat([]byte("0123456789"), 1000)
		written := 0
		for range 200 {
			if n, err := unix.Write(peer, chunk); err == nil {
				written += n
			}
			base.Loop(event.NonBlock)
		}
		assert.LessOrEqual(t, bev.Output().Len(), 50000+MaxRead, "the output stays near its bound")
		assert.Less(t, written, len(chunk)*200, "the peer's writes stalled")
		what, _ := bev.readEv.Pending(event.Read)
		assert.Zero(t, what, "reading is paused while the output holds its bound")

		// The peer reads everything; the output drains, reading resumes,
		// and the write callback hears when the output is down to 1000.
		var got int
		loopUntil(t, base, func() bool {
			got += len(readAll(peer))
			return got == written && bev.Output().Len() == 0
		})
		require.NotEmpty(t, drained)
		for _, n := range drained {
			assert.LessOrEqual(t, n, 1000, "the write callback runs at the low watermark or below")
		}
	})
}

func TestReadTimeoutFiresOnce(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		mine, peer := pair(t)
		bev := NewSocket(base, mine, CloseOnFree)
		defer bev.Free()
		var events []What
		var at, lastRead time.Time
		bev.SetCallbacks(func(b *Bufferevent) {
			b.Input().Drain(b.Input().Len())
			lastRead = time.Now()
		}, nil, func(b *Bufferevent, w What) {
			events = append(events, w)
			at = time.Now()
		})
		bev.SetTimeouts(300*time.Millisecond, 0)
		start := time.Now()
		require.NoError(t, bev.Enable(event.Read))
		// Data every 30 ms keeps the timeout from firing...
		for range 5 {
			unix.Write(peer, []byte("x"))
			wait(t, base, 30*time.Millisecond)
		}
		assert.Empty(t, events, "data came often enough")
		// ...then silence: it fires, once, a timeout after the last read,
		// and reading is off.
		loopUntil(t, base, func() bool { return len(events) > 0 })
		require.NoError(t, base.Loop(event.NonBlock))
		assert.Equal(t, []What{Reading | Timeout}, events)
		assert.GreaterOrEqual(t, at.Sub(lastRead), 290*time.Millisecond, "never early")
		assert.GreaterOrEqual(t, at.Sub(start), 420*time.Millisecond, "each read started the timeout again")
		what, _ := bev.readEv.Pending(event.Read | event.Timeout)
		assert.Zero(t, what, "after a read timeout, reading is disabled")
	})
}

func TestWriteTimeoutFiresOnce(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		mine, _ := pair(t) // the peer never reads
		bev := NewSocket(base, mine, CloseOnFree)
		defer bev.Free()
		var events []What
		bev.SetCallbacks(nil, nil, func(b *Bufferevent, w What) { events = append(events, w) })
		bev.SetTimeouts(0, 50*time.Millisecond)
		require.NoError(t, bev.Enable(event.Write))
		bev.Write(bytes.Repeat([]byte("z"), 4<<20)) // more than the socket holds
		loopUntil(t, base, func() bool { return len(events) > 0 })
		base.Loop(event.NonBlock)
		assert.Equal(t, []What{Writing | Timeout}, events)
		what, _ := bev.writeEv.Pending(event.Write | event.Timeout)
		assert.Zero(t, what, "writing is disabled: it cannot time out again")
	})
}

func TestEOFThenFlush(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		mine, peer := pair(t)
		bev := NewSocket(base, mine, CloseOnFree)
		var events []What
		bev.SetCallbacks(func(b *Bufferevent) {
			b.Output().Add([]byte(strings.ToUpper(string(b.Input().Pullup(-1)))))
			b.Input().Drain(b.Input().Len())
		}, nil, func(b *Bufferevent, w What) {
			events = append(events, w)
			b.Output().Add([]byte(" and goodbye"))
			b.CloseWhenFlushed()
		})
		require.NoError(t, bev.Enable(event.Read|event.Write))
		unix.Write(peer, []byte("last words"))
		unix.Shutdown(peer, unix.SHUT_WR) // the peer half-closes
		var got string
		loopUntil(t, base, func() bool {
			got += readAll(peer)
			return bev.freed
		})
		got += readAll(peer)
		assert.Equal(t, []What{Reading | EOF}, events)
		assert.Equal(t, "LAST WORDS and goodbye", got, "everything written after the end of the peer's stream")
		n, err := unix.Read(peer, make([]byte, 1))
		assert.Zero(t, n, "then the socket is closed: the peer reads its end")
		assert.NoError(t, err)
	})
}

func TestConnectAndConnectFailure(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		// A listener to connect to; closed below, to refuse the next.
		l, sa := loopbackListener(t, 8)

		bev := NewSocket(base, -1, CloseOnFree)
		defer bev.Free()
		var events []What
		bev.SetCallbacks(nil, nil, func(b *Bufferevent, w What) { events = append(events, w) })
		require.NoError(t, bev.Connect(sa))
		bev.Write([]byte("hi after connecting\n"))
		loopUntil(t, base, func() bool { return len(events) > 0 && bev.Output().Len() == 0 })
		assert.Equal(t, []What{Connected}, events)
		c, _, err := unix.Accept(l)
		require.NoError(t, err)
		defer unix.Close(c)
		buf := make([]byte, 100)
		n, _ := unix.Read(c, buf)
		assert.Equal(t, "hi after connecting\n", string(buf[:n]), "what was written before the connect ended went out after it")

		// Nothing listens there now: the connect is refused.
		unix.Close(l)
		failed := NewSocket(base, -1, CloseOnFree)
		defer failed.Free()
		var got []What
		failed.SetCallbacks(nil, nil, func(b *Bufferevent, w What) { got = append(got, w) })
		if err := failed.Connect(sa); err != nil {
			assert.ErrorIs(t, err, unix.ECONNREFUSED, "refused at once")
			return
		}
		loopUntil(t, base, func() bool { return len(got) > 0 })
		assert.Equal(t, []What{Error}, got)
		assert.ErrorIs(t, failed.Err(), unix.ECONNREFUSED)
	})
}

func TestReadsAreBoundedPerReadiness(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		mine, peer := pair(t)
		require.NoError(t, unix.SetsockoptInt(peer, unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20))
		bev := NewSocket(base, mine, CloseOnFree)
		defer bev.Free()
		var sizes []int
		bev.SetCallbacks(func(b *Bufferevent) {
			sizes = append(sizes, b.Input().Len())
			b.Input().Drain(b.Input().Len())
		}, nil, nil)
		require.NoError(t, bev.Enable(event.Read))
		n, _ := unix.Write(peer, bytes.Repeat([]byte("f"), 200000))
		require.Greater(t, n, 2*MaxRead)
		require.NoError(t, base.Loop(event.Once))
		require.Len(t, sizes, 1)
		assert.LessOrEqual(t, sizes[0], MaxRead, "one readiness reads at most MaxRead, leaving the rest for the next round")
	})
}

func TestFreeInsideCallbacks(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		mine, peer := pair(t)
		bev := NewSocket(base, mine, CloseOnFree)
		bev.SetCallbacks(func(b *Bufferevent) {
			b.Output().Add([]byte("never sent"))
			b.Free()
		}, nil, nil)
		require.NoError(t, bev.Enable(event.Read|event.Write))
		unix.Write(peer, []byte("x"))
		require.NoError(t, base.Loop(event.Once))
		require.NoError(t, base.Loop(event.NonBlock))
		assert.True(t, bev.freed)
		n, err := unix.Read(peer, make([]byte, 100))
		assert.Zero(t, n, "freed in its callback: closed, nothing written")
		assert.NoError(t, err)
		require.NoError(t, base.Dispatch(), "nothing is left pending")
	})
}

func TestEnableWhileConnectingWaitsForTheHandshake(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		// A listener whose queue is full and who never accepts: the
		// kernel drops new handshakes, and a connect stays in SYN_SENT.
		l, sa := loopbackListener(t, 0)
		defer unix.Close(l)
		for range 4 {
			fd, err := evutil.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
			require.NoError(t, err)
			defer unix.Close(fd)
			unix.SetNonblock(fd, true)
			unix.Connect(fd, sa)
		}
		bev := NewSocket(base, -1, CloseOnFree)
		defer bev.Free()
		var events []What
		bev.SetCallbacks(nil, nil, func(b *Bufferevent, w What) { events = append(events, w) })
		require.NoError(t, bev.Connect(sa))
		bev.Write([]byte("queued before the handshake ends"))
		require.NoError(t, bev.Enable(event.Read|event.Write))
		wait(t, base, 100*time.Millisecond)
		assert.NotContains(t, events, Connected, "no Connected while the handshake goes on")
	})
}

func TestSetTimeoutsZeroClearsThem(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		mine, peer := pair(t)
		bev := NewSocket(base, mine, CloseOnFree)
		defer bev.Free()
		var events []What
		bev.SetCallbacks(func(b *Bufferevent) { b.Input().Drain(b.Input().Len()) }, nil, func(b *Bufferevent, w What) { events = append(events, w) })
		require.NoError(t, bev.SetTimeouts(50*time.Millisecond, 0))
		require.NoError(t, bev.Enable(event.Read))
		require.NoError(t, bev.SetTimeouts(0, 0))
		unix.Write(peer, []byte("x")) // a read, which once re-armed the old timeout
		wait(t, base, 150*time.Millisecond)
		assert.Empty(t, events, "no timeout after SetTimeouts(0, 0)")
	})
}

func TestWriteCallbackOnlyAfterWriting(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		mine, peer := pair(t)
		bev := NewSocket(base, mine, CloseOnFree)
		defer bev.Free()
		writes := 0
		reply := false
		bev.SetCallbacks(func(b *Bufferevent) {
			b.Input().Drain(b.Input().Len())
			if reply {
				b.Write([]byte("ok"))
			}
		}, func(*Bufferevent) { writes++ }, nil)
		require.NoError(t, bev.Enable(event.Read|event.Write))
		unix.Write(peer, []byte("no answer to this"))
		require.NoError(t, base.Loop(event.Once))
		assert.Zero(t, writes, "nothing was written: no write callback")
		reply = true
		unix.Write(peer, []byte("answer this"))
		require.NoError(t, base.Loop(event.Once))
		if base.Uring() != nil {
			assert.Zero(t, writes, "submitted, not yet sent: no write callback")
			require.NoError(t, base.Loop(event.Once)) // the send's completion
		}
		assert.Equal(t, 1, writes)
		assert.Equal(t, "ok", readAll(peer))
	})
}

func TestDataBeatsATimeoutInTheSameRound(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		mine, peer := pair(t)
		bev := NewSocket(base, mine, CloseOnFree)
		defer bev.Free()
		var events []What
		read := 0
		bev.SetCallbacks(func(b *Bufferevent) { read += b.Input().Len(); b.Input().Drain(b.Input().Len()) },
			nil, func(b *Bufferevent, w What) { events = append(events, w) })
		require.NoError(t, bev.SetTimeouts(50*time.Millisecond, 0))
		require.NoError(t, bev.Enable(event.Read))
		unix.Write(peer, []byte("just in time"))
		time.Sleep(80 * time.Millisecond) // the loop runs late: the data and the deadline are both due
		require.NoError(t, base.Loop(event.Once))
		assert.Equal(t, len("just in time"), read, "the data is read")
		assert.Empty(t, events, "and no timeout is reported")
	})
}

func TestErrorsAndImmediateClose(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		// A reset: Reading|Error, with the errno.
		mine, peer := pair(t)
		bev := NewSocket(base, mine, CloseOnFree)
		var events []What
		bev.SetCallbacks(nil, nil, func(b *Bufferevent, w What) { events = append(events, w); b.Free() })
		require.NoError(t, bev.Enable(event.Read|event.Write))
		bev.Write(bytes.Repeat([]byte("a"), 1<<20)) // fills the socket: the peer reads nothing
		require.NoError(t, base.Loop(event.NonBlock))
		unix.Close(peer) // with unread data: the other end sees an error
		loopUntil(t, base, func() bool { return len(events) > 0 })
		require.NotEmpty(t, events)
		assert.NotZero(t, events[0]&Error, "%v", events[0])
		assert.Error(t, bev.Err())

		// CloseWhenFlushed with nothing left to write closes at once.
		mine2, peer2 := pair(t)
		bev2 := NewSocket(base, mine2, CloseOnFree)
		require.NoError(t, bev2.Enable(event.Read|event.Write))
		bev2.CloseWhenFlushed()
		assert.True(t, bev2.freed)
		n, err := unix.Read(peer2, make([]byte, 1))
		assert.Zero(t, n)
		assert.NoError(t, err, "closed: the end of the stream")
	})
}

// loopbackListener opens a socket listening on 127.0.0.1 with the backlog
// given, and returns it, the caller's to close, and its address.
func loopbackListener(t *testing.T, backlog int) (int, unix.Sockaddr) {
	l, err := evutil.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	require.NoError(t, err)
	require.NoError(t, unix.Bind(l, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, unix.Listen(l, backlog))
	sa, err := unix.Getsockname(l)
	require.NoError(t, err)
	return l, sa
}

// TestLineTimeout: a peer that sends a byte every 20 ms restarts the read
// timeout with each one; a read callback that takes only whole lines
// leaves them all in the input, and the line timeout ends it. A peer that
// finishes its lines as fast is never timed out.
func TestLineTimeout(t *testing.T) {
	forEachMethod(t, func(t *testing.T, base *event.Base) {
		for _, tc := range []struct {
			name    string
			payload string
			ends    bool
		}{{"trickles one line", "x", true}, {"finishes its lines", "\n", false}} {
			mine, peer := pair(t)
			bev := NewSocket(base, mine, CloseOnFree)
			var events []What
			bev.SetCallbacks(func(b *Bufferevent) {
				for {
					if _, ok := b.Input().ReadLine(evbuffer.EOLLF); !ok {
						return
					}
				}
			}, nil, func(b *Bufferevent, w What) { events = append(events, w) })
			require.NoError(t, bev.SetTimeouts(300*time.Millisecond, 0))
			bev.SetLineTimeout(150 * time.Millisecond)
			require.NoError(t, bev.Enable(event.Read))
			start := time.Now()
			for len(events) == 0 && time.Since(start) < time.Second {
				unix.Write(peer, []byte(tc.payload))
				wait(t, base, 20*time.Millisecond)
			}
			if tc.ends {
				assert.Equal(t, []What{Reading | Timeout}, events, tc.name)
				assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "%s: never early", tc.name)
			} else {
				assert.Empty(t, events, "%s: progress, so no timeout in a second", tc.name)
			}
			bev.Free()
		}
	})
}
