package event

import (
	"bytes"
	"log"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"tinyasync/pkg/uring"
)

// Every test runs on every backend this system has (libevent's backend
// matrix), the environment ignored, and checks the base's invariants
// after.

// forEachMethod runs test on a fresh base of each method.
func forEachMethod(t *testing.T, test func(t *testing.T, b *Base)) {
	for _, name := range SupportedMethods() {
		t.Run(name, func(t *testing.T) {
			b := newBaseFor(t, name)
			test(t, b)
			b.check(t)
			require.NoError(t, b.Free())
		})
	}
}

// newBaseFor returns a base that uses the method called name.
func newBaseFor(t *testing.T, name string) *Base {
	t.Helper()
	cfg := NewConfig()
	cfg.IgnoreEnv()
	for _, other := range SupportedMethods() {
		if other != name {
			cfg.AvoidMethod(other)
		}
	}
	b, err := NewBaseWithConfig(cfg)
	if name == "io_uring" && uring.Available() != nil {
		t.Skip(uring.Available()) // a sandbox or an older kernel: the reason, in one line
	}
	require.NoError(t, err)
	require.Equal(t, name, b.Method())
	return b
}

// newPipe returns a pipe's two ends, nonblocking, closed when the test
// ends (unless the test closes them first).
func newPipe(t testing.TB) (r, w int) {
	t.Helper()
	var p [2]int
	require.NoError(t, pipe(p[:]))
	t.Cleanup(func() {
		unix.Close(p[0])
		unix.Close(p[1])
	})
	return p[0], p[1]
}

func write(t testing.TB, fd int, s string) {
	t.Helper()
	_, err := unix.Write(fd, []byte(s))
	require.NoError(t, err)
}

func TestReadiness(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		r, w := newPipe(t)
		var got []Events
		rev := New(b, r, Read, func(fd int, what Events) {
			assert.Equal(t, r, fd)
			got = append(got, what)
		})
		require.NoError(t, rev.Add(0))
		// Nothing is ready: a NonBlock loop runs nothing.
		require.NoError(t, b.Loop(NonBlock))
		assert.Empty(t, got)

		write(t, w, "x")
		require.NoError(t, b.Loop(Once))
		assert.Equal(t, []Events{Read}, got)

		// A pipe's write end is writable at once.
		var wrote Events
		wev := New(b, w, Write, func(fd int, what Events) { wrote = what })
		require.NoError(t, wev.Add(0))
		require.NoError(t, b.Loop(Once))
		assert.Equal(t, Write, wrote)
	})
}

func TestPersistAndOneShot(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		r, w := newPipe(t)
		write(t, w, "ready")
		var once, persist int
		one := New(b, r, Read, func(int, Events) { once++ })
		per := New(b, r, Read|Persist, func(int, Events) { persist++ })
		require.NoError(t, one.Add(0))
		require.NoError(t, per.Add(0))
		for range 3 {
			require.NoError(t, b.Loop(Once))
		}
		assert.Equal(t, 1, once, "a one-shot event runs once")
		assert.Equal(t, 3, persist, "a persistent event runs while the pipe stays readable")
		what, _ := one.Pending(Read | Timeout)
		assert.Zero(t, what, "a one-shot event is not pending after it ran")
		what, _ = per.Pending(Read | Timeout)
		assert.Equal(t, Read, what)
		per.Free()
	})
}

