package tests

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"tinyasync/pkg/stagetest"
)

// The chaos soak throws hundreds of clients at a server at once, each
// picking one behaviour after another at random, well-behaved and hostile
// mixed, for as long as -soak says: make test runs a few seconds of it
// against every stage, make soak minutes. Whatever the mix, every answer
// a client waits for must be exact, the server must never reset a client
// that did nothing wrong, its memory must stay bounded, and once the
// clients are gone it must hold no more descriptors or processes than it
// started with. A failure prints the seed that replays the same choices:
//
//	cd tests && go test -run 'Conformance/05-bufferevent-server_\(epoll\)' -property chaos -seed N
var (
	soakTime    = flag.Duration("soak", 4*time.Second, "how long the chaos check runs against each stage")
	soakClients = flag.Int("soak-clients", 200, "how many clients the chaos check keeps connected at once")
)

// chaosWait is how long a client of the soak waits for an answer. The
// machine is as loaded as the soak can make it, and the question here is
// whether every byte comes back, not how soon (line-latency asks that).
const chaosWait = 30 * time.Second

// chaosStall is how long the soak may go without a byte of answer reaching
// any client before it calls the server stalled. With hundreds of clients waiting on answers, a
// server that serves them stops for nothing like this long; the blocking
// loop stops for as long as one client stays silent.
const chaosStall = 3 * time.Second

// A behaviour is one thing a client of the soak does, from connecting to
// closing. It returns how many bytes of answer it checked, and false if
// it failed (having said why) or the soak was halted.
type behaviour struct {
	name string
	run  func(k *soak, st *stream, rng *rand.Rand) (checked int, ok bool)
}

var behaviours = []behaviour{
	{"pipelined", pipelinedBurst},
	{"byte-at-a-time", byteAtATimeLines},
	{"half-close-tail", halfCloseWithTail},
	{"reset-mid-line", resetMidLine},
	{"idle-then-gone", idleThenGone},
	{"burst-unread", burstUnread},
}

// A soak is one run of the chaos check against one server.
type soak struct {
	c   *check
	s   *stagetest.Server
	ctx context.Context // done when the soak's time is up

	mu     sync.Mutex
	cond   *sync.Cond // broadcast when a behaviour finishes or time is up
	served int        // behaviours finished that the server answered

	answered atomic.Int64 // bytes of answer that arrived, by every client

	runs    []atomic.Int64 // by behaviour
	checked []atomic.Int64 // bytes of answer checked, by behaviour
}

// finished records a behaviour that ran to its end.
func (k *soak) finished(i, checked int) {
	k.runs[i].Add(1)
	k.checked[i].Add(int64(checked))
	if checked == 0 {
		return // a client that went without an answer: no sign of the server
	}
	k.mu.Lock()
	k.served++
	k.mu.Unlock()
	k.cond.Broadcast()
}

// waitFor waits until the server has served n behaviours in all, or the
// soak's time is up.
func (k *soak) waitFor(n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for k.served < n && k.ctx.Err() == nil {
		k.cond.Wait()
	}
}

func (k *soak) servedSoFar() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.served
}

