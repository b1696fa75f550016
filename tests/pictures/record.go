package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// An event is one step of a recorded run, as the picture draws it: an
// arrow from one lifeline to another (bytes sent, a connection, a fork),
// or, when to is empty, a note on one lifeline (a step the server took
// by itself: select reporting who is ready, a read, a pause).
type event struct {
	from, to string
	text     string
	at       int64 // µs since the epoch: when the recording saw it
}

// patience bounds every wait of a recording: a stage that does not do
// what the scenario waits for within it has not done it at all.
const patience = 10 * time.Second

// A run is one stage running as a process, its clients, and what the
// recording has seen so far. A scenario drives it one step at a time and
// waits, after each, for the trace line that shows the stage's answer to
// it, so that the events are in the order they happened: a client's
// bytes before the read that took them, a read before the write of its
// answer.
type run struct {
	name    string
	cmd     *exec.Cmd
	lines   chan string // the stage's stderr, a line at a time
	exited  chan error
	events  []event
	clients map[string]*client
	order   []string // lifelines, in the order they appear

	// translate turns a line of the stage's trace into events (or none,
	// for a line the picture leaves out).
	translate func(r *run, line string)

	byPort map[int]string    // a client's port -> its name
	byFD   map[string]string // a server's "process fd" -> the client it serves
	procs  map[string]string // a server process's pid -> its lifeline
	seen   []string          // every trace line, for a failure's message
	burst  *burst            // a flooding client's reads and writes, counted

	target      int    // the pid SIGTERM stops, if not cmd's (strace's child)
	straceOut   string // where strace writes, when it records
	straceSince int64  // when the scenario began, in strace's clock

	answers, claimed map[string]int // answers drawn to each client; those a step waited for
}

// A client is one of the scenario's connections, named A, B, C. A
// goroutine reads whatever the server sends it into got.
type client struct {
	name string
	conn *net.TCPConn
	sent bytes.Buffer // bytes not yet answered, for the answers' labels

	mu   sync.Mutex
	got  bytes.Buffer
	more chan struct{} // signalled when got grows
	eof  bool

	stopped bool          // it reads nothing until resume
	resume  chan struct{} // closed by startReading
}

// failure is what a recording panics with; record turns it into an error.
type failure struct{ err error }

// recoverFailure, deferred by what records a scenario, turns the failure
// r.fail raised into *err, and stops the stage; any other panic goes on.
func (r *run) recoverFailure(err *error) {
	if p := recover(); p != nil {
		f, ok := p.(failure)
		if !ok {
			panic(p)
		}
		r.cmd.Process.Kill()
		*err = f.err
	}
}

// mustShow fails the run unless its events show the lesson.
func (r *run) mustShow(events []event, lesson []string) {
	if msg := lessonHolds(events, lesson); msg != "" {
		r.seen = nil
		r.fail("the run does not show the lesson: %s; its events:%s", msg, list(events))
	}
}

func (r *run) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if n := len(r.seen); n > 0 {
		msg += "\nlast trace lines:\n  " + strings.Join(r.seen[max(0, n-15):], "\n  ")
	}
	panic(failure{fmt.Errorf("%s: %s", r.name, msg)})
}

// start runs bin with args, and waits for its "listening on" line. The stage's own stderr is read line by line into
// r.lines; anything else it prints is a line like the others.
func start(name, bin string, args []string, translate func(*run, string)) (*run, string, error) {
	r := &run{
		name:      name,
		lines:     make(chan string, 1<<16),
		exited:    make(chan error, 1),
		clients:   map[string]*client{},
		translate: translate,
		byPort:    map[int]string{},
		byFD:      map[string]string{},
		procs:     map[string]string{},
		answers:   map[string]int{},
		claimed:   map[string]int{},
	}
	r.cmd = exec.Command(bin, args...)
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	if err := r.cmd.Start(); err != nil {
		return nil, "", err
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
		r.exited <- r.cmd.Wait()
	}()
	timeout := time.After(patience)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				return nil, "", fmt.Errorf("%s exited before it listened", name)
			}
			r.seen = append(r.seen, line)
			if _, addr, ok := strings.Cut(line, "listening on "); ok {
				return r, addr, nil
			}
		case <-timeout:
			r.cmd.Process.Kill()
			return nil, "", fmt.Errorf("%s: no \"listening on\" line in %v", name, patience)
		}
	}
}

