package tests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"tinyasync/pkg/stagetest"
	"tinyasync/pkg/uring"
)

// serverProperties are the rules of CONTRACT.md for every server, in the
// order the contract gives them.
var serverProperties = []property{
	{"usage", "-h prints usage on stderr and exits 0; an unknown flag prints the error and usage and exits 2", 20 * time.Second, checkUsage, nil},
	{"listening-line", "once listening, one stderr line says `listening on HOST:PORT` with the port bound, never :0", 20 * time.Second, checkListeningLine, nil},
	{"ipv6", "-listen [::1]:0 works, and the line says [::1]:PORT", 20 * time.Second, checkIPv6, nil},
	{"listen-errors", "a failure to listen is one stderr line with the -listen value and the reason, and exit status 1", 30 * time.Second, checkListenErrors, nil},
	{"sigterm", "SIGTERM with 1000 clients, one mid-transfer, and again at once: within 2 s, exit status 0 and no process of the server left", 60 * time.Second, func(c *check) { checkStop(c, syscall.SIGTERM) }, nil},
	{"sigint", "SIGINT to the process group with 1000 clients, one mid-transfer, and again at once: within 2 s, exit status 0 and no process of the server left", 60 * time.Second, func(c *check) { checkStop(c, syscall.SIGINT) }, nil},
	{"stray-signals", "SIGURG and SIGWINCH to every thread, again and again, idle and busy: every client served, nothing logged, and only SIGINT or SIGTERM ends the server", 60 * time.Second, checkStraySignals, nil},
	{"quiet", "without -trace, ordinary client behaviour prints nothing after the listening line", 30 * time.Second, checkQuiet, nil},
	{"trace", "-trace narrates accepts, reads and writes with their byte counts, and closes", 20 * time.Second, checkTrace, nil},
	{"every-byte", "the output is exactly ROT13 of the input, for all 256 byte values", 20 * time.Second, checkEveryByte, nil},
	{"line-latency", "a complete line is answered without waiting for more input, whatever came with it", 20 * time.Second, checkLineLatency, nil},
	{"pipelined", "many lines in few writes, split anywhere: every byte answered, in order", 30 * time.Second, checkPipelined, nil},
	{"byte-at-a-time", "a line sent one byte per write is answered", 20 * time.Second, checkByteAtATime, nil},
	{"max-line", "16384 bytes without a newline are sent on without waiting; longer lines are never cut", 30 * time.Second, checkMaxLine, nil},
	{"half-close", "after the client shuts down its write side, everything left is sent, then an orderly close", 30 * time.Second, checkHalfClose, nil},
	{"reset-isolation", "a client that resets or vanishes affects no other client", 30 * time.Second, checkResetIsolation, nil},
	{"concurrency", "a silent client holds up no other client", 30 * time.Second, checkConcurrency, nil},
	{"fairness", "a client that sends as fast as it can holds up no other client", 60 * time.Second, checkFairness, nil},
	{"many-clients", "2000 concurrent clients (10,000 where the stage says so) are each answered; while they are silent, a working client is answered within 1 s a line", 180 * time.Second, checkManyClients, nil},
	{"back-pressure", "a client writing 64 MiB without reading costs under 48 MiB, others are served, and it gets every byte back", 180 * time.Second, checkBackPressure, nil},
	{"idle-cpu", "an idle server uses under 10% of a core, while a client's socket is full and after it drained", 60 * time.Second, checkIdleCPU, nil},
	{"emfile", "out of descriptors: at most a log line a second, under 10% of a core, a client served within 2 s of descriptors coming free", 60 * time.Second, checkEMFILE, nil},
	{"chaos", "hundreds of clients, well-behaved and hostile mixed at random, for -soak: every answer exact, no reset, memory bounded, nothing leaked, nothing logged", 120 * time.Second, checkChaos, nil},
	{"no-leaks", "2000 connect/line/close cycles under a limit of 32 descriptors leak no descriptor, process or zombie", 180 * time.Second, checkNoLeaks, nil},
	{"one-listener", "only the server process holds the listening socket; children never inherit it", 30 * time.Second, checkOneListener, nil},
	{"methods", "EVENT_NO* rule a backend out; EVENT_SHOW_METHOD prints `using method NAME`; the most efficient is the default", 30 * time.Second, checkMethods,
		func(st stage) bool { return st.reactor && len(st.env) == 0 }},
	{"no-ctl-per-line", "a client's lines change nothing the backend watches: no epoll_ctl per answer (04, 05); on io_uring, nothing is watched: each line is a recv and a send handed to the kernel", 30 * time.Second, checkNoCtlPerLine,
		func(st stage) bool { return st.reactor }},
	{"io-uring-refused", "where io_uring is refused (a seccomp filter, as in a container): one stderr line that says so and why, and exit status 1 (07, 05 with EVENT_IOURING)", 30 * time.Second, checkIOURingRefused,
		func(st stage) bool { return st.completion }},
}

// noPanic checks that output carries no Go panic or stack trace.
func noPanic(c *check, out []byte) {
	for _, sign := range []string{"panic:", "goroutine ", "runtime."} {
		assert.NotContains(c, string(out), sign, "a user's mistake never gets a stack trace")
	}
}

func checkUsage(c *check) {
	r := c.built.Run(c.T, 10*time.Second, "-h")
	assert.Equal(c, 0, r.ExitCode, "-h exits 0; stderr:\n%s", r.Stderr)
	assert.Contains(c, string(r.Stderr), "-listen", "usage names -listen")
	assert.Contains(c, string(r.Stderr), "-trace", "usage names -trace")
	assert.Contains(c, string(r.Stderr), "127.0.0.1:40713", "usage gives the default address")
	assert.NotContains(c, string(r.Stderr), "listening on", "-h must not start the server")
	assert.Empty(c, r.Stdout, "usage goes to stderr")
	noPanic(c, r.Stderr)

	r = c.built.Run(c.T, 10*time.Second, "-no-such-flag")
	assert.Equal(c, 2, r.ExitCode, "an unknown flag exits 2; stderr:\n%s", r.Stderr)
	assert.Contains(c, string(r.Stderr), "no-such-flag", "the error names the flag")
	assert.Contains(c, string(r.Stderr), "-listen", "the error is followed by the usage")
	assert.Empty(c, r.Stdout)
	noPanic(c, r.Stderr)
}

func checkListeningLine(c *check) {
	s := c.start()
	host, port, err := net.SplitHostPort(s.Addr)
	require.NoError(c, err)
	assert.Equal(c, "127.0.0.1", host)
	assert.NotEqual(c, "0", port, "the line gives the port actually bound")
	lines := s.Stderr()
	require.NotEmpty(c, lines)
	assert.Contains(c, lines[len(lines)-1], "listening on "+s.Addr)
	if st := c.open(s); st != nil {
		st.exchange("the port in the line is the port served")
	}

	// An explicit port is the one bound.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(c, err)
	addr := l.Addr().String()
	l.Close()
	s2 := c.start("-listen", addr)
	assert.Equal(c, addr, s2.Addr)

	// No host: every IPv4 address, loopback included.
	s3 := c.start("-listen", ":0")
	host, port, err = net.SplitHostPort(s3.Addr)
	require.NoError(c, err)
	assert.Contains(c, []string{"0.0.0.0", "::"}, host, "-listen :0 listens on every address")
	assert.NotEqual(c, "0", port)
	if st := c.open(s3); st != nil {
		st.exchange("reached through 127.0.0.1")
	}
}

func checkIPv6(c *check) {
	s := c.start("-listen", "[::1]:0")
	assert.True(c, strings.HasPrefix(s.Addr, "[::1]:"), "IPv6 in net.JoinHostPort form, got %q", s.Addr)
	if st := c.open(s); st != nil {
		st.exchange("served over IPv6")
	}
}

