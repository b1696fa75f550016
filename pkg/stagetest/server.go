package stagetest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartTimeout is how long Start waits for the "listening on" line.
const StartTimeout = 20 * time.Second

// A Server is a running server stage.
type Server struct {
	Stage
	Addr string // host:port from its "listening on" line
	Pid  int    // the process Start started; its process group has the same id

	cmd    *exec.Cmd
	stderr lines
	exited chan struct{} // closed once the process has exited
	state  *os.ProcessState
}

// Start runs the stage as a server with args and waits until it says it is
// listening. Unless args hold a -listen flag, it listens on 127.0.0.1:0.
// When the test ends, the server and everything it started are killed.
func (st Stage) Start(t testing.TB, args ...string) *Server {
	t.Helper()
	s, err := st.StartErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s
}

// StartErr is Start for callers that are not a test's own goroutine; the
// caller must Kill the server.
func (st Stage) StartErr(args ...string) (*Server, error) {
	hasListen := false
	for _, a := range args {
		if a == "-listen" || strings.HasPrefix(a, "-listen=") || a == "--listen" || strings.HasPrefix(a, "--listen=") {
			hasListen = true
		}
	}
	if !hasListen {
		args = append([]string{"-listen", "127.0.0.1:0"}, args...)
	}
	adoptOrphans()
	s := &Server{Stage: st, cmd: st.command(args), exited: make(chan struct{})}
	s.stderr.init()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = pw
	if err := s.cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %v", st.Name, err)
	}
	pw.Close() // The server and its children hold the write end now.
	s.Pid = s.cmd.Process.Pid
	go s.stderr.readFrom(pr)
	go func() {
		s.cmd.Wait()
		s.state = s.cmd.ProcessState
		close(s.exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	line, err := s.stderr.wait(ctx, s.exited, 0, func(l string) bool { return strings.Contains(l, "listening on ") })
	if err != nil {
		s.Kill()
		return nil, fmt.Errorf("%s %s: no \"listening on\" line: %v; stderr:\n%s",
			st.Name, strings.Join(args, " "), err, strings.Join(s.Stderr(), "\n"))
	}
	fields := strings.Fields(line[strings.Index(line, "listening on ")+len("listening on "):])
	if len(fields) > 0 {
		s.Addr = fields[0]
	}
	if _, _, err := net.SplitHostPort(s.Addr); err != nil {
		s.Kill()
		return nil, fmt.Errorf("%s: listening line %q: %v", st.Name, line, err)
	}
	return s, nil
}

// Port returns the port the server listens on.
func (s *Server) Port() string {
	_, port, _ := net.SplitHostPort(s.Addr)
	return port
}

// Dial connects to the server, failing the test if it cannot.
func (s *Server) Dial(t testing.TB) *net.TCPConn {
	t.Helper()
	c, err := s.DialErr()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// DialErr connects to the server; it is safe to call from any goroutine.
func (s *Server) DialErr() (*net.TCPConn, error) {
	addr := s.Addr
	if host, port, err := net.SplitHostPort(addr); err == nil {
		switch host {
		case "0.0.0.0": // every address: reach it through loopback
			addr = net.JoinHostPort("127.0.0.1", port)
		case "::":
			addr = net.JoinHostPort("::1", port)
		}
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// Stderr returns every line the server and its children wrote to stderr
// so far.
func (s *Server) Stderr() []string {
	return s.stderr.snapshot()
}

// WaitStderr waits until a line for which match is true appears on stderr
// (one already there counts), the server exits, or ctx ends.
func (s *Server) WaitStderr(ctx context.Context, match func(string) bool) (string, error) {
	return s.stderr.wait(ctx, s.exited, 0, match)
}

// WaitStderrFrom is WaitStderr for the lines after the first n: those
// written after a moment the caller noted with len(s.Stderr()).
func (s *Server) WaitStderrFrom(ctx context.Context, n int, match func(string) bool) (string, error) {
	return s.stderr.wait(ctx, s.exited, n, match)
}

// Signal sends sig to the server process (not to its children).
func (s *Server) Signal(sig syscall.Signal) error {
	return syscall.Kill(s.Pid, sig)
}

// Exited is closed once the server process has exited.
func (s *Server) Exited() <-chan struct{} {
	return s.exited
}

// Wait waits up to timeout for the server process to exit, and returns its
// state, or nil if it is still running.
func (s *Server) Wait(timeout time.Duration) *os.ProcessState {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.exited:
	case <-t.C:
	}
	select {
	case <-s.exited:
		return s.state
	default:
		return nil
	}
}

// Kill kills the server and everything in its process group, and waits up
// to 10 s for all of them to be gone. Its children, orphaned, are reaped by
// init, a moment after the server itself.
func (s *Server) Kill() {
	killGroup(s.Pid)
	deadline := time.After(10 * time.Second)
	select {
	case <-s.exited:
	case <-deadline:
		return
	}
	for !s.Gone() {
		select {
		case <-deadline:
			return
		case <-time.After(time.Millisecond): // polls a condition; orders nothing
		}
	}
}

// lines collects a stream's lines and lets goroutines wait for one.
type lines struct {
	mu      sync.Mutex
	all     []string
	eof     bool
	changed chan struct{} // closed and replaced whenever a line arrives
}

func (l *lines) init() {
	l.changed = make(chan struct{})
}

func (l *lines) readFrom(f *os.File) {
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			l.mu.Lock()
			l.all = append(l.all, strings.TrimSuffix(line, "\n"))
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
		if err != nil {
			l.mu.Lock()
			l.eof = true
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
			return
		}
	}
}

func (l *lines) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...)
}

// wait returns the first line after the first from that matches, waiting
// for more lines until the stream ends, exited is closed and the stream
// drained, or ctx ends.
func (l *lines) wait(ctx context.Context, exited <-chan struct{}, from int, match func(string) bool) (string, error) {
	seen := from
	for {
		l.mu.Lock()
		for ; seen < len(l.all); seen++ {
			if match(l.all[seen]) {
				line := l.all[seen]
				l.mu.Unlock()
				return line, nil
			}
		}
		eof, changed := l.eof, l.changed
		l.mu.Unlock()
		if eof {
			return "", fmt.Errorf("stderr ended")
		}
		select {
		case <-changed:
		case <-exited:
			// Its children may still hold stderr open; give the lines
			// already written a moment to arrive, then stop.
			exited = nil
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Second)
			defer cancel()
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}
