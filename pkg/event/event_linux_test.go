package event

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestEINTRRecomputesTheWait(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		// The loop runs on this goroutine, locked to its thread, so that
		// signals can be aimed at the thread that waits.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := unix.Gettid()
		stop := make(chan bool)
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
					unix.Tgkill(unix.Getpid(), tid, unix.SIGURG)
				}
			}
		}()
		spy := spyOn(b)
		start := time.Now()
		var firedAfter time.Duration
		tm := NewTimer(b, func(int, Events) { firedAfter = time.Since(start) })
		require.NoError(t, tm.Add(150*time.Millisecond))
		require.NoError(t, b.Dispatch())
		assert.GreaterOrEqual(t, firedAfter, 150*time.Millisecond, "never early, however often the wait is cut short")
		assert.Less(t, firedAfter, 2*time.Second, "nor forever late")
		assert.Positive(t, spy.interrupted, "no wait was interrupted: the test tested nothing")
		t.Logf("%d waits interrupted; the timer fired after %v", spy.interrupted, firedAfter)
	})
}