func TestDelAndAddInsideCallbacks(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		r1, w1 := newPipe(t)
		r2, w2 := newPipe(t)
		write(t, w1, "1")
		write(t, w2, "2")
		var ran []string
		var second *Event
		first := New(b, r1, Read|Persist, nil)
		first.cb = func(int, Events) {
			ran = append(ran, "first")
			second.Del()  // active in this round: must not run
			first.Del()   // itself
			first.Add(0)  // and back
			first.Free()  // and gone for good
			second.Add(0) // pending again, but not active this round
		}
		second = New(b, r2, Read|Persist, func(int, Events) { ran = append(ran, "second") })
		require.NoError(t, first.Add(0))
		require.NoError(t, second.Add(0))
		// Both pipes are readable; which event the backend reports first
		// is its business, so make "first" active before the wait.
		first.Active(Read)
		require.NoError(t, b.Loop(Once))
		assert.Equal(t, []string{"first"}, ran, "a deleted event's callback does not run")
		b.check(t)
		require.NoError(t, b.Loop(Once))
		assert.Equal(t, []string{"first", "second"}, ran, "re-added, it runs in the next round")
		assert.Error(t, first.Add(0), "a freed event cannot be added")
		second.Free()
	})
}

func TestTimersInOrder(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		seed := rand.Uint64()
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, seed))
		type timer struct {
			ev  *Event
			due time.Time
		}
		var fired []*timer
		timers := make([]*timer, 0, 20000)
		for range 20000 {
			tm := &timer{}
			tm.ev = NewTimer(b, func(int, Events) {
				if time.Now().Before(tm.due) {
					t.Errorf("a timer fired %v early", time.Until(tm.due))
				}
				fired = append(fired, tm)
			})
			timers = append(timers, tm)
		}
		// 20,000 random adds and deletes: re-adding moves a deadline.
		live := map[*timer]bool{}
		for range 20000 {
			tm := timers[rng.IntN(len(timers))]
			if rng.IntN(3) == 0 {
				tm.ev.Del()
				delete(live, tm)
				continue
			}
			d := time.Duration(rng.IntN(50_000)) * time.Microsecond
			tm.due = time.Now().Add(d)
			require.NoError(t, tm.ev.Add(d+time.Nanosecond))
			live[tm] = true
		}
		b.check(t)
		require.NoError(t, b.Dispatch())
		assert.Len(t, fired, len(live), "every pending timer fires once, and no deleted one")
		for i := 1; i < len(fired); i++ {
			if fired[i].ev.deadline < fired[i-1].ev.deadline {
				t.Fatalf("timer %d (due %v) fired after one due later", i, fired[i].ev.deadline)
			}
		}
	})
}

func TestLoopExitAndLoopBreak(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		ticks := 0
		tick := New(b, -1, Persist, func(int, Events) { ticks++ })
		require.NoError(t, tick.Add(5*time.Millisecond))

		// Before the loop runs, LoopBreak does nothing...
		require.NoError(t, b.LoopBreak())
		require.NoError(t, b.LoopExit(40*time.Millisecond))
		start := time.Now()
		require.NoError(t, b.Dispatch())
		assert.True(t, b.GotExit())
		assert.False(t, b.GotBreak())
		assert.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond, "the loop ran on, despite the early LoopBreak")
		assert.Positive(t, ticks)

		// ...while LoopExit ends the next loop after one round.
		ticks = 0
		require.NoError(t, b.LoopExit(0))
		require.NoError(t, b.Dispatch())
		assert.True(t, b.GotExit())
		assert.LessOrEqual(t, ticks, 1, "one round at most")

		// LoopBreak in a callback: the other callbacks of the round wait
		// for the next loop. LoopExit(0) in one: they run first.
		var ran []string
		a := NewTimer(b, func(int, Events) { ran = append(ran, "a"); b.LoopBreak() })
		c := NewTimer(b, func(int, Events) { ran = append(ran, "c") })
		a.Active(Timeout)
		c.Active(Timeout)
		require.NoError(t, b.Loop(0))
		assert.Equal(t, []string{"a"}, ran)
		assert.True(t, b.GotBreak())
		require.NoError(t, b.Loop(NonBlock))
		assert.Equal(t, []string{"a", "c"}, ran, "left active, c runs in the next loop")

		ran = nil
		a = NewTimer(b, func(int, Events) { ran = append(ran, "a"); b.LoopExit(0) })
		a.Active(Timeout)
		c.Active(Timeout)
		require.NoError(t, b.Dispatch())
		assert.Equal(t, []string{"a", "c"}, ran)
		tick.Free()
	})
}

