package main

import (
	"fmt"
	"net"
	"strings"
)

// A scenario is one classroom experiment: a stage, what its clients do,
// and the order of events that carries its lesson. Recorded, it becomes
// runs/NAME.d2 and runs/NAME.svg; run again by the test, it must show
// the lesson again.
type scenario struct {
	name      string // runs/NAME.d2
	stage     string // the package, from the repository's root
	args      []string
	title     string // the picture's title: what it shows
	lesson    []string
	translate func(*run, string)
	play      func(r *run, addr string)
	strace    bool // recorded from strace -f (06), not from -trace
}

// The stages' traces, as pictures.
var (
	blockingTrace = rules(acceptRule, recvRule, eofRule, readRule, writeRule, closeRule)
	forkingTrace  = rules(append(forkRules, acceptRule, eofRule, readRule, writeRule)...)
	busyTrace     = rules(acceptRule, idleRule, eofRule, readRule, writeRule, closeRule)
	selectTrace   = rules(selectRule, acceptRule, eofRule, readRule, writeRule, closeRule)
	reactorTrace  = rules(readyRule, watchRule, callbackRule, acceptRule, eofRule, readRule, writeRule, closeRule)
	bufferTrace   = rules(append(bufferRules, readyRule, acceptRule, closeRule)...)
	completeTrace = rules(append(completionRules, closeRule)...)
)