func checkListenErrors(c *check) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(c, err)
	defer busy.Close()

	for _, tc := range []struct{ listen, reason string }{
		{busy.Addr().String(), "address already in use"},
		{"192.0.2.1:0", "cannot assign requested address"}, // TEST-NET-1: on no interface
		{"127.0.0.1:99999", "port"},
		{"nonsense", "missing port"},
	} {
		r := c.built.Run(c.T, 10*time.Second, "-listen", tc.listen)
		lines := r.StderrLines()
		assert.Equal(c, 1, r.ExitCode, "-listen %s: exit status; stderr:\n%s", tc.listen, r.Stderr)
		assert.Empty(c, r.Stdout, "-listen %s: nothing on stdout", tc.listen)
		if assert.Len(c, lines, 1, "-listen %s: exactly one line on stderr", tc.listen) {
			assert.Contains(c, lines[0], tc.listen, "the line names the -listen value as given")
			assert.Contains(c, strings.ToLower(lines[0]), tc.reason, "the line gives the reason")
		}
		noPanic(c, r.Stderr)
	}
}

// checkStop stops a server that is busy: 100 clients that have each sent a
// line and been answered (for 02, 100 live children), one in the middle of
// a line, and one in the middle of a transfer in both directions.
func checkStop(c *check, sig syscall.Signal) {
	s := c.start()
	clients := make([]*stream, 1000)
	var wg sync.WaitGroup
	for i := range clients {
		if clients[i] = c.open(s); clients[i] == nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := clients[i]
			st.send([]byte(fmt.Sprintf("client %d\n", i)))
			if !c.stage.stalls() {
				st.awaitAll(10 * time.Second)
			}
		}()
	}
	wg.Wait()
	if mid := c.open(s); mid != nil && mid.send([]byte("half a li")) {
		clients = append(clients, mid)
	}
	busy := c.open(s)
	if busy == nil {
		return
	}
	go func() { // Writes until the server closes.
		chunk := bytes.Repeat([]byte("busy busy busy busy\n"), 3000)
		for {
			if _, err := busy.conn.Write(chunk); err != nil {
				return
			}
		}
	}()
	if !c.stage.stalls() {
		// The transfer is under way once answers flow.
		busy.conn.SetReadDeadline(time.Now().Add(lineWait))
		if _, err := io.ReadFull(busy.conn, make([]byte, 64<<10)); err != nil {
			c.Errorf("the busy client got no answers: %v", err)
		}
	}
	u, err := s.Usage()
	require.NoError(c, err)
	c.figure("%d processes, %d threads, %s RSS before %v", u.Procs, u.Threads, mib(u.RSS), sig)

	start := time.Now()
	target := s.Pid // kill PID: the server alone
	if sig == syscall.SIGINT {
		// Ctrl-C in a terminal signals the whole foreground process group:
		// the server and every child.
		target = -s.Pid
	}
	require.NoError(c, syscall.Kill(target, sig))
	// An impatient operator signals again while the server stops: that
	// must change nothing (not kill it with the signal's default action).
	syscall.Kill(target, sig)
	state := s.Wait(2 * time.Second)
	if !assert.NotNil(c, state, "the server must exit within 2 s of %v", sig) {
		return
	}
	assert.True(c, state.Exited() && state.ExitCode() == 0, "exit status 0 after %v, got %v", sig, state)
	for !s.Gone() && time.Since(start) < 2*time.Second {
		time.Sleep(10 * time.Millisecond) // Polls a condition; orders nothing.
	}
	if !assert.True(c, s.Gone(), "every process the server started must be gone within 2 s") {
		pids, _ := s.Pids()
		c.Logf("left: %v", pids)
	}
	c.figure("exited %v after %v", state, time.Since(start).Round(time.Millisecond))
	if conn, err := net.Dial("tcp", s.Addr); err == nil {
		conn.Close()
		c.Errorf("the server stopped, yet a client could connect to %s", s.Addr)
	}

	// Every connection was closed.
	for i, st := range append(clients, busy) {
		if st == nil {
			continue
		}
		st.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 64<<10)
		for {
			_, err := st.conn.Read(buf)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					c.Errorf("client %d: still open 2 s after the server exited", i)
				}
				break
			}
		}
	}
}

// checkStraySignals sends signals that ask nothing of the server to every
// thread of every process of it, round after round, first while it idles
// and then while it answers a burst: SIGURG, which Go's runtime also sends
// itself to preempt goroutines, and SIGWINCH, which a terminal sends when
// its window is resized. A signal that lands on a thread blocked in
// select, poll, epoll_wait or io_uring_enter ends the call with EINTR,
// which never restarts (signal(7)): the server must wait again, not stop.
func checkStraySignals(c *check) {
	const rounds = 10
	s := c.start()
	// Connected clients, each served once (for 02, a child each); the
	// blocking loop serves one at a time, so it gets one.
	clients := make([]*stream, 10)
	if c.stage.stalls() {
		clients = clients[:1]
	}
	for i := range clients {
		if clients[i] = c.open(s); clients[i] == nil || !clients[i].exchange(fmt.Sprintf("client %d", i)) {
			return
		}
	}
	total := stagetest.SignalReport{Interrupted: map[string]int{}}
	round := func() bool {
		for _, sig := range []syscall.Signal{syscall.SIGURG, syscall.SIGWINCH} {
			r, err := s.SignalThreads(c.ctx, sig)
			if err != nil {
				c.Errorf("%v to every thread: %v", sig, err)
				return false
			}
			total.Processes = max(total.Processes, r.Processes)
			total.Catching = max(total.Catching, r.Catching)
			total.Threads += r.Threads
			for call, n := range r.Interrupted {
				total.Interrupted[call] += n
			}
		}
		select {
		case <-s.Exited():
			c.Errorf("the server exited after stray signals (%v, %s interrupted); stderr:\n%s",
				s.Wait(0), mapString(total.Interrupted), strings.Join(s.Stderr(), "\n"))
			return false
		default:
			return true
		}
	}

	// Idle: the server's threads wait in the kernel.
	for range rounds {
		if !round() {
			return
		}
	}
	idle := maps.Clone(total.Interrupted)

	// Busy: one client's burst in flight, in both directions.
	busy := clients[0]
	line := []byte("answered while signalled\n")
	data := bytes.Repeat(line, 8<<20/len(line))
	busy.answer = append(rot13Of(busy.sent), bytes.Repeat(rot13Of(line), 8<<20/len(line))...)
	wrote := busy.sendInPieces(c.rand(), data, 64<<10, nil)
	answered := make(chan bool, 1)
	go func() { answered <- busy.await(len(busy.sent), 30*time.Second) }()
	busyRounds := 0
	for done := false; !done; busyRounds++ {
		if !round() {
			return
		}
		select {
		case ok := <-answered:
			if !ok {
				return
			}
			done = true
		default:
		}
	}
	if err := <-wrote; err != nil {
		c.Errorf("the busy client's write: %v", err)
		return
	}
	c.figure("%d rounds idle and %d during an 8 MiB burst of SIGURG and SIGWINCH to every thread (%d signals to %d processes, %d catching them); idle, they interrupted waits for IO: %s",
		rounds, busyRounds, total.Threads, total.Processes, total.Catching, mapString(idle))

	// The signals reached the server and interrupted its waits; or, for a
	// program that does not catch them, the kernel dropped them on arrival.
	switch {
	case total.Catching == 0 && c.stage.c:
		c.figure("the C program neither catches nor blocks SIGURG and SIGWINCH: the kernel drops them, and nothing is interrupted")
	case total.Catching == 0:
		c.Errorf("no process of the server catches SIGURG or SIGWINCH, yet Go's runtime catches every signal")
		return
	case len(idle) == 0 && c.stage.spins():
		c.figure("it never waits for IO: the signals land on a running thread, and interrupt no call")
	case len(idle) == 0:
		c.Errorf("no signal landed on a thread waiting for IO: the check interrupted nothing")
		return
	}

	// Nothing changed: every client is served, the server said nothing,
	// and it still runs until SIGTERM, when it exits at once.
	for i, st := range clients {
		if !st.exchange(fmt.Sprintf("client %d, after the signals", i)) {
			return
		}
	}
	if lines := s.Stderr(); len(lines) != 1 {
		c.Errorf("the server wrote to stderr:\n%s", strings.Join(lines[1:], "\n"))
	}
	require.NoError(c, s.Signal(syscall.SIGTERM))
	if state := s.Wait(2 * time.Second); assert.NotNil(c, state, "the server must exit within 2 s of SIGTERM") {
		assert.True(c, state.Exited() && state.ExitCode() == 0, "exit status 0 after SIGTERM, got %v", state)
	}
}