func TestWakeFromAnotherGoroutine(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		r, _ := newPipe(t)
		idle := New(b, r, Read|Persist, func(int, Events) { t.Error("nothing was written") })
		require.NoError(t, idle.Add(0))
		// No timer: the loop waits without a limit, until woken. (A
		// LoopBreak made before the loop runs is forgotten, so it is made
		// once the loop is about to wait.)
		waiting := make(chan bool, 1)
		spy := spyOn(b)
		spy.before = func() {
			select {
			case waiting <- true:
			default:
			}
		}
		go func() {
			<-waiting
			b.LoopBreak()
		}()
		require.NoError(t, b.Dispatch())
		assert.True(t, b.GotBreak())
		spy.before = nil

		start := time.Now()
		go b.LoopExit(30 * time.Millisecond)
		require.NoError(t, b.Dispatch())
		assert.True(t, b.GotExit())
		assert.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
		idle.Free()
	})
}

func TestSignals(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		var got []int
		usr1 := NewSignal(b, syscall.SIGUSR1, func(fd int, what Events) {
			assert.Equal(t, Signal, what)
			got = append(got, fd)
			if len(got) == 1 {
				// A signal that arrives during a callback is delivered in
				// a later round.
				syscall.Kill(os.Getpid(), syscall.SIGUSR1)
			}
		})
		require.NoError(t, usr1.Add(0))
		// One that arrives while the loop waits, with nothing else to do.
		waiting := make(chan bool, 1)
		spy := spyOn(b)
		spy.before = func() {
			select {
			case waiting <- true:
			default:
			}
		}
		go func() {
			<-waiting
			syscall.Kill(os.Getpid(), syscall.SIGUSR1)
		}()
		require.NoError(t, b.Loop(Once))
		spy.before = nil
		require.NoError(t, b.Loop(Once))
		assert.Equal(t, []int{int(syscall.SIGUSR1), int(syscall.SIGUSR1)}, got)
		usr1.Free()
		require.NoError(t, b.Dispatch(), "with the signal event gone, nothing is pending")
	})
}

func TestManyReadyAtOnce(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		const n = 100 // more than an epoll or kqueue array holds at first
		ran := map[int]bool{}
		for range n {
			r, w := newPipe(t)
			write(t, w, "x")
			ev := New(b, r, Read, func(fd int, _ Events) { ran[fd] = true })
			require.NoError(t, ev.Add(0))
		}
		for len(ran) < n {
			before := len(ran)
			require.NoError(t, b.Loop(Once))
			require.Greater(t, len(ran), before)
		}
		assert.Len(t, ran, n)
		if n, ok := resultCap(b.be); ok {
			assert.Greater(t, n, 32, "the result array grew when a wait filled it")
		}
	})
}

func TestTenThousandDescriptors(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		if b.Method() == "select" {
			// select cannot watch them; it says so, and does not panic.
			r, _ := newPipe(t)
			high, err := unix.FcntlInt(uintptr(r), unix.F_DUPFD_CLOEXEC, unix.FD_SETSIZE+10)
			require.NoError(t, err)
			defer unix.Close(high)
			err = New(b, high, Read, func(int, Events) {}).Add(0)
			assert.ErrorContains(t, err, "FD_SETSIZE")
			return
		}
		const pipes = 5000 // 10,000 descriptors
		var lim unix.Rlimit
		require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &lim))
		require.Greater(t, lim.Cur, uint64(2*pipes+100), "the test needs 10,100 descriptors")
		readEnds := make([]int, pipes)
		writeEnds := make([]int, pipes)
		ran := map[int]bool{}
		for i := range pipes {
			readEnds[i], writeEnds[i] = newPipe(t)
			ev := New(b, readEnds[i], Read|Persist, func(fd int, _ Events) {
				ran[fd] = true
				unix.Read(fd, make([]byte, 8))
			})
			require.NoError(t, ev.Add(0))
		}
		want := map[int]bool{}
		for range 500 {
			i := rand.IntN(pipes)
			want[readEnds[i]] = true
			write(t, writeEnds[i], "x")
		}
		for len(ran) < len(want) {
			before := len(ran)
			require.NoError(t, b.Loop(Once))
			require.Greater(t, len(ran), before)
		}
		assert.Equal(t, want, ran, "exactly the readable ones ran")
		for _, evs := range b.io {
			for _, ev := range evs {
				if !ev.internal {
					ev.Free()
				}
			}
		}
	})
}