var scenarios = []scenario{
	{
		name:  "02-blocking-loop",
		stage: "02-forking-server/blocking-loop",
		title: "The blocking loop: while B is silent, A and C wait\n(recorded from its -trace)",
		lesson: []string{
			`^server: recv on fd \d+: waits for B`,
			`^C -> server: `,
			`^B -> server: `,
			`^server -> B: `,
			`^server -> C: `,
		},
		translate: blockingTrace,
		play: func(r *run, addr string) {
			r.lifeline("A", "B", "C", "server")
			r.connect("A", addr, true)
			r.until(`^recv on fd`)
			r.connect("B", addr, false)
			r.connect("C", addr, false)
			r.exchange("A", "server", "Hello\n")
			r.until(`^recv on fd`) // B and C accepted; A's turn again
			r.exchange("A", "server", "again\n")
			r.until(`^recv on fd`) // B's turn: it says nothing
			r.send("C", "server", "Hi\n")
			r.send("A", "server", "me too\n")
			r.blockedReading("B")
			r.add("server", "", "(in read on B's fd: A and C wait)")
			r.send("B", "server", "Here\n")
			r.answered("B")
			r.answered("C")
			r.answered("A")
			r.hangUpAll("server")
		},
	},
	{
		name:  "02-forking-server",
		stage: "02-forking-server",
		title: "02: a process for each client, each answered by its own\n(recorded from its -trace)",
		lesson: []string{
			`^parent -> child for A: fork`,
			`^parent -> child for B: fork`,
			`^parent -> child for C: fork`,
			`^C -> child for C: `,
			`^child for C -> C: `,
			`^B -> child for B: `,
			`^child for B -> B: `,
			`^A -> child for A: `,
			`^child for A -> A: `,
		},
		translate: forkingTrace,
		play: func(r *run, addr string) {
			r.procs["parent"] = "parent"
			r.lifeline("A", "B", "C", "parent", "child for A", "child for B", "child for C")
			for _, name := range []string{"A", "B", "C"} {
				r.connect(name, addr, true)
				r.until(`^fork: child`)
			}
			for _, name := range []string{"C", "B", "A"} {
				r.exchange(name, "child for "+name, "Hello, "+name+"\n")
			}
			for _, name := range []string{"A", "B", "C"} {
				r.hangUp(name, "child for "+name)
				r.until(`^reap child`)
			}
		},
	},
	{
		name:  "03-busy-poll",
		stage: "03-select-server/busy-poll",
		title: "The busy-poller: nothing to do, and it asks and asks\n(recorded from its -trace)",
		lesson: []string{
			`^server: accept: fd \d+ is A`,
			`^server -> server: in 1 s: \d[\d,]* recv .* found nothing`,
			`^A -> server: `,
			`^server -> A: `,
		},
		translate: busyTrace,
		play: func(r *run, addr string) {
			r.lifeline("A", "server")
			r.connect("A", addr, true)
			r.until(`found nothing`)
			r.until(`found nothing`)
			r.exchange("A", "server", "Hi\n")
			r.until(`found nothing`)
			r.hangUpAll("server")
		},
	},
	{
		name:  "03-select-server",
		stage: "03-select-server",
		title: "03: one select reports three clients ready;\none read for each (recorded from its -trace)",
		lesson: []string{
			`^server: stopped`,
			`^C -> server: `,
			`^server: select: 3 of \d+ ready`,
			`^server: read \d+ from fd \d+ \(A\)`,
			`^server: read \d+ from fd \d+ \(B\)`,
			`^server: read \d+ from fd \d+ \(C\)`,
		},
		translate: selectTrace,
		play: func(r *run, addr string) {
			frozenRound("A", "B", "C")(r, addr)
			r.hangUpAll("server")
		},
	},
	{
		name:  "04-reactor-server",
		stage: "04-reactor-server",
		title: "04: the same round through callbacks; the write event\nadded while an answer waits, deleted once it is out\n(recorded from its -trace)",
		lesson: []string{
			`^server: epoll_wait: 3 ready`,
			`^server -> server: callback: fd \d+ \(A\), Read`,
			`^server -> A: Uryyb, N`,
			`^A: stops reading`,
			`^server: fd \d+ \(A\): watch Read\|Write, was Read$`,
			`^server: fd \d+ \(A\): watch Write, was Read\|Write$`,
			`^A: reads again`,
			`^server -> server: callback: fd \d+ \(A\), Write`,
			`^server: fd \d+ \(A\): watch (0|Read), was Write$`,
		},
		translate: reactorTrace,
		play:      roundThenFlood,
	},
	{
		name:  "05-bufferevent-server",
		stage: "05-bufferevent-server",
		title: "05: A sends and never reads; at the output's watermark\nreading pauses; B is served meanwhile; A reads, reading resumes\n(recorded from its -trace)",
		lesson: []string{
			`^A -> server: `,
			`^server: output [\d,]+ bytes, at the watermark: reading paused`,
			`^server -> B: `,
			`^A: reads again`,
			`^server: output [\d,]+ bytes, below the watermark: reading resumed`,
		},
		translate: bufferTrace,
		play:      floodWithWatermark,
	},
	{
		name:   "06-goroutine-server",
		stage:  "06-goroutine-server",
		strace: true,
		title:  "06: a goroutine per client; the runtime parks it when\nits read finds nothing, and epoll wakes it (recorded with strace -f)",
		lesson: []string{
			`^thread \d+: accept4 = fd \d+ \(A\)`,
			`^thread \d+: read\(fd \d+\) = EAGAIN \(A\)`,
			`^A -> thread \d+: Hello`,
			`^thread \d+: epoll_pwait: fd \d+ \(A\) ready`,
			`^thread \d+: read\(fd \d+\) = 6 \(A\)`,
			`^thread \d+ -> A: Uryyb`,
		},
		play: func(r *run, addr string) {
			r.lifeline("A", "B")
			r.parked("A", addr)
			r.parked("B", addr)
			r.send("A", "server", "Hello\n")
			r.expect("A", "Uryyb\n")
			r.send("B", "server", "Hi\n")
			r.expect("B", "Uv\n")
			r.hangUp("A", "server")
			r.hangUp("B", "server")
			r.straced(fmt.Sprintf(`^close\(%s\) = 0`, r.fdOf("A")), 1)
			r.straced(fmt.Sprintf(`^close\(%s\) = 0`, r.fdOf("B")), 1)
		},
	},
	{
		name:  "07-completion-server",
		stage: "07-completion-server",
		title: "07: submit, then complete: the kernel receives and sends\nfor the program, and each completion says what it did\n(recorded from its -trace)",
		lesson: []string{
			`^server: submit recv \(multishot\) on fd \d+ \(A\)`,
			`^A -> server: Hello\\n`,
			`^server: complete recv fd \d+ \(A\): 6 bytes in buffer \d+ \(more: true\)`,
			`^server: submit send fd \d+ \(A\): 6 bytes`,
			`^server: enter: submit [1-9]\d*, wait for 1`,
			`^server -> A: Uryyb\\n`,
			`^server: complete send fd \d+ \(A\): 6$`,
			`^server: enter: submit 0, wait for 1`,
		},
		translate: completeTrace,
		play:      submittedRound,
	},
}

// exchange sends a line as client name, and waits for its answer.
func (r *run) exchange(name, to, line string) {
	r.send(name, to, line)
	r.answered(name)
}

// answered waits for the trace of the write that answers client name's
// oldest unanswered line (in 07, its send's completion), and for the
// client to receive it.
func (r *run) answered(name string) {
	cl := r.clients[name]
	line, _, _ := strings.Cut(cl.sent.String(), "\n")
	want := r.answerOf(line + "\n")
	for r.answers[name] == r.claimed[name] {
		r.until(`^(\[child \d+\] )?(write \d+ to fd|fd \d+: wrote|complete send fd \d+: \d+$)`)
	}
	r.claimed[name]++
	r.expect(name, want)
}

// answerOf is ROT13, for checking what a client got.
func (r *run) answerOf(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = 'a' + (c-'a'+13)%26
		case c >= 'A' && c <= 'Z':
			b[i] = 'A' + (c-'A'+13)%26
		}
	}
	return string(b)
}

// hangUpAll closes every client, and waits until the server has closed
// each of them.
func (r *run) hangUpAll(to string) {
	names := r.order[:0:0]
	for _, who := range r.order {
		if r.clients[who] != nil {
			names = append(names, who)
		}
	}
	for _, name := range names {
		r.hangUp(name, to)
	}
	for range names {
		r.until(`^close fd`)
	}
}

