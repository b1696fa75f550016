package main

import (
	"bufio"
	"cmp"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// 06 has no trace of its own worth drawing: the lesson is in the Go
// runtime, below the program. So its scenario runs under strace -f, which
// prints every system call of every thread with a timestamp, and the
// picture is drawn from that: a lifeline per thread that did something
// for a client, the clients' steps placed among the system calls by the
// clock (the same clock: both are the wall clock, in microseconds).

// straceCalls are the calls the picture is made of. futex (the runtime's
// threads waking each other) is left out: it is frequent and, drawn, it
// hides the story.
const straceCalls = "trace=accept4,read,write,epoll_pwait,epoll_ctl,close"

// straceArgs: follow every thread (-f), stamp each call with the wall
// clock (-ttt) and the time it took (-T), so that it can be placed when it
// returned, which is when its result is known.
var straceArgs = []string{"-f", "-ttt", "-T", "-qq", "-e", straceCalls}

// A straceLine is one completed system call.
type straceLine struct {
	at     int64 // µs since the epoch, when it returned (a write: began)
	tid    string
	call   string
	args   string
	result string
}

var (
	straceRE   = regexp.MustCompile(`^(\d+) +(\d+)\.(\d{6}) (.*)$`)
	callRE     = regexp.MustCompile(`^(\w+)\((.*)\) += (.*?)(?: <(\d+)\.(\d{6})>)?$`)
	unfinished = regexp.MustCompile(`^(\w+)\((.*) <unfinished \.\.\.>$`)
	resumed    = regexp.MustCompile(`^<\.\.\. (\w+) resumed>(.*)\) += (.*?)(?: <(\d+)\.(\d{6})>)?$`)
	portRE     = regexp.MustCompile(`sin_port=htons\((\d+)\)`)
	dataRE     = regexp.MustCompile(`u64=(\d+)`)
	readyRE    = regexp.MustCompile(`\{events=([A-Z|]+), data=\{u32=\d+, u64=(\d+)\}\}`)
)

// parseStrace reads strace -f -ttt output: a call split across lines by
// another thread's ("<unfinished ...>", then "<... resumed>") is joined,
// and stamped with the time it returned.
func parseStrace(path string) ([]straceLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type start struct {
		at   int64
		args string
	}
	pending := map[string]start{} // tid -> the call it is in, so far
	var out []straceLine
	// took is a call's duration, from -T's "<seconds.micros>".
	took := func(sec, usec string) int64 {
		s, _ := strconv.ParseInt(sec, 10, 64)
		u, _ := strconv.ParseInt(usec, 10, 64)
		return s*1e6 + u
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := straceRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		sec, _ := strconv.ParseInt(m[2], 10, 64)
		usec, _ := strconv.ParseInt(m[3], 10, 64)
		at, tid, rest := sec*1e6+usec, m[1], m[4]
		if u := unfinished.FindStringSubmatch(rest); u != nil {
			pending[tid] = start{at, u[2]}
			continue
		}
		if r := resumed.FindStringSubmatch(rest); r != nil {
			p := pending[tid]
			out = append(out, straceLine{when(r[1], p.at, took(r[4], r[5])), tid, r[1], p.args + r[2], r[3]})
			delete(pending, tid)
			continue
		}
		if c := callRE.FindStringSubmatch(rest); c != nil {
			out = append(out, straceLine{when(c[1], at, took(c[4], c[5])), tid, c[1], c[2], c[3]})
		}
	}
	return out, sc.Err()
}

// when places a call in time: when it returned, which is when a read or
// a wait knows its result; but a write at its start, since its bytes
// reach a client on this machine during the call, and the client may
// answer before strace has seen the call return.
func when(call string, began, took int64) int64 {
	if call == "write" {
		return began
	}
	return began + took
}

// recordStrace runs 06's scenario under strace, and draws it.
func (sc scenario) recordStrace(bin string) (src string, events []event, err error) {
	if _, err := exec.LookPath("strace"); err != nil {
		return "", nil, fmt.Errorf("%s: strace is not installed (apt-get install strace; make pictures installs it when run as root)", sc.name)
	}
	dir, err := os.MkdirTemp("", "strace")
	if err != nil {
		return "", nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "strace.out")
	args := append(straceArgs, "-o", out, bin, "-listen", "127.0.0.1:0")
	r, addr, err := start(sc.name, "strace", args, func(*run, string) {})
	if err != nil {
		return "", nil, err
	}
	defer r.recoverFailure(&err)
	r.straceOut = out
	sc.play(r, addr)
	// The stage is strace's child: SIGTERM goes to it, and strace ends
	// when it does.
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", r.cmd.Process.Pid, r.cmd.Process.Pid))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(children)))
	if err != nil || pid == 0 {
		r.fail("strace has no child to stop: %v", err)
	}
	r.target = pid
	r.stop()
	calls, err := parseStrace(out)
	if err != nil {
		r.fail("%v", err)
	}
	events = r.mergeStrace(calls)
	r.mustShow(events, sc.lesson)
	return sc.source(r.order, events), events, nil
}

// mergeStrace draws the system calls that served the clients, among the
// clients' own steps, in the order of the clock.
func (r *run) mergeStrace(calls []straceLine) []event {
	fds := map[string]string{}  // fd -> client
	data := map[string]string{} // epoll's data for an fd -> that fd
	threads := map[string]string{}
	thread := func(tid string) string {
		if threads[tid] == "" {
			threads[tid] = fmt.Sprintf("thread %d", len(threads)+1)
		}
		return threads[tid]
	}
	fdOf := func(args string) string { fd, _, _ := strings.Cut(args, ","); return fd }
	var drawn []event
	for _, c := range calls {
		fd := fdOf(c.args)
		var text string
		switch c.call {
		case "accept4":
			if p := portRE.FindStringSubmatch(c.args); p != nil && !strings.HasPrefix(c.result, "-1") {
				port, _ := strconv.Atoi(p[1])
				if name := r.byPort[port]; name != "" {
					fds[c.result] = name
					text = fmt.Sprintf("accept4 = fd %s (%s)", c.result, name)
				}
			}
		case "epoll_ctl":
			if strings.Contains(c.args, "EPOLL_CTL_ADD") && fds[fd2(c.args)] != "" {
				if d := dataRE.FindStringSubmatch(c.args); d != nil {
					data[d[1]] = fd2(c.args)
				}
				text = fmt.Sprintf("epoll_ctl: add fd %s (%s)", fd2(c.args), fds[fd2(c.args)])
			}
		case "epoll_pwait":
			var ready []string
			// Ready to read: EPOLLIN, or the peer gone; not EPOLLOUT alone.
			for _, d := range readyRE.FindAllStringSubmatch(c.args, -1) {
				if f := data[d[2]]; f != "" && fds[f] != "" && strings.Contains(d[1], "EPOLLIN") {
					ready = append(ready, fmt.Sprintf("fd %s (%s)", f, fds[f]))
				}
			}
			if len(ready) > 0 {
				text = fmt.Sprintf("epoll_pwait: %s ready: its goroutine runnable", strings.Join(ready, ", "))
			}
		case "read":
			name := fds[fd]
			switch {
			case name == "":
			case strings.HasPrefix(c.result, "-1 EAGAIN"):
				text = fmt.Sprintf("read(fd %s) = EAGAIN (%s): its goroutine parks", fd, name)
			default:
				text = fmt.Sprintf("read(fd %s) = %s (%s)", fd, c.result, name)
			}
		case "write":
			if name := fds[fd]; name != "" {
				n, _ := strconv.Atoi(c.result)
				drawn = append(drawn, event{at: c.at, from: thread(c.tid), to: name, text: r.answer(name, n)})
			}
		case "close":
			if name := fds[fd]; name != "" {
				text = fmt.Sprintf("close(fd %s) (%s)", fd, name)
				delete(fds, fd)
			}
		}
		if text != "" {
			drawn = append(drawn, event{at: c.at, from: thread(c.tid), text: text})
		}
	}
	// The clients' steps, by the clock; a client's bytes go to the thread
	// that reads them next.
	events := slices.Clone(r.events)
	events = append(events, drawn...)
	slices.SortStableFunc(events, func(a, b event) int { return cmp.Compare(a.at, b.at) })
	for i, e := range events {
		if r.clients[e.from] == nil || e.to == "" {
			continue
		}
		for _, later := range events[i+1:] {
			if later.to == "" && strings.HasPrefix(later.from, "thread") && strings.Contains(later.text, "("+e.from+")") {
				events[i].to = later.from
				break
			}
		}
	}
	var order []string
	for _, who := range r.order {
		if r.clients[who] != nil {
			order = append(order, who)
		}
	}
	for i := range len(threads) {
		order = append(order, fmt.Sprintf("thread %d", i+1))
	}
	r.order = order
	return events
}

// fd2 is epoll_ctl's third argument: the descriptor it adds.
func fd2(args string) string {
	parts := strings.SplitN(args, ", ", 4)
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

// straced waits until strace has shown n calls matching pattern, each
// written as "call(args) = result", and returns the last of them.
func (r *run) straced(pattern string, n int) string {
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		calls, err := parseStrace(r.straceOut)
		if err != nil {
			r.fail("%v", err)
		}
		var seen []string
		for _, c := range calls {
			if c.at < r.straceSince {
				continue // the runtime's start, before the first client
			}
			if line := c.call + "(" + c.args + ") = " + c.result; re.MatchString(line) {
				seen = append(seen, line)
			}
		}
		if len(seen) >= n {
			return seen[n-1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.fail("strace never showed %d calls matching %q", n, pattern)
	return ""
}

// parked connects client name, and waits until strace shows the stage
// has accepted it and that its goroutine's first read found nothing:
// the goroutine is parked.
func (r *run) parked(name, addr string) {
	if r.straceSince == 0 {
		r.straceSince = time.Now().UnixMicro()
	}
	r.connect(name, addr, false)
	port := r.clients[name].conn.LocalAddr().(*net.TCPAddr).Port
	accept := r.straced(fmt.Sprintf(`^accept4\(.*htons\(%d\).* = \d+$`, port), 1)
	fd := accept[strings.LastIndex(accept, " ")+1:]
	r.byFD["server "+fd] = name
	r.straced(fmt.Sprintf(`^read\(%s, .* = -1 EAGAIN`, fd), 1)
}