func TestClosedAndReusedDescriptor(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		var p [2]int
		require.NoError(t, pipe(p[:]))
		old := p[0]
		write(t, p[1], "stale")
		var ran []string
		oldEv := New(b, old, Read|Persist, func(int, Events) { ran = append(ran, "old") })
		require.NoError(t, oldEv.Add(0))
		var newEv *Event
		var fresh [2]int
		first := NewTimer(b, func(int, Events) {
			ran = append(ran, "first")
			// In the same round as the old descriptor's readiness: delete
			// its event, close it, and open another under the same number.
			oldEv.Free()
			unix.Close(p[0])
			unix.Close(p[1])
			require.NoError(t, pipe(fresh[:]))
			require.Equal(t, old, fresh[0], "the number is reused")
			newEv = New(b, fresh[0], Read|Persist, func(int, Events) { ran = append(ran, "new") })
			require.NoError(t, newEv.Add(0))
		})
		first.Active(Timeout)
		require.NoError(t, b.Loop(Once))
		assert.Equal(t, []string{"first"}, ran, "neither the old event nor the new one ran for the old readiness")
		require.NoError(t, b.Loop(NonBlock))
		assert.Equal(t, []string{"first"}, ran, "the new descriptor is not readable")
		write(t, fresh[1], "fresh")
		require.NoError(t, b.Loop(Once))
		assert.Equal(t, []string{"first", "new"}, ran)
		newEv.Free()
		unix.Close(fresh[0])
		unix.Close(fresh[1])
	})
}

func TestPersistentTimeoutRestartsWhenItRuns(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		r, w := newPipe(t)
		var reads, timeouts int
		var lastRead time.Time
		ev := New(b, r, Read|Persist, func(fd int, what Events) {
			if what&Timeout != 0 {
				timeouts++
				assert.GreaterOrEqual(t, time.Since(lastRead), 200*time.Millisecond, "timed out early")
				b.LoopExit(0)
			}
			if what&Read != 0 {
				reads++
				lastRead = time.Now()
				unix.Read(fd, make([]byte, 16))
			}
		})
		lastRead = time.Now()
		require.NoError(t, ev.Add(200*time.Millisecond))
		// A byte every 20 ms for 300 ms keeps resetting the timeout.
		pinger := NewTimer(b, nil)
		pings := 0
		pinger.cb = func(int, Events) {
			write(t, w, "x")
			if pings++; pings < 15 {
				pinger.Add(20 * time.Millisecond)
			}
		}
		require.NoError(t, pinger.Add(20*time.Millisecond))
		require.NoError(t, b.Dispatch())
		assert.Equal(t, 1, timeouts, "one timeout, once the bytes stopped")
		assert.GreaterOrEqual(t, reads, 10)
		ev.Free()
	})
}

func TestPersistentTimerAfterAStallFiresOnce(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		var at []time.Time
		tick := New(b, -1, Persist, func(int, Events) {
			at = append(at, time.Now())
			if len(at) == 2 {
				time.Sleep(100 * time.Millisecond) // the loop stalls: ten periods missed
			}
			if len(at) == 6 {
				b.LoopExit(0)
			}
		})
		require.NoError(t, tick.Add(10*time.Millisecond))
		require.NoError(t, b.Dispatch())
		// The run after the stall is late, and once: the next one is a
		// period after it, not at once to catch up. (Later gaps may be
		// shorter, as the timer keeps its pace from there.)
		gap := at[3].Sub(at[2])
		assert.GreaterOrEqual(t, gap, 5*time.Millisecond, "a burst after the stall: runs 2 and 3 %v apart", gap)
		tick.Free()
	})
}