// frozenRound is the round of 03 and 04: the clients connect; the server
// is stopped (SIGSTOP) while each sends a line, so that all of them are
// ready at its next wait; then it runs on, and answers them.
func frozenRound(names ...string) func(r *run, addr string) {
	return func(r *run, addr string) {
		r.lifeline(append(names, "server")...)
		for _, name := range names {
			r.connect(name, addr, true)
		}
		r.freeze()
		r.add("server", "", "stopped (SIGSTOP)")
		for _, name := range names {
			r.send(name, "server", fmt.Sprintf("Hello, %s\n", name))
		}
		r.thaw()
		r.add("server", "", "continued (SIGCONT)")
		for _, name := range names {
			r.answered(name)
		}
	}
}

// flood sends size bytes of lines as client name, which has stopped
// reading, and counts the server's steps for it as a burst. It returns
// the bytes sent and the end of the write (which blocks until the server
// takes everything).
func (r *run) flood(name string, size int) (block []byte, wrote chan error) {
	cl := r.clients[name]
	r.stopReading(name)
	r.burst = &burst{fd: r.fdOf(name), counting: true}
	line := "The quick brown fox jumps over the lazy dog\n"
	block = []byte(strings.Repeat(line, size/len(line)))
	cl.sent.Write(block)
	r.add(name, "", "stops reading")
	r.add(name, r.server(), "%d MiB of lines", size>>20)
	wrote = make(chan error, 1)
	go func() {
		_, err := cl.conn.Write(block)
		wrote <- err
	}()
	return block, wrote
}

// drained lets a flooding client read again, and waits until it has the
// answer to every line it sent.
func (r *run) drained(name string, block []byte, wrote chan error, resumed string) {
	r.add(name, "", "reads again")
	r.startReading(name)
	r.until(resumed)
	r.expectAll(name, []byte(r.answerOf(string(block))))
	if err := <-wrote; err != nil {
		r.fail("%s: write: %v", name, err)
	}
	// The client has every answer; the trace of their writes follows.
	for r.clients[name].sent.Len() > 0 {
		r.until(`^(fd \d+: wrote|write) \d+`)
	}
	r.flushBurst(r.server())
}

// endBurst draws what is left of a burst, after its client has gone.
func (r *run) endBurst() {
	r.flushBurst(r.server())
	if r.burst.hidden > 0 {
		r.add(r.server(), "", "(and %d more such changes, not drawn)", r.burst.hidden)
	}
	r.burst = nil
}

// floodWithWatermark is 05's scenario: A sends far more lines than it
// reads, until the server's output for it passes the watermark and
// reading pauses; B is answered meanwhile; then A reads everything, and
// reading resumes.
func floodWithWatermark(r *run, addr string) {
	r.lifeline("A", "B", "server")
	r.connect("A", addr, true)
	r.connect("B", addr, true)
	block, wrote := r.flood("A", 16<<20)
	r.until(`reading paused`)
	r.exchange("B", "server", "Hi\n")
	r.drained("A", block, wrote, `reading resumed`)
	r.hangUpAll("server")
	r.endBurst()
}

// roundThenFlood is 04's scenario: the round of 03, through callbacks;
// then A floods and stops reading: the write event is added when the
// socket is full, reading stops when the buffer is, and when A reads
// again, the write event goes and reading comes back.
func roundThenFlood(r *run, addr string) {
	frozenRound("A", "B", "C")(r, addr)
	block, wrote := r.flood("A", 16<<20)
	r.until(`watch for Write, was Read\|Write`)
	r.drained("A", block, wrote, `watch for Read, was (0|Write)`)
	r.hangUpAll("server")
	r.endBurst()
}

// submittedRound is 07's scenario: 04's round without the freeze, a step
// at a time, so that each submission, wait and completion is drawn where
// it happened: A and B connect, and each sends a line and is answered.
// After each step, it waits until the server waits again in
// io_uring_enter, so that what the server submitted is drawn before the
// clients' next step.
func submittedRound(r *run, addr string) {
	r.lifeline("A", "B", "server")
	// The first submissions (the signals' pipe read, the first accept)
	// come before the "listening on" line, which start waits for without
	// drawing: they happened before any client, and are drawn first.
	for _, line := range r.seen {
		r.translate(r, line)
	}
	r.until(`^enter: `)
	for _, name := range []string{"A", "B"} {
		r.connect(name, addr, false)
		port := r.clients[name].conn.LocalAddr().(*net.TCPAddr).Port
		r.until(fmt.Sprintf(`^complete accept: fd \d+ from .*:%d$`, port))
		r.until(`^enter: `)
	}
	for _, sent := range []struct{ name, line string }{{"A", "Hello\n"}, {"B", "Hi\n"}} {
		r.exchange(sent.name, "server", sent.line)
		r.until(`^enter: `)
	}
	r.hangUpAll("server")
}