// add appends an event, and the lifelines it names to the picture's.
func (r *run) add(from, to, format string, args ...any) {
	for _, who := range []string{from, to} {
		if who != "" && !contains(r.order, who) {
			r.order = append(r.order, who)
		}
	}
	if r.clients[to] != nil && from != to {
		r.answers[to]++
	}
	r.events = append(r.events, event{from, to, fmt.Sprintf(format, args...), time.Now().UnixMicro()})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// lifeline declares lifelines in the order given, before any event, so
// that the clients stand on the left and the server on the right.
func (r *run) lifeline(names ...string) {
	for _, n := range names {
		if !contains(r.order, n) {
			r.order = append(r.order, n)
		}
	}
}

// until takes the stage's trace lines, translating each into events,
// until one matches pattern, and returns that line's submatches.
func (r *run) until(pattern string) []string {
	re := regexp.MustCompile(pattern)
	timeout := time.After(patience)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				r.fail("exited while waiting for a trace line matching %q", pattern)
			}
			r.seen = append(r.seen, line)
			r.translate(r, line)
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-timeout:
			r.fail("no trace line matching %q in %v", pattern, patience)
		}
	}
}

// connect dials the stage as client name, and waits for the trace line
// of its accept (which the translation names after the client).
func (r *run) connect(name, addr string, waitAccept bool) {
	c, err := net.DialTimeout("tcp", addr, patience)
	if err != nil {
		r.fail("%s: connect: %v", name, err)
	}
	cl := &client{name: name, conn: c.(*net.TCPConn), more: make(chan struct{}, 1)}
	r.clients[name] = cl
	port := c.LocalAddr().(*net.TCPAddr).Port
	r.byPort[port] = name
	r.add(name, r.server(), "connect")
	go cl.read()
	if waitAccept {
		r.until(fmt.Sprintf(`^accept fd[= ]\d+ from .*:%d$`, port))
	}
}

// server is the lifeline the clients' bytes go to: the stage's process,
// or, in a forking stage, the parent that accepts.
func (r *run) server() string {
	if len(r.procs) > 0 {
		return r.procs["parent"]
	}
	return "server"
}

