package main

import (
	"regexp"
	"strconv"
	"strings"
)

// A rule turns one kind of trace line into events. proc is the lifeline
// of the process that printed it (the server's, or one of 02's
// processes); m holds the line's submatches.
type rule struct {
	re *regexp.Regexp
	do func(r *run, proc string, m []string)
}

func on(pattern string, do func(r *run, proc string, m []string)) rule {
	return rule{regexp.MustCompile(pattern), do}
}

// rules returns a translation that tries each rule in turn; a line that
// none matches is left out of the picture.
func rules(list ...rule) func(r *run, line string) {
	return func(r *run, line string) {
		proc := r.server()
		// 02's children print "[child PID] " before each line.
		if m := childPrefix.FindStringSubmatch(line); m != nil {
			proc = r.procs[m[1]]
			if proc == "" {
				proc = "child " + m[1]
			}
			line = line[len(m[0]):]
		}
		for _, ru := range list {
			if m := ru.re.FindStringSubmatch(line); m != nil {
				ru.do(r, proc, m)
				return
			}
		}
	}
}

var childPrefix = regexp.MustCompile(`^\[child (\d+)\] `)

// The rules that every stage's trace shares: accept, read, write, close.
var (
	acceptRule = on(`^accept fd[= ](\d+) from .*:(\d+)$`, func(r *run, proc string, m []string) {
		name := r.accepted(proc, m[1], m[2])
		r.add(proc, "", "accept: fd %s is %s", m[1], name)
	})
	readRule = on(`^read (\d+) from fd (\d+)$`, func(r *run, proc string, m []string) {
		if r.counted(proc, m[2], "read", m[1]) {
			return
		}
		r.add(proc, "", "read %s from fd %s (%s)", m[1], m[2], r.clientOf(proc, m[2]))
	})
	eofRule = on(`^read 0 from fd (\d+): end of stream`, func(r *run, proc string, m []string) {
		r.add(proc, "", "read 0 from fd %s (%s): end of stream", m[1], r.clientOf(proc, m[1]))
	})
	writeRule = on(`^write (\d+) to fd (\d+)$`, func(r *run, proc string, m []string) {
		if r.counted(proc, m[2], "write", m[1]) {
			return
		}
		name := r.clientOf(proc, m[2])
		n, _ := strconv.Atoi(m[1])
		r.add(proc, name, "%s", r.answer(name, n))
	})
	closeRule = on(`^close fd (\d+)$`, func(r *run, proc string, m []string) {
		r.add(proc, "", "close fd %s (%s)", m[1], r.clientOf(proc, m[1]))
	})
)

// The blocking loop says where it blocks.
var recvRule = on(`^recv on fd (\d+): waits`, func(r *run, proc string, m []string) {
	r.add(proc, "", "recv on fd %s: waits for %s", m[1], r.clientOf(proc, m[1]))
})

// 02's parent forks a child for each client, which serves it as fd 3.
var forkRules = []rule{
	on(`^fork: child (\d+) serves fd (\d+) as its fd (\d+); close fd \d+`, func(r *run, proc string, m []string) {
		name := r.clientOf(proc, m[2])
		child := "child for " + name
		r.procs[m[1]] = child
		r.byFD[child+" "+m[3]] = name
		r.add(proc, child, "fork, exec: its fd %s is fd %s", m[3], m[2])
		r.add(proc, "", "close fd %s", m[2])
	}),
	on(`^reap child (\d+): (.*)$`, func(r *run, proc string, m []string) {
		r.add(proc, "", "reap %s: %s", r.procs[m[1]], m[2])
	}),
}