func checkChaos(c *check) {
	s := c.start()
	rng := c.rand()
	base, err := s.Usage()
	require.NoError(c, err)
	quietFrom := len(s.Stderr())

	linePool() // made before the clock starts
	ctx, cancel := context.WithTimeout(c.ctx, *soakTime)
	defer cancel()
	k := &soak{c: c, s: s, ctx: ctx, runs: make([]atomic.Int64, len(behaviours)), checked: make([]atomic.Int64, len(behaviours))}
	k.cond = sync.NewCond(&k.mu)
	stopWaking := context.AfterFunc(ctx, func() {
		k.mu.Lock()
		k.cond.Broadcast()
		k.mu.Unlock()
	})
	defer stopWaking()

	// The server's memory, sampled until the last client is done.
	var peak stagetest.Usage
	stopSampling, sampled := make(chan bool), make(chan bool)
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if u, err := s.Usage(); err == nil {
				peak.RSS = max(peak.RSS, u.RSS)
				if u.Procs == 1 { // its high-water mark misses nothing between samples
					peak.RSS = max(peak.RSS, u.PeakRSS)
				}
				peak.FDs = max(peak.FDs, u.FDs)
				peak.Procs = max(peak.Procs, u.Procs)
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()

	start := time.Now()
	var wg sync.WaitGroup
	for range *soakClients {
		seed := rng.Uint64()
		wg.Add(1)
		go func() {
			defer wg.Done()
			k.client(rand.New(rand.NewPCG(seed, seed)))
		}()
	}
	clientsDone := make(chan bool)
	go func() { wg.Wait(); close(clientsDone) }()
	stalled := !k.watch(clientsDone)
	close(stopSampling)
	<-sampled
	if stalled {
		return
	}
	elapsed := time.Since(start)

	var runs, checked int64
	var mix []string
	for i, b := range behaviours {
		runs += k.runs[i].Load()
		checked += k.checked[i].Load()
		mix = append(mix, fmt.Sprintf("%s %d", b.name, k.runs[i].Load()))
	}
	if c.Failed() {
		return
	}
	u, ok := settle(c, s, base, 10*time.Second)
	assert.True(c, ok, "after the soak: %d descriptors, %d processes, %d zombies; at the start %d, %d, %d",
		u.FDs, u.Procs, u.Zombies, base.FDs, base.Procs, base.Zombies)
	if st := c.open(s); st != nil {
		st.exchange("still serving after the soak")
		st.conn.Close()
	}
	assert.Empty(c, s.Stderr()[quietFrom:], "ordinary client behaviour, however hostile, prints nothing without -trace")

	// Bounded: the contract's 48 MiB, and for each client the 1 MiB of
	// answers the back-pressure mark lets a server hold. This is a bound
	// on what hundreds of clients may cost at once, which a leak per
	// connection, per line or per reset breaks in a long enough soak; it is
	// not the proof of back-pressure, which the back-pressure check gives
	// with 64 MiB (loopback's socket buffers take most of a burst of a few
	// MiB, and a server that held on to what it read would pass here).
	bound := base.RSS + 48<<20 + int64(*soakClients)<<20
	if c.stage.dir == "02-forking-server" {
		bound = int64(peak.Procs) * (base.RSS + 2<<20) // a process per client
	}
	assert.Less(c, peak.RSS, bound, "the server's memory at its peak, against %s at the start", mib(base.RSS))

	c.figure("%d clients for %v: %d exchanges (%s), %s of answers checked, 0 lost; peak %s RSS, %d processes, %d descriptors; descriptors %d before, %d after",
		*soakClients, elapsed.Round(100*time.Millisecond), runs, strings.Join(mix, ", "), mib(checked), mib(peak.RSS), peak.Procs, peak.FDs, base.FDs, u.FDs)
}

// watch waits for the clients to end, and calls the server stalled if no
// answer moves for chaosStall; it reports whether the soak ended without
// a stall.
func (k *soak) watch(clientsDone <-chan bool) bool {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last, since := k.answered.Load(), time.Now()
	for {
		select {
		case <-clientsDone:
			return true
		case <-tick.C:
		}
		if n := k.answered.Load(); n != last {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) >= chaosStall {
			k.c.violation("stall", "no client got a byte of answer for %v, after %d behaviours served and %s of answers",
				chaosStall, k.servedSoFar(), mib(k.answered.Load()))
			k.c.halt()
			<-clientsDone
			return false
		}
	}
}

// client runs one behaviour after another until the soak's time is up.
func (k *soak) client(rng *rand.Rand) {
	for k.ctx.Err() == nil && !k.c.Failed() && !k.c.halted.Load() {
		i := rng.IntN(len(behaviours))
		st := k.c.open(k.s)
		if st == nil {
			return
		}
		st.progress = &k.answered
		checked, ok := behaviours[i].run(k, st, rng)
		st.conn.Close()
		if !ok {
			return
		}
		k.finished(i, checked)
	}
}

// The soak's lines are made once for every soak of the process: a burst
// is a window of linePool's text, and its answer the same window of the
// pool's answer, so that checking megabytes costs a bytes.Equal (the race
// detector, which make test runs, makes a loop over every byte slow).
// The pool's seed is fixed, so that a soak's seed alone replays it.
var linePool = sync.OnceValue(func() (pool struct{ text, answer []byte }) {
	text := make([]byte, 9<<20)
	rand.NewChaCha8([32]byte{}).Read(text)
	for i := 0; ; i++ { // no newline but those put in below
		j := bytes.IndexByte(text[i:], '\n')
		if j < 0 {
			break
		}
		i += j
		text[i] = '\v'
	}
	// Short lines mostly, one in five up to 1000 bytes, and one in 200 up
	// to 40,000, longer than MAX_LINE: by bytes, about as much of each of
	// the long kinds, and a seventh of short lines.
	rng := rand.New(rand.NewPCG(1, 1))
	for at := 0; at < len(text); at++ {
		maxLen := 80
		switch {
		case rng.IntN(200) == 0:
			maxLen = 40000
		case rng.IntN(5) == 0:
			maxLen = 1000
		}
		at += rng.IntN(maxLen + 1)
		if at < len(text) {
			text[at] = '\n'
		}
	}
	pool.text, pool.answer = text, rot13Of(text)
	return pool
})

// chaosLines returns random lines of about size bytes (at most 8 MiB) in
// all, and their answer. The first may be the end of a line; the last is
// whole.
func chaosLines(rng *rand.Rand, size int) (text, answer []byte) {
	pool := linePool()
	from := rng.IntN(len(pool.text) - size - 40001)
	to := from + size
	to += bytes.IndexByte(pool.text[to-1:], '\n')
	return pool.text[from:to:to], pool.answer[from:to:to] // appending copies
}

// pipelinedBurst writes up to a MiB of lines in pieces while it reads
// the answers, then closes.
func pipelinedBurst(k *soak, st *stream, rng *rand.Rand) (int, bool) {
	data, answer := chaosLines(rng, 1+rng.IntN(1<<20))
	st.answer = answer
	wrote := st.sendInPieces(rng, data, len(data)/2+1, nil)
	ok := st.await(len(st.sent), chaosWait)
	if err := <-wrote; err != nil && ok {
		k.c.Errorf("writing %d bytes: %v", len(st.sent), err)
		return 0, false
	}
	return len(st.got), ok
}

// byteAtATimeLines sends a few short lines a byte per write, each
// answered before the next.
func byteAtATimeLines(k *soak, st *stream, rng *rand.Rand) (int, bool) {
	for range 1 + rng.IntN(3) {
		for _, b := range randomLines(rng, 1, 60) {
			if !st.send([]byte{b}) {
				return 0, false
			}
		}
		if !st.awaitAll(chaosWait) {
			return 0, false
		}
	}
	return len(st.got), true
}

// halfCloseWithTail sends lines and an unterminated tail (longer than
// MAX_LINE now and then), shuts down its write side, and reads the whole
// answer and an orderly end of stream.
func halfCloseWithTail(k *soak, st *stream, rng *rand.Rand) (int, bool) {
	data := randomLines(rng, rng.IntN(50), 200)
	tail := randomLines(rng, 1, []int{100, 40000}[rng.IntN(2)])
	data = append(data, tail[:len(tail)-1]...)
	wrote := st.sendInPieces(rng, data, len(data)/2+1, st.conn.CloseWrite)
	ok := st.awaitEOF(chaosWait)
	if err := <-wrote; err != nil && ok {
		k.c.Errorf("writing %d bytes and shutting down: %v", len(data), err)
		return 0, false
	}
	return len(st.got), ok
}

// resetMidLine exchanges a few lines, sometimes leaves a burst unread,
// then sends half a line and resets.
func resetMidLine(k *soak, st *stream, rng *rand.Rand) (int, bool) {
	for range rng.IntN(3) {
		if !st.send(randomLines(rng, 1, 200)) || !st.awaitAll(chaosWait) {
			return 0, false
		}
	}
	checked := len(st.got)
	if rng.IntN(2) == 0 {
		// Answers pending on the server's side when the reset comes.
		// Nothing of this is read, so the server may stop reading too:
		// whatever it takes in a moment is enough.
		st.conn.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		burst, _ := chaosLines(rng, 1+rng.IntN(256<<10))
		st.conn.Write(burst)
	}
	half := randomLines(rng, 1, 5000)
	st.conn.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	st.conn.Write(half[:len(half)-1])
	st.reset()
	return checked, true
}

// idleThenGone connects and says nothing (or half a line) while other
// clients finish a few hundred things, then closes or resets.
func idleThenGone(k *soak, st *stream, rng *rand.Rand) (int, bool) {
	if rng.IntN(2) == 0 {
		half := randomLines(rng, 1, 100)
		if !st.send(half[:len(half)-1]) {
			return 0, false
		}
	}
	k.waitFor(k.servedSoFar() + 1 + rng.IntN(2**soakClients))
	if rng.IntN(2) == 0 {
		st.reset()
	}
	return 0, true
}

// burstUnread writes one to eight MiB of lines without reading, until it
// is done or the server stops taking them (back-pressure), waits a while
// longer, then reads every answer while it writes the rest.
func burstUnread(k *soak, st *stream, rng *rand.Rand) (int, bool) {
	data, answer := chaosLines(rng, 1<<20+rng.IntN(7<<20))
	st.sent, st.answer = data, answer
	full := make(chan bool)
	wrote := make(chan error, 1)
	go func() {
		blocked := false
		for p := data; len(p) > 0; {
			// A write that waits this long finds the server no longer
			// reading: the answers must now be read for it to go on.
			if !blocked {
				st.conn.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			}
			n, err := st.conn.Write(p[:min(len(p), 64<<10)])
			p = p[n:]
			if errors.Is(err, os.ErrDeadlineExceeded) && !blocked {
				blocked = true
				close(full)
				st.conn.SetWriteDeadline(k.c.deadline())
				continue
			}
			if err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote: // all of it taken before the server stopped reading
		wrote <- err
	case <-full:
	}
	// And still unread while other clients finish what they do: a server
	// that buffered all it was sent would now hold all of it.
	k.waitFor(k.servedSoFar() + 1 + rng.IntN(*soakClients/2+1))
	ok := st.await(len(data), chaosWait)
	if err := <-wrote; err != nil && ok {
		k.c.Errorf("writing %d bytes: %v", len(data), err)
		return 0, false
	}
	return len(st.got), ok
}