// mapString writes counts by name as "40 in pselect6, 3 in read", or
// "none".
func mapString(counts map[string]int) string {
	var parts []string
	for name, n := range counts {
		parts = append(parts, fmt.Sprintf("%d in %s", n, name))
	}
	if len(parts) == 0 {
		return "none"
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// settle waits until the server holds no more descriptors and processes
// than it did at base, and no client waits in its accept queue: every
// connection made so far taken by the server and closed on its side. (A
// server that had not yet accepted them would hold no more descriptors
// either.)
func settle(c *check, s *stagetest.Server, base stagetest.Usage, within time.Duration) (stagetest.Usage, bool) {
	deadline := time.Now().Add(within)
	for {
		u, err := s.Usage()
		if err != nil {
			c.Errorf("usage: %v", err)
			return u, false
		}
		queued, err := s.AcceptQueue()
		if err != nil {
			c.Errorf("accept queue: %v", err)
			return u, false
		}
		if u.FDs <= base.FDs && u.Procs <= base.Procs && u.Zombies == 0 && queued == 0 {
			return u, true
		}
		if time.Now().After(deadline) {
			return u, false
		}
		time.Sleep(20 * time.Millisecond) // Polls a condition; orders nothing.
	}
}

func checkQuiet(c *check) {
	s := c.start()
	base, err := s.Usage()
	require.NoError(c, err)

	if st := c.open(s); st != nil { // connects and leaves
		st.conn.Close()
	}
	if st := c.open(s); st != nil { // one line, then an orderly close
		st.exchange("just one line")
		st.conn.Close()
	}
	if st := c.open(s); st != nil { // half a line, then a reset
		st.send([]byte("half a li"))
		st.reset()
	}
	if st := c.open(s); st != nil { // half-close with a tail
		st.send([]byte("tail"))
		st.conn.CloseWrite()
		st.awaitEOF(lineWait)
	}
	if st := c.open(s); st != nil { // sends a lot, reads nothing, vanishes
		st.send(bytes.Repeat([]byte("never read\n"), 10000))
		st.reset()
	}
	if u, ok := settle(c, s, base, 10*time.Second); !ok {
		c.Errorf("the server still holds %d descriptors and %d processes, against %d and %d at the start", u.FDs, u.Procs, base.FDs, base.Procs)
	}
	if st := c.open(s); st != nil {
		st.exchange("still here")
	}
	lines := s.Stderr()
	assert.Len(c, lines, 1, "only the listening line; got:\n%s", strings.Join(lines, "\n"))
}

func checkTrace(c *check) {
	s := c.start("-trace")
	st := c.open(s)
	if st == nil || !st.exchange("12345") { // six bytes each way
		return
	}
	for _, want := range []struct {
		what  string
		match func(string) bool
	}{
		{"an accept", func(l string) bool { return hasWord(l, "accept", "accepted") }},
		{"a read of 6 bytes", func(l string) bool { return hasWord(l, "read", "recv", "received") && hasWord(l, "6") }},
		{"a write of 6 bytes", func(l string) bool { return hasWord(l, "write", "wrote", "send", "sent") && hasWord(l, "6") }},
	} {
		if _, err := s.WaitStderr(c.ctx, want.match); err != nil {
			c.Errorf("-trace never showed %s: %v; stderr:\n%s", want.what, err, strings.Join(s.Stderr(), "\n"))
		}
	}
	// The client closes; only what the trace says after that counts.
	before := len(s.Stderr())
	st.conn.Close()
	_, err := s.WaitStderrFrom(c.ctx, before, func(l string) bool {
		return hasWord(l, "close", "closed", "eof") || strings.Contains(strings.ToLower(l), "end of stream")
	})
	if err != nil {
		c.Errorf("-trace never showed the close: %v; stderr:\n%s", err, strings.Join(s.Stderr(), "\n"))
	}
}

// hasWord reports whether line holds one of words as a whole word, in any
// case.
func hasWord(line string, words ...string) bool {
	fields := strings.FieldsFunc(strings.ToLower(line), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	})
	for _, f := range fields {
		for _, w := range words {
			if f == w {
				return true
			}
		}
	}
	return false
}

func checkEveryByte(c *check) {
	st := c.oneClient()
	if st == nil {
		return
	}
	all := make([]byte, 0, 257)
	for i := range 256 {
		all = append(all, byte(i))
	}
	st.send(append(all, '\n'))
	st.awaitAll(lineWait)
	// And the same bytes after a newline-free stretch, as one line.
	line := bytes.ReplaceAll(all, []byte{'\n'}, nil)
	st.send(append(line, '\n'))
	st.awaitAll(lineWait)
}

func checkLineLatency(c *check) {
	st := c.oneClient()
	if st == nil {
		return
	}
	// A complete line and the start of the next, in one write.
	start := time.Now()
	st.send([]byte("Hello\nWor"))
	if !st.await(len("Hello\n"), lineWait) {
		return
	}
	c.figure("first line answered in %v", time.Since(start).Round(100*time.Microsecond))
	st.send([]byte("ld\n"))
	st.awaitAll(lineWait)
	// A line in three writes.
	for _, part := range []string{"split ", "across ", "writes\n"} {
		st.send([]byte(part))
	}
	st.awaitAll(lineWait)
}

func checkPipelined(c *check) {
	s := c.start()
	rng := c.rand()
	for _, n := range []int{1, 3} {
		st := c.open(s)
		if st == nil {
			return
		}
		data := randomLines(rng, 3000, 300)
		wrote := st.sendInPieces(rng, data, len(data)/n, nil)
		st.await(len(data), 10*time.Second)
		if err := <-wrote; err != nil {
			c.Errorf("write: %v", err)
		}
		st.conn.Close()
	}
}

func checkByteAtATime(c *check) {
	st := c.oneClient()
	if st == nil {
		return
	}
	for _, b := range []byte("one byte per write\n") {
		if !st.send([]byte{b}) {
			return
		}
	}
	st.awaitAll(lineWait)
}

func checkMaxLine(c *check) {
	st := c.oneClient()
	if st == nil {
		return
	}
	const maxLine = 16384
	letters := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abcdefghijklmnopqrstuvwxyz"[i%26]
		}
		return b
	}
	// Exactly MAX_LINE bytes without a newline go out without more input.
	st.send(letters(maxLine))
	if !st.await(maxLine, lineWait) {
		return
	}
	// A line of 100 KiB: each MAX_LINE of it goes out as it fills up.
	st.send(letters(100 << 10))
	st.await(maxLine+(100<<10)/maxLine*maxLine, lineWait)
	st.send([]byte("\n"))
	st.awaitAll(lineWait)
	// A line that just fits, newline included.
	st.send(append(letters(maxLine-1), '\n'))
	st.awaitAll(lineWait)
}