func TestEdgeTriggered(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		r, w := newPipe(t)
		et := New(b, r, Read|Persist|ET, func(fd int, _ Events) {
			unix.Read(fd, make([]byte, 1)) // one byte of two
		})
		err := et.Add(0)
		if !b.be.edgeTriggered() { // poll, select, io_uring's polls
			assert.ErrorContains(t, err, "edge-triggered", "%s has no edge triggering, and says so", b.Method())
			return
		}
		require.NoError(t, err)
		runs := 0
		et.cb = func(fd int, _ Events) { runs++; unix.Read(fd, make([]byte, 1)) }
		write(t, w, "ab")
		require.NoError(t, b.Loop(Once))
		require.NoError(t, b.Loop(NonBlock))
		assert.Equal(t, 1, runs, "edge-triggered: a byte left unread does not make the descriptor ready again")
		write(t, w, "c")
		require.NoError(t, b.Loop(Once))
		assert.Equal(t, 2, runs, "new data is a new edge")
		et.Free()
	})
}

func TestPendingAndActive(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		r, _ := newPipe(t)
		ev := New(b, r, Read, func(int, Events) {})
		what, _ := ev.Pending(Read | Timeout)
		assert.Zero(t, what, "initialized, not pending")
		require.NoError(t, ev.Add(time.Hour))
		what, due := ev.Pending(Read | Timeout)
		assert.Equal(t, Read|Timeout, what)
		assert.WithinDuration(t, time.Now().Add(time.Hour), due, time.Minute)
		what, _ = ev.Pending(Write)
		assert.Zero(t, what)
		var got Events
		ev.cb = func(_ int, w Events) { got = w }
		ev.Active(Write)
		require.NoError(t, b.Loop(NonBlock))
		assert.Equal(t, Write, got, "Active runs the callback with what it was given")
		what, _ = ev.Pending(Read | Timeout)
		assert.Zero(t, what, "a one-shot event, run, is no longer pending")
		require.NoError(t, b.Dispatch(), "with no event pending, the loop returns at once")
	})
}

func TestMethodChoice(t *testing.T) {
	methods := SupportedMethods()
	require.NotEmpty(t, methods)
	b, err := NewBase()
	require.NoError(t, err)
	if os.Getenv("EVENT_NO"+upper(methods[0])) == "" {
		assert.Equal(t, methods[0], b.Method(), "the most efficient method by default")
	}
	b.Free()

	for i, name := range methods[:len(methods)-1] {
		t.Setenv("EVENT_NO"+upper(name), "1")
		b, err := NewBase()
		require.NoError(t, err)
		assert.Equal(t, methods[i+1], b.Method(), "EVENT_NO%s rules %s out", upper(name), name)
		b.Free()
	}
	t.Setenv("EVENT_NO"+upper(methods[len(methods)-1]), "yes")
	_, err = NewBase()
	assert.ErrorContains(t, err, "ruled out")

	// An empty value rules nothing out; a config can ignore the variables.
	for _, name := range methods {
		t.Setenv("EVENT_NO"+upper(name), "")
	}
	t.Setenv("EVENT_NO"+upper(methods[0]), "1")
	cfg := NewConfig()
	cfg.IgnoreEnv()
	b, err = NewBaseWithConfig(cfg)
	require.NoError(t, err)
	assert.Equal(t, methods[0], b.Method())
	b.Free()

	var out bytes.Buffer
	log.SetOutput(&out)
	defer log.SetOutput(os.Stderr)
	t.Setenv("EVENT_SHOW_METHOD", "1")
	b, err = NewBase()
	require.NoError(t, err)
	assert.Contains(t, out.String(), "using method "+b.Method())
	b.Free()
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestNoEventsReturnsAtOnce(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		done := make(chan error)
		go func() { done <- b.Dispatch() }()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("a loop with nothing to wait for waited")
		}
	})
}