func (cl *client) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := cl.conn.Read(buf)
		cl.mu.Lock()
		cl.got.Write(buf[:n])
		if err != nil {
			cl.eof = true
		}
		resume := cl.resume
		if !cl.stopped {
			resume = nil
		}
		cl.mu.Unlock()
		if resume != nil {
			<-resume
		}
		select {
		case cl.more <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// send writes line as client name, drawn as an arrow to to (the server,
// or the process serving that client). The event goes in before the
// bytes leave, so it comes before the read that takes them.
func (r *run) send(name, to, line string) {
	cl := r.clients[name]
	r.add(name, to, "%s", quote(line))
	cl.sent.WriteString(line)
	if _, err := cl.conn.Write([]byte(line)); err != nil {
		r.fail("%s: write: %v", name, err)
	}
}

// expect waits until client name has received want, and takes it.
func (r *run) expect(name, want string) {
	cl := r.clients[name]
	deadline := time.After(patience)
	for {
		cl.mu.Lock()
		got := cl.got.String()
		eof := cl.eof
		if strings.HasPrefix(got, want) {
			cl.got.Next(len(want))
			cl.mu.Unlock()
			return
		}
		cl.mu.Unlock()
		if eof || (len(got) >= len(want)) {
			r.fail("%s: got %q, want %q", name, got, want)
		}
		select {
		case <-cl.more:
		case <-deadline:
			r.fail("%s: got %q in %v, want %q", name, got, patience, want)
		}
	}
}

// stopReading makes client name read nothing more (after the read it
// may be in), so that what the server sends it fills its socket.
func (r *run) stopReading(name string) {
	cl := r.clients[name]
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.stopped, cl.resume = true, make(chan struct{})
}

// startReading lets client name read again.
func (r *run) startReading(name string) {
	cl := r.clients[name]
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.stopped {
		cl.stopped = false
		close(cl.resume)
	}
}

// expectAll waits until client name has received want, all of it.
func (r *run) expectAll(name string, want []byte) {
	cl := r.clients[name]
	deadline := time.After(patience)
	for {
		cl.mu.Lock()
		n, eof := cl.got.Len(), cl.eof
		if n >= len(want) {
			ok := bytes.Equal(cl.got.Next(len(want)), want)
			cl.mu.Unlock()
			if !ok {
				r.fail("%s: the %d bytes it got are not the answers to what it sent", name, len(want))
			}
			return
		}
		cl.mu.Unlock()
		if eof {
			r.fail("%s: end of stream after %d of %d bytes", name, n, len(want))
		}
		select {
		case <-cl.more:
		case <-deadline:
			r.fail("%s: %d of %d bytes in %v", name, n, len(want), patience)
		}
	}
}

// fdOf is the server's descriptor for client name.
func (r *run) fdOf(name string) string {
	for key, who := range r.byFD {
		if who == name {
			_, fd, _ := strings.Cut(key, " ")
			return fd
		}
	}
	r.fail("%s: no descriptor serves it", name)
	return ""
}

// blockedReading waits until one of the stage's threads sits in read(2)
// on the descriptor that serves client name: the proof, without a clock,
// that the stage is waiting for that client and for nobody else.
func (r *run) blockedReading(name string) {
	fd, _ := strconv.Atoi(r.fdOf(name))
	want := fmt.Sprintf("%d %#x ", syscall.SYS_READ, fd)
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", r.cmd.Process.Pid))
		for _, task := range tasks {
			if b, err := os.ReadFile(task); err == nil && strings.HasPrefix(string(b), want) {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	r.fail("no thread blocked in read(%d) for %s", fd, name)
}

// answer is the label of an arrow carrying n answer bytes to client
// name: the ROT13 of the next n bytes it sent.
func (r *run) answer(name string, n int) string {
	cl := r.clients[name]
	if cl == nil {
		return fmt.Sprintf("%d bytes", n)
	}
	b := cl.sent.Next(n)
	out := make([]byte, len(b))
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			c = 'a' + (c-'a'+13)%26
		case c >= 'A' && c <= 'Z':
			c = 'A' + (c-'A'+13)%26
		}
		out[i] = c
	}
	return quote(string(out))
}

// hangUp closes client name's connection.
func (r *run) hangUp(name, to string) {
	r.add(name, to, "close")
	r.clients[name].conn.Close()
}

// stop ends the stage with SIGTERM, and waits for it to exit. What it
// traces from then on is not part of the scenario.
func (r *run) stop() {
	if r.target != 0 {
		syscall.Kill(r.target, syscall.SIGTERM)
	} else {
		r.cmd.Process.Signal(syscall.SIGTERM)
	}
	timeout := time.After(patience)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				if err := <-r.exited; err != nil {
					r.fail("exit: %v", err)
				}
				return
			}
			r.seen = append(r.seen, line)
		case <-timeout:
			r.cmd.Process.Kill()
			r.fail("still running %v after SIGTERM", patience)
		}
	}
}

// freeze stops the stage's process with SIGSTOP and waits until the
// kernel says it has stopped, so that what clients send meanwhile is
// waiting for it, all of it, when thaw lets it run again.
func (r *run) freeze() {
	r.cmd.Process.Signal(syscall.SIGSTOP)
	r.waitState('T')
}

func (r *run) thaw() {
	r.cmd.Process.Signal(syscall.SIGCONT)
}

func (r *run) waitState(want byte) {
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.cmd.Process.Pid))
		if err != nil {
			r.fail("%v", err)
		}
		// The state follows the command's name in parentheses.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == want {
			return
		}
		time.Sleep(time.Millisecond)
	}
	r.fail("process never reached state %c", want)
}

// clientOf names the client that a server process's fd serves.
func (r *run) clientOf(proc, fd string) string {
	if name, ok := r.byFD[proc+" "+fd]; ok {
		return name
	}
	return "fd " + fd
}

// serves says whether proc's fd serves a client.
func (r *run) serves(proc, fd string) bool {
	_, ok := r.byFD[proc+" "+fd]
	return ok
}

// accepted records that proc's fd serves the client at port.
func (r *run) accepted(proc, fd, port string) string {
	p, _ := strconv.Atoi(port)
	name, ok := r.byPort[p]
	if !ok {
		name = "a client"
	}
	r.byFD[proc+" "+fd] = name
	return name
}

// quote writes a line as the picture shows it: its newline as \n.
func quote(s string) string {
	if len(s) > 24 {
		return fmt.Sprintf("%d bytes", len(s))
	}
	return strings.ReplaceAll(s, "\n", `\n`)
}

// build compiles a stage from the repository at root into dir.
func build(root, pkg, dir string) (string, error) {
	bin := filepath.Join(dir, strings.ReplaceAll(pkg, "/", "_"))
	cmd := exec.Command("go", "build", "-o", bin, "./"+pkg)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./%s: %w", pkg, err)
	}
	return bin, nil
}