func checkHalfClose(c *check) {
	s := c.start()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"an unterminated last line", []byte("abc\ndef")},
		{"a close right after a line", []byte("abc\n")},
		{"nothing at all", nil},
		{"a megabyte and a tail", append(bytes.Repeat([]byte("a line of text\n"), 70000), "tail"...)},
	} {
		st := c.open(s)
		if st == nil {
			return
		}
		// Read while writing: the megabyte's answer must not block the
		// server's reads.
		done := make(chan error, 1)
		go func() {
			_, err := st.conn.Write(tc.data)
			if err == nil {
				err = st.conn.CloseWrite()
			}
			done <- err
		}()
		st.sent = tc.data
		if !st.awaitEOF(5 * time.Second) {
			c.Errorf("with %s", tc.name)
			return // the next cases would wait as long, to say the same
		}
		assert.NoError(c, <-done, "with %s", tc.name)
	}
}

func checkResetIsolation(c *check) {
	s := c.start()
	// B exchanges lines all along, while the others reset and vanish,
	// until the server has closed every one of theirs.
	b := c.open(s)
	if b == nil || !b.exchange("before") {
		return
	}
	base, err := s.Usage()
	require.NoError(c, err)
	stop := make(chan bool)
	exchanges := make(chan int)
	go func() {
		n := 0
		defer func() { exchanges <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if !b.exchange(fmt.Sprintf("exchange %d", n)) {
				return
			}
			n++
		}
	}()
	if a := c.open(s); a != nil { // half a line, then a reset
		a.send([]byte("half a li"))
		a.reset()
	}
	if v := c.open(s); v != nil { // a lot, never read, then gone
		v.send(bytes.Repeat([]byte("never read\n"), 100000))
		v.reset()
	}
	if v := c.open(s); v != nil { // an answer pending, then gone
		v.exchange("one")
		v.send([]byte("two\n"))
		v.conn.Close()
	}
	if u, ok := settle(c, s, base, 10*time.Second); !ok {
		c.Errorf("the server still holds %d descriptors and %d processes for the clients that left, against %d and %d before them", u.FDs, u.Procs, base.FDs, base.Procs)
	}
	close(stop)
	c.figure("the other client's %d exchanges all answered meanwhile", <-exchanges)
	b.exchange("after")
	b.conn.Close()
	if d := c.open(s); d != nil {
		d.exchange("a new client")
	}
	select {
	case <-s.Exited():
		c.Errorf("the server exited")
	default:
	}
}

func checkConcurrency(c *check) {
	s := c.start()
	a := c.open(s) // connected, and silent
	if a == nil {
		return
	}
	b := c.open(s)
	if b == nil || !b.send([]byte("second client\n")) {
		return
	}
	start := time.Now()
	switch err := b.tryAwait(len(b.sent), lineWait); err {
	case nil:
		c.figure("second client answered in %v", time.Since(start).Round(100*time.Microsecond))
	case errWait:
		// Let the first client speak and go, and see how long the second
		// one waited.
		a.exchange("at last")
		a.conn.Close()
		b.await(len(b.sent), 10*time.Second)
		c.violation("stall", "the second client waited %v, until the first spoke", time.Since(start).Round(time.Millisecond))
		return
	default:
		c.Errorf("the second client: %v after %d bytes", err, len(b.got))
		return
	}
	// Nor does a client in the middle of a line.
	a.send([]byte("half a li"))
	if third := c.open(s); third != nil {
		third.exchange("third client")
	}
	a.send([]byte("ne\n"))
	a.awaitAll(lineWait)
}