// select and epoll say how many descriptors are ready.
var (
	selectRule = on(`^select: (\d+) of (\d+) ready`, func(r *run, proc string, m []string) {
		r.add(proc, "", "select: %s of %s ready", m[1], m[2])
	})
	readyRule = on(`^(epoll|poll|select): (\d+) ready$`, func(r *run, proc string, m []string) {
		if b := r.burst; b != nil && b.counting {
			if !contains(b.kinds, waitCall[m[1]]) {
				b.kinds = append(b.kinds, waitCall[m[1]])
			}
			return
		}
		r.add(proc, "", "%s: %s ready", waitCall[m[1]], m[2])
	})
	watchRule = on(`^(epoll|poll|select): fd (\d+): watch for (\S+), was (\S+)$`, func(r *run, proc string, m []string) {
		if !r.serves(proc, m[2]) {
			return // the listener's
		}
		if r.milestone(proc, m[2]) {
			r.add(proc, "", "fd %s (%s): watch %s, was %s", m[2], r.clientOf(proc, m[2]), m[3], m[4])
		}
		// A flood's steps are counted while the socket takes every
		// answer, and drawn once the write event is needed.
		if b := r.burst; b != nil && b.fd == m[2] {
			b.counting = b.milestones >= maxMilestones || m[3] == "Read" && (m[4] == "0" || m[4] == "Write")
		}
	})
	callbackRule = on(`^callback: fd (\d+), (\S+)$`, func(r *run, proc string, m []string) {
		if r.counted(proc, m[1], "callback "+m[2], "0") {
			return
		}
		what := "listener"
		if r.serves(proc, m[1]) {
			what = r.clientOf(proc, m[1])
		}
		r.add(proc, proc, "callback: fd %s (%s), %s", m[1], what, m[2])
	})
)

// waitCall names the system call each backend of the reactor waits in.
var waitCall = map[string]string{"epoll": "epoll_wait", "poll": "poll", "select": "select"}

// The busy-poller counts, each second, the calls that found nothing.
var idleRule = on(`^in the last second, (\d+) recv and (\d+) accept calls found nothing`, func(r *run, proc string, m []string) {
	r.add(proc, proc, "in 1 s: %s recv and %s accept\ncalls that found nothing", thousands(m[1]), thousands(m[2]))
})

// A bufferevent says what it reads, writes, and when it pauses reading.
var bufferRules = []rule{
	on(`^fd (\d+): read (\d+) into input \((\d+)\)$`, func(r *run, proc string, m []string) {
		if !r.counted(proc, m[1], "read", m[2]) {
			r.add(proc, "", "read %s from fd %s (%s)", m[2], m[1], r.clientOf(proc, m[1]))
		}
	}),
	on(`^fd (\d+): wrote (\d+) \(output (\d+)\)$`, func(r *run, proc string, m []string) {
		if !r.counted(proc, m[1], "write", m[2]) {
			name := r.clientOf(proc, m[1])
			n, _ := strconv.Atoi(m[2])
			r.add(proc, name, "%s", r.answer(name, n))
		}
	}),
	on(`^fd (\d+): output (\d+) (at|below) its watermark: reading (paused|resumed)$`, func(r *run, proc string, m []string) {
		if r.milestone(proc, m[1]) {
			r.add(proc, "", "output %s bytes, %s the watermark: reading %s", thousands(m[2]), m[3], m[4])
		}
	}),
	on(`^fd (\d+): socket full, output (\d+): waiting to write$`, func(r *run, proc string, m []string) {
		// Full, it stays full for many turns: the first says it.
		if b := r.burst; b != nil && b.fd == m[1] {
			if b.full {
				return
			}
			b.full = true
		}
		if r.milestone(proc, m[1]) {
			r.add(proc, "", "fd %s (%s): socket full, output %s: waiting to write", m[1], r.clientOf(proc, m[1]), thousands(m[2]))
		}
	}),
}

// A burst is one client flooding the server: thousands of reads and
// writes, too many to draw. While it is counting, they are tallied, and
// drawn as one note and one arrow before the next milestone (the socket
// full, a watermark, an event added): the first few milestones are drawn;
// later ones are only counted.
type burst struct {
	fd         string
	counting   bool
	rounds     int      // the reads (or callbacks) tallied
	kinds      []string // what a round does, in the order first seen
	readBytes  int
	wroteBytes int
	writes     int
	milestones int  // drawn so far
	full       bool // the socket full: said once
	hidden     int  // counted, past the first few
}

// maxMilestones is how many milestones of a burst a picture draws.
const maxMilestones = 4