func TestSignalCallbackDeletesOrBreaks(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		// Three deliveries before the loop runs: one callback each, as in
		// libevent, unless a callback deletes the event or breaks the loop.
		for _, stop := range []string{"free", "del", "break", "none"} {
			runs := 0
			var ev *Event
			ev = NewSignal(b, syscall.SIGUSR2, func(int, Events) {
				runs++
				switch stop {
				case "free":
					ev.Free()
				case "del":
					ev.Del()
				case "break":
					b.LoopBreak()
				}
			})
			require.NoError(t, ev.Add(0))
			// One at a time: the kernel folds a signal sent while the same
			// one is still pending into it.
			for i := range int32(3) {
				syscall.Kill(os.Getpid(), syscall.SIGUSR2)
				for deadline := time.Now().Add(5 * time.Second); b.sigCount[syscall.SIGUSR2].Load() <= i && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond) // polls a condition; orders nothing
				}
			}
			require.EqualValues(t, 3, b.sigCount[syscall.SIGUSR2].Load(), "three deliveries counted")
			require.NoError(t, b.Loop(Once))
			if stop == "none" {
				assert.Equal(t, 3, runs, "one callback per delivery")
			} else {
				assert.Equal(t, 1, runs, "after the callback did %s, no more runs", stop)
			}
			ev.Free()
		}
	})
}

func TestSignalWhileUnwatchedIsForgotten(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		runs := 0
		hup := NewSignal(b, syscall.SIGHUP, func(int, Events) { runs++ })
		require.NoError(t, hup.Add(0))
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		for deadline := time.Now().Add(5 * time.Second); b.sigCount[syscall.SIGHUP].Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond) // polls a condition; orders nothing
		}
		hup.Del() // the delivery is counted, and nobody waits for it now
		tick := NewTimer(b, func(int, Events) {})
		require.NoError(t, tick.Add(time.Millisecond))
		require.NoError(t, b.Dispatch())
		require.NoError(t, hup.Add(0))
		require.NoError(t, b.Loop(NonBlock))
		assert.Zero(t, runs, "a signal that came while unwatched is not handed to the event added later")
		hup.Free()
	})
}

func TestSignalEventsComeAndGoWhileOthersArrive(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		// SIGUSR2 ends the process unless something catches it. Watched
		// all along, it must stay caught while an event for another
		// signal is added and deleted again and again.
		got := 0
		usr2 := NewSignal(b, syscall.SIGUSR2, func(int, Events) { got++ })
		require.NoError(t, usr2.Add(0))
		stop := make(chan bool)
		sent := make(chan int)
		go func() {
			n := 0
			for {
				select {
				case <-stop:
					sent <- n
					return
				default:
				}
				syscall.Kill(os.Getpid(), syscall.SIGUSR2)
				n++
			}
		}()
		for range 2000 {
			usr1 := NewSignal(b, syscall.SIGUSR1, func(int, Events) {})
			require.NoError(t, usr1.Add(0))
			usr1.Free()
		}
		close(stop)
		n := <-sent
		require.NoError(t, b.Loop(NonBlock))
		assert.Positive(t, got)
		t.Logf("%d SIGUSR2 sent while SIGUSR1's event came and went 2000 times; the process lives", n)
		usr2.Free()
	})
}