// checkFairness has one client flood the server, sending as fast as the
// server takes its bytes and reading every answer, while another client
// exchanges lines with it, as it did alone just before.
//
// A server that reads a socket until it has nothing more (the book's 03
// and 04 read until EAGAIN) stays in that loop for as long as the sender
// keeps ahead of it: the other client's line waits, and the flooder is
// served meanwhile. It happens once in a while, for a few hundred
// milliseconds, so the median and the 95th percentile hardly move; and a
// noisy machine can delay any one exchange. So the check asks, of each
// exchange, what held it up: how many bytes the flooder got the server to
// take while the other client's line waited. A fair server takes a turn
// of at most one read (16 KiB) from the flooder before it comes back, and
// the kernel's socket buffers let the flooder run at most a few megabytes
// ahead of what the server has taken. Those buffers can also hide a server
// stuck on the flooder, so the check also counts, more exactly, what the
// server read while the other client's line sat unread in its socket
// (whileUnread).
func checkFairness(c *check) {
	s := c.start()
	other := c.open(s)
	if other == nil {
		return
	}
	alone := make([]time.Duration, 0, 50)
	for i := range cap(alone) {
		start := time.Now()
		if !other.exchange(fmt.Sprintf("alone %d", i)) {
			return
		}
		alone = append(alone, time.Since(start))
	}

	flood := c.open(s)
	if flood == nil {
		return
	}
	pattern := bytes.Repeat([]byte("flood flood flood flood flood flood\n"), 1820) // 64 KiB and a bit
	want := rot13Of(pattern)
	var sent, answered atomic.Int64
	stop := make(chan bool)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // send as fast as the server takes it...
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := flood.conn.Write(pattern)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	go func() { // ...and read every answer, checking it, so that nothing holds it back
		defer wg.Done()
		buf := make([]byte, len(want))
		pos := 0
		for {
			n, err := flood.conn.Read(buf[:len(want)-pos])
			if !bytes.Equal(buf[:n], want[pos:pos+n]) {
				c.Errorf("the flooding client's answer is wrong after byte %d", answered.Load())
				return
			}
			pos = (pos + n) % len(want)
			answered.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	defer wg.Wait()
	defer flood.conn.Close()
	defer close(stop)

	// Beside the flood, from its first byte: at least 100 exchanges, and
	// on until the flooder has sent floodSize, or for 5 s at most.
	const floodSize = 64 << 20
	var beside []time.Duration
	var worst struct {
		wait time.Duration
		took int64
	}
	var worstRead int64 // the most the server read while a line sat unread in its socket
	phase := time.Now()
	for i := 0; i < 100 || sent.Load() < floodSize && time.Since(phase) < 5*time.Second; i++ {
		before := sent.Load()
		start := time.Now()
		if !other.send([]byte(fmt.Sprintf("beside the flood %d\n", i))) {
			return
		}
		unread := int64(-1) // what the server had read when the line was seen waiting in its socket
		var lastLook time.Time
		for {
			err := other.tryAwait(len(other.sent), 2*time.Millisecond)
			if err == nil {
				break
			}
			// /proc/net/tcp lists every socket of the machine, thousands
			// after many-clients: read it every few milliseconds, not at
			// every poll, so that the check does not slow the server.
			if err == errWait && time.Since(lastLook) >= lookEvery {
				lastLook = time.Now()
				read := whileUnread(s, other, &unread)
				worstRead = max(worstRead, read)
				if read > c.stage.fairRead() {
					c.Errorf("held up: the other client's line has sat unread in the server's socket while the server read %s from the flooder, and sits on; a fair server comes back after one read",
						mib(read))
					return
				}
			}
			took := sent.Load() - before
			switch {
			case err == errWait && took > holdUp:
				c.Errorf("held up: the other client's line has waited %v while the flooder sent %s, and waits on; a fair server comes back after one read",
					time.Since(start).Round(time.Millisecond), mib(took))
				return
			case err == errWait && time.Since(start) < 10*time.Second:
				continue
			}
			c.Errorf("the other client's line %d: %v, after %v, while the flooder sent %s",
				i, err, time.Since(start).Round(time.Millisecond), mib(took))
			return
		}
		wait, took := time.Since(start), sent.Load()-before
		beside = append(beside, wait)
		if took > worst.took {
			worst.wait, worst.took = wait, took
		}
	}
	if sent.Load() < floodSize/8 {
		c.Errorf("the flooder sent only %s while the other client exchanged %d lines: no flood to be fair beside", mib(sent.Load()), len(beside))
		return
	}
	c.figure("the other client's exchanges alone: median %v, p95 %v; beside the flood (%s sent, %s answered): median %v, p95 %v, slowest %v",
		quantile(alone, 0.5), quantile(alone, 0.95), mib(sent.Load()), mib(answered.Load()),
		quantile(beside, 0.5), quantile(beside, 0.95), quantile(beside, 1))
	c.figure("the most the flooder sent while one line waited: %s, in %v", mib(worst.took), worst.wait.Round(100*time.Microsecond))
	c.figure("the most the server read while one line sat unread in its socket: %s", mib(worstRead))
	if worst.took > holdUp {
		c.Errorf("held up: the other client's line waited %v while the flooder sent %s; a fair server comes back after one read",
			worst.wait.Round(time.Millisecond), mib(worst.took))
	}
	if p95 := quantile(beside, 0.95); p95 > 100*time.Millisecond {
		c.Errorf("beside the flood, 5%% of the other client's lines waited over %v (the contract: 100 ms)", p95.Round(time.Millisecond))
	}
}

// whileUnread returns how much the server has read while the line just
// sent by other has sat in the server's socket, unread; 0 until that has
// been seen once, and *unread holds what the server had read by then (-1
// before). The flooder may run megabytes ahead of the server into the
// sockets' buffers (up to tcp_rmem's 32 MiB and tcp_wmem's 4 MiB), and a
// server stuck on it can look fair by what it was sent, so this counts
// what the server itself read (rchar, in /proc/PID/io) between two moments
// when the other client's line waited in its socket all along. A fair
// server reads the flooder once or twice, and then the line.
func whileUnread(s *stagetest.Server, other *stream, unread *int64) int64 {
	if *unread < 0 {
		// Seen waiting first, then the count: it counts no read made
		// before the line arrived.
		if q, err := stagetest.ConnQueues(other.conn); err == nil && q.ServerUnread > 0 {
			if n, err := s.BytesRead(); err == nil {
				*unread = n
			}
		}
		return 0
	}
	// The count first, then the line seen still waiting: every read
	// counted was made while it waited.
	n, err := s.BytesRead()
	if err != nil {
		return 0
	}
	if q, err := stagetest.ConnQueues(other.conn); err != nil || q.ServerUnread == 0 {
		return 0
	}
	return n - *unread
}

// lookEvery is how often the fairness check looks at the server's sockets
// and its count of bytes read while a line waits.
const lookEvery = 5 * time.Millisecond

// fairRead is the most the stage may read while another client's line
// waits, unread, in its socket. A turn of a loop reads each client once,
// 16 KiB at most (03, 04, 05): one server loop may read 1 MiB, some sixty
// turns' worth. A server of processes (02) or goroutines (06) leaves the
// line to a scheduler, which wakes its reader within milliseconds: 06 has
// read up to 2.4 MiB on a busy machine of two cores; they may read 8 MiB.
// (The io_uring stages receive through the ring, which rchar does not
// count: for them it is the wait and the flood that tell.) A server that
// reads the flooder until EAGAIN reads some 300 MiB a second, and holds a
// line for tens of milliseconds to seconds; on a busy machine of two
// cores, where the flooder is slowed too, we have seen it read 5.8 MiB.
func (st stage) fairRead() int64 {
	if st.dir == "02-forking-server" || st.dir == "06-goroutine-server" {
		return 8 << 20
	}
	return 1 << 20
}

// holdUp is the most a flooder may send while another client's line waits:
// what the kernel's socket buffers hold between the two (a few MiB each
// way on loopback), and many turns of a read each, but far less than a
// server stuck reading one socket takes in a tenth of a second.
const holdUp = 32 << 20

// quantile returns the q-quantile of ds (0.5: the median; 1: the largest).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// checkManyClients connects 2000 clients at once (or the stage's number).
// While they are all silent, one working client exchanges 100 lines, each
// answered within a second. Then half of them speak while the other half
// stay silent, then the silent half speak. A stage built on select serves
// those whose descriptor is below FD_SETSIZE and must close the others at
// once; every other stage serves them all.
func checkManyClients(c *check) {
	n := c.stage.clients
	if n == 0 {
		n = 2000
	}
	s := c.start()
	idle, err := s.Usage()
	require.NoError(c, err)
	// The working client connects first, so that its descriptor is low
	// enough for a stage built on select.
	worker := c.open(s)
	if worker == nil || !worker.exchange("the working client") {
		return
	}
	start := time.Now()
	clients := make([]*stream, n)
	var wg sync.WaitGroup
	sem := make(chan bool, 100)
	for i := range clients {
		wg.Add(1)
		sem <- true
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			clients[i] = c.open(s)
		}()
	}
	wg.Wait()
	connected := time.Since(start)
	for _, st := range clients {
		if st == nil {
			return
		}
	}

	// With every other client connected and silent, the working client is
	// served as promptly as if it were alone: a server whose every turn
	// walks all its connections (select, poll) pays for each one here.
	var lat []time.Duration
	for i := range 100 {
		sent := time.Now()
		if !worker.send([]byte(fmt.Sprintf("working beside %d silent clients, line %d\n", n, i))) {
			return
		}
		if err := worker.tryAwait(len(worker.sent), lineWait); err == errWait {
			c.violation("stall", "with %d clients connected and silent, the working client waited over %v for a line", n, lineWait)
			return
		} else if err != nil {
			c.Errorf("the working client: %v", err)
			return
		}
		lat = append(lat, time.Since(sent))
	}
	slices.Sort(lat)
	c.figure("beside %d silent clients, a working client's 100 lines answered in %v (median), %v (worst)",
		n, lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	worker.conn.Close()

	// outcome: 0 answered, 1 closed by the server, 2 still waiting.
	outcome := make([]int, n)
	speak := func(parity int, within time.Duration) {
		var wg sync.WaitGroup
		for i, st := range clients {
			if i%2 != parity {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := st.conn.Write([]byte(fmt.Sprintf("client %d of %d\n", i, n))); err != nil {
					outcome[i] = 1 // closed before it could speak
					return
				}
				st.sent = []byte(fmt.Sprintf("client %d of %d\n", i, n))
				outcome[i] = waitOutcome(st, within)
			}()
		}
		wg.Wait()
	}
	count := func(which int) (k int) {
		for _, o := range outcome {
			if o == which {
				k++
			}
		}
		return k
	}
	phase := time.Now()
	speak(0, 10*time.Second)
	if waiting := count(2); waiting > 0 {
		c.violation("stall", "%d of the %d clients that spoke were not answered in %v while the other %d were silent",
			waiting, n/2, time.Since(phase).Round(time.Second), n/2)
		return
	}
	speak(1, 10*time.Second)
	answered, closed, waiting := count(0), count(1), count(2)
	u, err := s.Usage()
	require.NoError(c, err)
	c.figure("%d clients connected in %v; %d answered, %d closed by the server, after %v; %d processes, %d threads, %s RSS (%s PSS)",
		n, connected.Round(time.Millisecond), answered, closed, time.Since(start).Round(time.Millisecond), u.Procs, u.Threads, mib(u.RSS), mib(u.PSS))
	assert.Zero(c, waiting, "clients neither answered nor closed: left in silence")
	if !c.stage.fdSetSize {
		assert.Equal(c, n, answered, "clients answered")
		return
	}

	// Past FD_SETSIZE: closed at once, logged at most a line a second,
	// the rest served, and new clients served once descriptors are free.
	assert.GreaterOrEqual(c, answered, 900, "clients below FD_SETSIZE are served")
	assert.Positive(c, closed, "2000 descriptors cannot all be below FD_SETSIZE")
	logged := 0
	for _, l := range s.Stderr() {
		if strings.Contains(l, "FD_SETSIZE") {
			logged++
		}
	}
	assert.LessOrEqual(c, logged, int(time.Since(start)/time.Second)+1, "lines about FD_SETSIZE: at most one a second")
	for _, st := range clients {
		st.conn.Close()
	}
	if u, ok := settle(c, s, idle, 10*time.Second); !ok {
		c.Errorf("after every client closed, the server holds %d descriptors, against %d at the start", u.FDs, idle.FDs)
	}
	for i := range 100 {
		if st := c.open(s); st != nil {
			st.exchange(fmt.Sprintf("afterwards %d", i))
		}
	}
}

// waitOutcome waits for st's answer: 0 if it came, 1 if the server closed
// the connection instead, 2 if neither happened within the time given.
func waitOutcome(st *stream, within time.Duration) int {
	switch err := st.tryAwait(len(st.sent), within); {
	case err == nil:
		return 0
	case err == errWait:
		return 2
	case len(st.got) == 0:
		return 1
	default:
		st.c.Errorf("answer cut short after %d bytes: %v", len(st.got), err)
		return 1
	}
}

func checkBackPressure(c *check) {
	const total = 64 << 20
	s := c.start()
	base, err := s.Usage()
	require.NoError(c, err)
	a := c.open(s)
	if a == nil {
		return
	}

	// The data: 64 MiB of 1 KiB lines, generated, so that the reader can
	// check it without keeping a copy.
	line := func(i int) []byte {
		l := bytes.Repeat([]byte(fmt.Sprintf("%09d ", i)), 103)
		return append(l[:1023], '\n')
	}
	var written atomic.Int64
	writeDone := make(chan error, 1)
	go func() {
		var chunk []byte
		for i := 0; int64(i)*1024 < total; i++ {
			chunk = append(chunk, line(i)...)
			if len(chunk) >= 64<<10 {
				if _, err := a.conn.Write(chunk); err != nil {
					writeDone <- err
					return
				}
				written.Add(int64(len(chunk)))
				chunk = chunk[:0]
			}
		}
		writeDone <- nil
	}()

	// Wait until the writer stalls: nothing more written for half a second.
	// The server has stopped reading, with its socket to the client full.
	if waitStall(&written, writeDone, 500*time.Millisecond) {
		c.Errorf("the server read all %s without the client reading: no back-pressure", mib(total))
	}
	stalled := written.Load()
	if q, err := stagetest.ConnQueues(a.conn); err != nil || q.ServerUnsent == 0 {
		c.Errorf("the writer stalled, but the server's socket to it is not full (%+v, %v): the server stopped for another reason", q, err)
	}

	// Another client, meanwhile, is served as before.
	other := c.open(s)
	if other == nil {
		return
	}
	other.send([]byte("while the first client reads nothing\n"))
	start := time.Now()
	err = other.tryAwait(len(other.sent), lineWait)
	switch err {
	case nil:
		c.figure("another client answered in %v meanwhile", time.Since(start).Round(100*time.Microsecond))
	case errWait:
		// It is served, if ever, once the first client reads; then it
		// goes, so that it cannot stall anything in its turn.
		otherDone := make(chan time.Duration, 1)
		go func() {
			other.tryAwait(len(other.sent), 60*time.Second)
			otherDone <- time.Since(start)
			other.conn.Close()
		}()
		defer func() {
			c.violation("stall", "another client waited %v, until the first read its answers", (<-otherDone).Round(time.Millisecond))
		}()
	default:
		c.Errorf("another client: %v", err)
	}
	if err == nil {
		other.conn.Close()
	}

	// Now read it all back, checking every byte.
	buf := make([]byte, 64<<10)
	var pending []byte
	next := 0
	for read := int64(0); read < total; {
		k, err := a.conn.Read(buf)
		read += int64(k)
		pending = append(pending, buf[:k]...)
		for len(pending) >= 1024 {
			want := line(next)
			for j, b := range want {
				want[j] = rot13Byte(b)
			}
			if !bytes.Equal(pending[:1024], want) {
				c.Errorf("line %d of the answer is wrong: %q", next, pending[:40])
				return
			}
			pending = pending[1024:]
			next++
		}
		if err != nil {
			c.Errorf("reading the answer after %s: %v", mib(read), err)
			return
		}
	}
	assert.NoError(c, <-writeDone)
	// Every process's high-water mark, kept by the kernel (VmHWM), so no
	// peak between two samples is missed. Their sum is at least the peak
	// of the whole tree.
	end, err := s.Usage()
	require.NoError(c, err)
	growth := end.PeakRSS - base.RSS
	assert.Less(c, growth, int64(48<<20), "server RSS growth while a client wrote 64 MiB without reading")
	c.figure("writer stalled after %s; server RSS +%s at most; all %d lines answered", mib(stalled), mib(growth), next)
}

// waitStall waits until the count n has not moved for quiet, and returns
// false, or until done has a value, which it leaves there, and returns true.
func waitStall(n *atomic.Int64, done chan error, quiet time.Duration) (finished bool) {
	tick := time.NewTicker(quiet / 10)
	defer tick.Stop()
	last, since := n.Load(), time.Now()
	for {
		select {
		case err := <-done:
			done <- err
			return true
		case <-tick.C:
		}
		if now := n.Load(); now != last {
			last, since = now, time.Now()
		} else if time.Since(since) >= quiet {
			return false
		}
	}
}

// checkIdleCPU measures the CPU time a server spends while its clients
// are quiet, twice: while one client, having written megabytes without
// reading, has filled its socket (the server can write no more to it, and
// must read no more from it), and once that client has read everything
// back and sits idle beside two others. A reactor that asks to be told
// when a socket is writable, once a write found it full, and never stops
// asking, is told so on every turn once the socket has room again: it
// spins at 100% of a core from then on, with nothing to do.
func checkIdleCPU(c *check) {
	s := c.start()
	full := c.open(s)
	if full == nil {
		return
	}
	window := func(what string) {
		before, err := s.Usage()
		require.NoError(c, err)
		start := time.Now()
		<-time.After(time.Second) // the window being measured
		after, err := s.Usage()
		require.NoError(c, err)
		share := float64(after.CPU-before.CPU) / float64(time.Since(start))
		if share >= 0.10 {
			c.violation("burns-cpu", "idle %s, the server used %.0f%% of a core", what, share*100)
		} else {
			c.figure("idle %s: %.1f%% of a core", what, share*100)
		}
	}

	// Fill the socket: lines written without reading, until the server
	// stops taking them; then the writer stops too, at the end of a line.
	line := []byte("filling the socket, and reading nothing\n")
	data := bytes.Repeat(line, (32<<20)/len(line))
	answer := bytes.Repeat(rot13Of(line), (32<<20)/len(line))
	var written atomic.Int64
	writeDone := make(chan error, 1)
	go func() {
		for p := data; len(p) > 0; {
			n, err := full.conn.Write(p[:min(len(p), 64<<10)])
			written.Add(int64(n))
			if err != nil {
				writeDone <- err
				return
			}
			p = p[n:]
		}
		writeDone <- nil
	}()
	if waitStall(&written, writeDone, 300*time.Millisecond) {
		c.Errorf("the server took all %s without the client reading: no back-pressure, no full socket", mib(int64(len(data))))
		return
	}
	full.conn.SetWriteDeadline(time.Now()) // the blocked write returns
	if err := <-writeDone; !errors.Is(err, os.ErrDeadlineExceeded) {
		c.Errorf("writing: %v", err)
		return
	}
	full.conn.SetWriteDeadline(c.deadline())
	end := int(written.Load())
	end += bytes.IndexByte(data[end:], '\n') + 1 // the rest of the line, taken once the client reads
	rest := make(chan error, 1)
	go func() {
		_, err := full.conn.Write(data[written.Load():end])
		rest <- err
	}()
	full.sent, full.answer = data[:end], answer[:end]
	q, err := stagetest.ConnQueues(full.conn)
	require.NoError(c, err)
	if q.ServerUnsent == 0 || q.ClientUnread == 0 {
		c.Errorf("the writer stalled after %s, yet the server's socket is not full: %+v", mib(written.Load()), q)
		return
	}
	c.figure("the writer stalled after %s; the server's socket full: %s unsent, %s unread by the client", mib(written.Load()), mib(int64(q.ServerUnsent)), mib(int64(q.ClientUnread)))
	window("with a full socket")

	// The client reads it all back, and the socket drains.
	if !full.await(end, 30*time.Second) {
		return
	}
	if err := <-rest; err != nil {
		c.Errorf("writing the rest of the line: %v", err)
		return
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		q, err = stagetest.ConnQueues(full.conn)
		require.NoError(c, err)
		if q == (stagetest.Queues{}) {
			break
		}
		if time.Now().After(deadline) {
			c.Errorf("everything answered, yet the connection still holds %+v", q)
			return
		}
		time.Sleep(time.Millisecond) // Polls a condition; orders nothing.
	}
	// Beside it, a client served once and one never heard from. (The
	// blocking loop waits on the first client's silence, and would serve
	// neither.)
	if !c.stage.stalls() {
		if st := c.open(s); st != nil {
			st.exchange("then silence")
		}
		c.open(s)
	}
	window("after the full socket drained")
}

// checkEMFILE takes the server's descriptors away: it lowers the server's
// limit on open descriptors (RLIMIT_NOFILE) to the number it holds, so
// that accepting a client fails with EMFILE and the client stays queued
// in the kernel. It first makes sure the scenario is real: the server
// holds no more descriptors than when it started (a descriptor it closed
// after the limit came down would let a client in), a client sits in the
// accept queue unserved, and the server has said why. Then it measures
// the server for two seconds, gives the descriptors back, and the waiting
// client must be served.
func checkEMFILE(c *check) {
	s := c.start()
	base, err := s.Usage()
	require.NoError(c, err)
	if b := c.open(s); b != nil && b.exchange("served before") {
		b.conn.Close()
	}
	if u, ok := settle(c, s, base, 10*time.Second); !ok {
		c.Errorf("the client served before still holds a descriptor of the server: %d, against %d at the start", u.FDs, base.FDs)
		return
	}
	free, err := s.LowestFreeFD()
	require.NoError(c, err)
	limit, err := s.SetFileLimit(uint64(free))
	require.NoError(c, err)
	logStart := len(s.Stderr())

	// The first client after the limit may still get in: a blocking
	// accept (02's, the blocking loop's) reserves its descriptor when it
	// starts to wait (Linux's __sys_accept4_file), before the limit came
	// down. That client is accepted, then served (the blocking loop) or
	// closed (02, which has no descriptor left to start a child with).
	// The one after it waits.
	var waiting *stream
	var taken []*stream
	for waiting == nil {
		if len(taken) == 2 {
			c.Errorf("two clients came after the limit came down, and the server took both: it did not run out of descriptors")
			return
		}
		st := c.open(s)
		if st == nil || !st.send([]byte("waiting for a descriptor\n")) {
			return
		}
		for deadline := time.Now().Add(5 * time.Second); ; {
			logged := len(s.Stderr()) - logStart
			queued, err := s.AcceptQueue()
			require.NoError(c, err)
			if logged > 0 && queued > 0 {
				waiting = st
				break
			}
			if err := st.tryAwait(1, time.Millisecond); err != errWait {
				taken = append(taken, st) // answered, or closed
				break
			}
			if time.Now().After(deadline) {
				c.Errorf("out of descriptors, the server neither took the client nor said anything for 5 s (%d lines logged, %d clients queued)", logged, queued)
				return
			}
		}
	}

	// The window: the server cannot accept, and must neither spin nor
	// flood its log while it waits for a descriptor.
	linesBefore := len(s.Stderr())
	before, err := s.Usage()
	require.NoError(c, err)
	start := time.Now()
	<-time.After(2 * time.Second) // the window being measured
	after, err := s.Usage()
	require.NoError(c, err)
	window := time.Since(start)
	share := float64(after.CPU-before.CPU) / float64(window)
	logged := len(s.Stderr()) - linesBefore
	if share >= 0.10 {
		c.violation("burns-cpu", "out of descriptors, the server used %.0f%% of a core", share*100)
	}
	if logged > int(window/time.Second)+1 {
		lines := s.Stderr()[linesBefore:]
		c.Errorf("out of descriptors, the server logged %d lines in %v, not at most one a second; the first:\n%s",
			logged, window.Round(100*time.Millisecond), strings.Join(lines[:min(len(lines), 5)], "\n"))
	}
	queued, err := s.AcceptQueue()
	require.NoError(c, err)
	if err := waiting.tryAwait(1, time.Millisecond); err != errWait || queued == 0 {
		c.Errorf("out of descriptors for %v, yet the waiting client is not waiting (%d queued; its read: %v)", window.Round(100*time.Millisecond), queued, err)
		return
	}
	episode := s.Stderr()[logStart:]
	c.figure("out of descriptors: %.1f%% of a core, %d log lines in %v, the client queued all along; %d taken by a descriptor reserved before; the log said: %q",
		share*100, logged, window.Round(100*time.Millisecond), len(taken), episode[0])

	// Descriptors come free: the waiting client is served within 2 s, and
	// so is a new one.
	for _, st := range taken {
		st.conn.Close() // the blocking loop waits on it
	}
	_, err = s.SetFileLimit(limit)
	require.NoError(c, err)
	freed := time.Now()
	if waiting.await(len(waiting.sent), 2*time.Second) {
		c.figure("the waiting client was served %v after descriptors came free", time.Since(freed).Round(time.Millisecond))
	}
	waiting.conn.Close()
	if d := c.open(s); d != nil && d.send([]byte("a new client\n")) && d.await(len(d.sent), 2*time.Second) {
		c.figure("a new client served %v after", time.Since(freed).Round(time.Millisecond))
	}
}

func checkNoLeaks(c *check) {
	const cycles = 2000
	s := c.start()
	_, err := s.SetFileLimit(32)
	require.NoError(c, err)
	base, err := s.Usage()
	require.NoError(c, err)
	for i := range cycles {
		st := c.open(s)
		if st == nil {
			return
		}
		line := fmt.Sprintf("cycle %d\n", i)
		switch i % 3 {
		case 0: // an answer, then an orderly close
			if !st.exchange(line[:len(line)-1]) {
				return
			}
			st.conn.Close()
		case 1: // a half-close, the answer, the end of the stream
			st.send([]byte(line))
			st.conn.CloseWrite()
			if !st.awaitEOF(lineWait) {
				return
			}
			st.conn.Close()
		case 2: // an answer, then a reset
			if !st.exchange(line[:len(line)-1]) {
				return
			}
			st.reset()
		}
	}
	u, ok := settle(c, s, base, 10*time.Second)
	assert.True(c, ok, "after %d cycles: %d descriptors, %d processes, %d zombies; at the start %d, %d, %d",
		cycles, u.FDs, u.Procs, u.Zombies, base.FDs, base.Procs, base.Zombies)
	c.figure("%d cycles under a limit of 32: descriptors %d before, %d after; processes %d, %d",
		cycles, base.FDs, u.FDs, base.Procs, u.Procs)
}

func checkOneListener(c *check) {
	s := c.start()
	base, err := s.Usage()
	require.NoError(c, err)
	for range 3 {
		if st := c.open(s); st != nil {
			st.send([]byte("a connection in the middle of a li"))
		}
	}
	// Wait until the server has taken them: three more children, or, in one
	// process, three more descriptors. Until then nothing could inherit
	// the listener. (The blocking loop takes the first, and waits on it.)
	taken := 3
	if c.stage.stalls() {
		taken = 1
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		u, err := s.Usage()
		require.NoError(c, err)
		if u.Procs >= base.Procs+taken || u.FDs >= base.FDs+taken {
			break
		}
		if time.Now().After(deadline) {
			c.Errorf("the server has not taken %d clients in 5 s: %d processes and %d descriptors, against %d and %d", taken, u.Procs, u.FDs, base.Procs, base.FDs)
			return
		}
		time.Sleep(10 * time.Millisecond) // Polls a condition; orders nothing.
	}
	holders, err := s.ListenerHolders()
	require.NoError(c, err)
	assert.Equal(c, []int{s.Pid}, holders, "the processes holding the listening socket")
	pids, _ := s.Pids()
	c.figure("%d processes; the listening socket held by %v", len(pids), holders)
}

// checkMethods starts the reactor stage with each backend ruled out in
// turn, as libevent's environment variables do, and checks which one it
// says it uses.
func checkMethods(c *check) {
	order := []string{"epoll", "poll", "select"} // Linux's preference list
	var ruledOut []string
	for _, want := range append(order, "io_uring") {
		stage := c.built
		stage.Env = append([]string{"EVENT_SHOW_METHOD=1"}, ruledOut...)
		if want == "io_uring" {
			// Asked for, as libevent's IOCP is: first, whatever else is
			// ruled out or not.
			if err := uring.Available(); err != nil {
				c.figure("io_uring not checked: %v", err)
				break
			}
			stage.Env = []string{"EVENT_SHOW_METHOD=1", "EVENT_IOURING=1"}
		}
		s, err := stage.StartErr()
		if !assert.NoError(c, err) {
			return
		}
		_, err = s.WaitStderr(c.ctx, func(l string) bool { return strings.Contains(l, "using method ") })
		assert.NoError(c, err, "EVENT_SHOW_METHOD prints the method")
		found := ""
		for _, l := range s.Stderr() {
			if i := strings.Index(l, "using method "); i >= 0 {
				found = strings.Fields(l[i+len("using method "):])[0]
			}
		}
		assert.Equal(c, want, found, "with %v", ruledOut)
		if st := c.open(s); st != nil {
			st.exchange("served on " + found)
		}
		s.Kill()
		ruledOut = append(ruledOut, "EVENT_NO"+strings.ToUpper(want)+"=1")
	}
	c.figure("epoll by default, then poll, then select, as EVENT_NO* rule each out; io_uring with EVENT_IOURING")
}

// checkNoCtlPerLine has a client exchange 200 lines with a reactor stage
// running with -trace, in which pkg/event narrates every change of
// interest it asks the backend for. The book's 04 adds the write event for
// every answer and deletes it after: two epoll_ctl calls a line. A stage
// that writes at once changes the client's descriptor twice in all: when
// it arrives and when it goes.
func checkNoCtlPerLine(c *check) {
	s := c.start("-trace")
	st := c.open(s)
	if st == nil {
		return
	}
	for i := range 200 {
		if !st.exchange(fmt.Sprintf("line %03d", i)) {
			return
		}
	}
	st.conn.Close()
	if _, err := s.WaitStderr(c.ctx, func(l string) bool { return strings.HasPrefix(l, "close fd") }); err != nil {
		c.Errorf("the server never traced the close: %v", err)
		return
	}
	fd, method := "", ""
	for _, l := range s.Stderr() {
		if rest, ok := strings.CutPrefix(l, "accept fd="); ok {
			fd = strings.Fields(rest)[0]
		}
		if rest, ok := strings.CutPrefix(l, "method "); ok {
			method = rest
		}
	}
	require.NotEmpty(c, fd, "the trace shows the accept")
	require.NotEmpty(c, method, "the trace shows the method")
	var changes []string
	recvs, sends := 0, 0
	for _, l := range s.Stderr() {
		if strings.HasPrefix(l, method+": fd "+fd+": watch for") {
			changes = append(changes, l)
		}
		if rest, ok := strings.CutPrefix(l, "fd "+fd+": submit "); ok {
			switch strings.Fields(rest)[0] {
			case "recv":
				recvs++
			case "send":
				sends++
			}
		}
	}
	if method == "io_uring" {
		// Completion bufferevents: the client's socket is never watched.
		// Each line went to the kernel as operations, which the trace
		// shows: so the check saw them, and the lines were not served in
		// some other way.
		assert.Empty(c, changes, "on io_uring the client's socket is never watched")
		assert.GreaterOrEqual(c, recvs, 200, "a recv submitted for each line")
		assert.GreaterOrEqual(c, sends, 200, "a send submitted for each answer")
		c.figure("on io_uring, 200 lines: %d changes of interest for the client; %d recvs and %d sends submitted", len(changes), recvs, sends)
		return
	}
	assert.Equal(c, []string{
		method + ": fd " + fd + ": watch for Read, was 0",
		method + ": fd " + fd + ": watch for 0, was Read",
	}, changes, "watched for reading on arrival, forgotten on departure, and no change between")
	c.figure("on %s, 200 lines: %d changes of interest for the client", method, len(changes))
}

// rot13Of returns the ROT13 of p, a byte at a time: the suite's own,
// so that a check does not depend on the code it checks.
func rot13Of(p []byte) []byte {
	out := make([]byte, len(p))
	for i, b := range p {
		out[i] = rot13Byte(b)
	}
	return out
}

// rot13Byte is the ROT13 of one byte, written out here so that the check
// does not depend on the code it checks.
func rot13Byte(b byte) byte {
	switch {
	case b >= 'a' && b <= 'z':
		return 'a' + (b-'a'+13)%26
	case b >= 'A' && b <= 'Z':
		return 'A' + (b-'A'+13)%26
	}
	return b
}

// checkIOURingRefused runs the stage where io_uring_setup is forbidden, by
// a seccomp filter as a container's default profile installs
// (tests/noiouring): it must say so, and why, in one line, and exit 1,
// without listening.
func checkIOURingRefused(c *check) {
	stage := c.built
	stage.Wrap = []string{stagetest.Build(c.T, "tests/noiouring").Bin}
	r := stage.Run(c.T, 10*time.Second, "-listen", "127.0.0.1:0")
	lines := r.StderrLines()
	assert.Equal(c, 1, r.ExitCode, "exit status; stderr:\n%s", r.Stderr)
	assert.Empty(c, r.Stdout)
	noPanic(c, r.Stderr)
	if assert.Len(c, lines, 1, "exactly one line on stderr") {
		assert.Contains(c, lines[0], "io_uring", "the line names io_uring")
		assert.Contains(c, lines[0], "seccomp", "and the reason: a seccomp filter")
		assert.NotContains(c, lines[0], "listening on")
		c.figure("under a seccomp filter: %q, exit status %d", lines[0], r.ExitCode)
	}
}