// counted tallies one step of a burst, and says whether it did.
func (r *run) counted(proc, fd, kind, bytes string) bool {
	b := r.burst
	if b == nil || b.fd != fd || !b.counting {
		return false
	}
	n, _ := strconv.Atoi(bytes)
	switch kind {
	case "read":
		b.rounds++
		b.readBytes += n
	case "write":
		b.writes++
		b.wroteBytes += n
		r.clients[r.clientOf(proc, fd)].sent.Next(n)
	}
	if !contains(b.kinds, kind) {
		b.kinds = append(b.kinds, kind)
	}
	return true
}

// milestone flushes the tally before a milestone of fd's burst, and says
// whether to draw it.
func (r *run) milestone(proc, fd string) bool {
	b := r.burst
	if b == nil || b.fd != fd {
		return true
	}
	if b.milestones >= maxMilestones {
		b.hidden++
		return false
	}
	r.flushBurst(proc)
	b.milestones++
	return true
}

func (r *run) flushBurst(proc string) {
	b := r.burst
	if b == nil {
		return
	}
	name := r.clientOf(proc, b.fd)
	if b.rounds > 0 {
		r.add(proc, "", "%s× %s: %s bytes read", thousands(strconv.Itoa(b.rounds)), strings.Join(b.kinds, ", "), thousands(strconv.Itoa(b.readBytes)))
	}
	if b.writes > 0 {
		r.add(proc, name, "%s× write: %s bytes", thousands(strconv.Itoa(b.writes)), thousands(strconv.Itoa(b.wroteBytes)))
	}
	b.rounds, b.writes, b.readBytes, b.wroteBytes, b.kinds = 0, 0, 0, 0, nil
}

// thousands writes a count with commas, to be read at a glance.
func thousands(s string) string {
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// 07 narrates io_uring: what it submits, each wait in io_uring_enter, and
// what completes. The kernel does the reads and the writes; a completion
// says what it did. The arrow of an answer is drawn at its send's
// completion, by which the kernel has put its bytes in the client's
// socket: the submission only queues the SQE, which goes to the kernel at
// the next enter.
var completionRules = []rule{
	on(`^enter: (submit \d+, wait for \d+)$`, func(r *run, proc string, m []string) {
		r.add(proc, "", "enter: %s", m[1])
	}),
	on(`^submit read on fd (\d+) \(signals\)$`, func(r *run, proc string, m []string) {
		r.add(proc, "", "submit read on fd %s (signals)", m[1])
	}),
	on(`^submit accept on fd (\d+)$`, func(r *run, proc string, m []string) {
		r.add(proc, "", "submit accept on fd %s (listener)", m[1])
	}),
	on(`^complete accept: fd (\d+) from .*:(\d+)$`, func(r *run, proc string, m []string) {
		name := r.accepted(proc, m[1], m[2])
		r.add(proc, "", "complete accept: fd %s is %s", m[1], name)
	}),
	on(`^submit recv \(multishot\) on fd (\d+)$`, func(r *run, proc string, m []string) {
		r.add(proc, "", "submit recv (multishot) on fd %s (%s)", m[1], r.clientOf(proc, m[1]))
	}),
	on(`^submit send fd (\d+): (\d+) bytes$`, func(r *run, proc string, m []string) {
		r.add(proc, "", "submit send fd %s (%s): %s bytes", m[1], r.clientOf(proc, m[1]), m[2])
	}),
	on(`^complete send fd (\d+): (\d+)$`, func(r *run, proc string, m []string) {
		name := r.clientOf(proc, m[1])
		n, _ := strconv.Atoi(m[2])
		r.add(proc, name, "%s", r.answer(name, n))
		r.add(proc, "", "complete send fd %s (%s): %s", m[1], name, m[2])
	}),
	// The rest: a recv's completion (bytes, the end of the stream, no
	// buffer left, cancelled, an error), a send's error, a cancel, the
	// accept's pause: a note each, its fd named after its client.
	on(`^((?:submit|complete) [\w ]+?:? fd (\d+))(.*)$`, func(r *run, proc string, m []string) {
		if r.serves(proc, m[2]) {
			r.add(proc, "", "%s (%s)%s", m[1], r.clientOf(proc, m[2]), m[3])
		} else {
			r.add(proc, "", "%s", m[0])
		}
	}),
	on(`^(submit|complete) .*$`, func(r *run, proc string, m []string) {
		r.add(proc, "", "%s", m[0])
	}),
}