func TestLoopExitCountsFromTheCall(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		start := time.Now()
		require.NoError(t, b.LoopExit(50*time.Millisecond))
		// However long before the loop it was made, the exit is due 50 ms
		// after the call; and the loop waits for it, though nothing else
		// is pending.
		for time.Since(start) < 30*time.Millisecond {
			time.Sleep(time.Millisecond) // the delay being measured
		}
		require.NoError(t, b.Dispatch())
		assert.True(t, b.GotExit(), "the loop waited for the exit")
		elapsed := time.Since(start)
		assert.GreaterOrEqual(t, elapsed, 50*time.Millisecond)
		assert.Less(t, elapsed, 75*time.Millisecond+10*time.Second/1000, "counted from the call, not from the loop's start")
	})
}

func TestOnceWaitsPastDeletedActiveEvents(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		gone := NewTimer(b, func(int, Events) { t.Error("a deleted event ran") })
		gone.Active(Timeout)
		gone.Del() // active, then deleted: nothing is due any more
		ran := false
		tm := NewTimer(b, func(int, Events) { ran = true })
		require.NoError(t, tm.Add(20*time.Millisecond))
		require.NoError(t, b.Loop(Once))
		assert.True(t, ran, "Once waited for a callback that runs")
	})
}

func TestFreeTwiceAndWakeAfterFree(t *testing.T) {
	b := newBaseFor(t, SupportedMethods()[0])
	require.NoError(t, b.Free())
	require.NoError(t, b.Free(), "a second Free does nothing")
	assert.NoError(t, b.LoopBreak(), "nor does a LoopBreak after Free")
	assert.NoError(t, b.LoopExit(0))
}

func TestLongTimeoutsAreCapped(t *testing.T) {
	assert.Equal(t, -1, msTimeout(-1))
	assert.Equal(t, 0, msTimeout(0))
	assert.Equal(t, 1, msTimeout(300*time.Microsecond), "rounded up, never a busy loop of zero waits")
	assert.Equal(t, int(maxWait/time.Millisecond), msTimeout(30*24*time.Hour), "a 30-day wait stays positive in 32 bits")
	assert.Less(t, msTimeout(365*24*time.Hour), 1<<31-1)
}

// Restarting a timeout later, as every read does to a read timeout, leaves
// the heap alone; the event still fires at its new deadline, not the old
// one, and after an event due in between. Moving a timeout earlier moves it
// in the heap at once.
func TestRestartedTimeoutFiresAtItsNewDeadline(t *testing.T) {
	forEachMethod(t, func(t *testing.T, b *Base) {
		var order []string
		var due time.Time
		later := NewTimer(b, func(int, Events) {
			assert.False(t, time.Now().Before(due), "fired %v early, at its old deadline", time.Until(due))
			order = append(order, "later")
		})
		between := NewTimer(b, func(int, Events) { order = append(order, "between") })
		require.NoError(t, later.Add(10*time.Millisecond))
		require.NoError(t, between.Add(30*time.Millisecond))
		at := later.at

		due = time.Now().Add(60 * time.Millisecond)
		require.NoError(t, later.Add(60*time.Millisecond))
		assert.Equal(t, at, later.at, "a later deadline moved the event in the heap")
		assert.Greater(t, later.deadline, later.at)
		b.check(t)
		_, when := later.Pending(Timeout)
		assert.WithinDuration(t, due, when, 5*time.Millisecond, "Pending reports the new deadline")

		require.NoError(t, b.Dispatch())
		assert.Equal(t, []string{"between", "later"}, order)
		b.check(t)

		// Earlier: the heap moves at once.
		require.NoError(t, later.Add(time.Hour))
		require.NoError(t, later.Add(time.Millisecond))
		assert.Equal(t, later.deadline, later.at, "an earlier deadline takes its place at once")
		b.check(t)
		order = nil
		due = time.Now()
		require.NoError(t, b.Dispatch())
		assert.Equal(t, []string{"later"}, order)
		later.Free()
		between.Free()
	})
}

// An Event fills one 64-byte size class exactly, as its comment says: a
// server holds two per connection, and a field added carelessly would
// make them 80.
func TestEventIs64Bytes(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is for 64-bit systems")
	}
	assert.Equal(t, uintptr(64), unsafe.Sizeof(Event{}))
}
