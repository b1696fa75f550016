// Package stagetest runs the ladder's stages as processes and talks to
// them, the way a student does with go run, nc and kill: it is the shared
// harness of the conformance suite in tests/ and of each stage's own tests,
// after gopl.io's memotest and golang.org/x/net's nettest.
//
// Build compiles a stage once per test binary. Start runs a server on
// 127.0.0.1:0 and waits for its "listening on" line; Run runs a program to
// its end. A server runs in a process group of its own, so that the
// harness can measure (Usage) and stop (Kill) everything it started,
// children included, and see that nothing outlives it (Gone).
//
// Stage binaries are built without the race detector even when the tests
// run with -race: 02-forking-server runs a process per client, and 2000
// race-instrumented processes would need some 35 GB of memory. The race
// detector covers the packages in pkg/, which their tests run in-process.
package stagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// A Stage is a built program and the environment to run it in.
type Stage struct {
	Name string   // the stage's directory, "02-forking-server"
	Bin  string   // the built binary
	Env  []string // added to the test's own environment, "EVENT_NOEPOLL=1"

	// Wrap, if set, is a command the program runs under, its path and
	// arguments first: the suite's noiouring, which forbids io_uring.
	Wrap []string

	// ExtraFiles are inherited by the program as descriptors 3 and up,
	// without close-on-exec, as a careless shell or CI runner would leave
	// them.
	ExtraFiles []*os.File
}

var builds struct {
	sync.Mutex
	dir  string
	bins map[string]string
	errs map[string]error
}

// Build compiles the main package in the module directory dir
// ("02-forking-server", "02-forking-server/blocking-loop") and returns it as
// a Stage. Each package is built once per test binary; Main removes the
// binaries when the tests end.
func Build(t testing.TB, dir string) Stage {
	t.Helper()
	return BuildIn(t, "", dir)
}

// BuildIn is Build from another copy of the repository, the module whose
// root is root: a student's, or one with an exercise's bug planted in it.
// An empty root is this repository's.
func BuildIn(t testing.TB, root, dir string) Stage {
	t.Helper()
	bin, err := build(root, dir)
	if err != nil {
		t.Fatalf("build %s: %v", filepath.Join(root, dir), err)
	}
	return Stage{Name: dir, Bin: bin}
}

func build(root, dir string) (string, error) {
	return cached(root, dir, func(root, bin string) error {
		cmd := exec.Command("go", "build", "-o", bin, "./"+dir)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})
}

// cached runs make once per module root, key and test binary, with the
// module root (this repository's when root is empty) and the path of the
// binary to write in the builds' directory, and remembers the binary or
// the error.
func cached(root, key string, make func(root, bin string) error) (string, error) {
	builds.Lock()
	defer builds.Unlock()
	if root == "" {
		r, err := ModuleRoot()
		if err != nil {
			return "", err
		}
		root = r
	}
	id := root + "\x00" + key
	if bin, ok := builds.bins[id]; ok {
		return bin, builds.errs[id]
	}
	if builds.bins == nil {
		builds.bins, builds.errs = map[string]string{}, map[string]error{}
	}
	if builds.dir == "" {
		d, err := os.MkdirTemp("", "stagetest-")
		if err != nil {
			return "", err
		}
		builds.dir = d
	}
	// A directory per build, so that the binary keeps the stage's name
	// (what ps and ss show) whichever copy it came from.
	dir := filepath.Join(builds.dir, strconv.Itoa(len(builds.bins)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, strings.ReplaceAll(key, "/", "_"))
	err := make(root, bin)
	builds.bins[id], builds.errs[id] = bin, err
	return bin, err
}

// BuildLibevent compiles the C program at path (module-relative, as
// "tests/libevent/rot13.c") against the system's libevent, once per test
// binary, and returns it as a Stage named name. It needs a C compiler and
// libevent's development files (Debian: apt-get install gcc libevent-dev).
func BuildLibevent(t testing.TB, name, path string) Stage {
	t.Helper()
	bin, err := buildC(path)
	if err != nil {
		t.Fatalf("build %s: %v", path, err)
	}
	return Stage{Name: name, Bin: bin}
}

func buildC(path string) (string, error) {
	return cached("", path, func(root, bin string) error {
		flags, err := exec.Command("pkg-config", "--cflags", "--libs", "libevent").Output()
		if err != nil {
			return fmt.Errorf("libevent not found by pkg-config (apt-get install pkg-config libevent-dev): %v", err)
		}
		args := append([]string{"-O2", "-Wall", "-o", bin, filepath.Join(root, path)}, strings.Fields(string(flags))...)
		if out, err := exec.Command("cc", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})
}

// Main runs the tests of a package that builds stages, fails them if they
// left a goroutine of the test process running (go.uber.org/goleak: a
// reader of a server's stderr, a client's goroutine), then removes the
// binaries: func TestMain(m *testing.M) { stagetest.Main(m) }.
func Main(m *testing.M) {
	Finish(m.Run())
}

// Finish is the end of Main, for a TestMain that does more: it fails tests
// that passed (code 0) if they left a goroutine running, removes the
// binaries, and exits.
func Finish(code int) {
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	RemoveBuilds()
	os.Exit(code)
}

// RemoveBuilds removes the binaries Build made, for a TestMain that does
// more than Main.
func RemoveBuilds() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	builds.dir, builds.bins, builds.errs = "", nil, nil
}

// ModuleRoot returns the directory that holds go.mod, found upwards from
// the current directory (a test runs in its package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the current directory")
		}
		dir = parent
	}
}

// A Result is how a program that ran to its end ended.
type Result struct {
	Stdout, Stderr []byte
	ExitCode       int  // -1 if a signal ended it
	TimedOut       bool // the program was killed when the timeout passed
}

// StderrLines returns the non-empty lines the program wrote to stderr.
func (r Result) StderrLines() []string {
	return splitLines(r.Stderr)
}

func splitLines(b []byte) []string {
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// Run runs the stage with args to its end, or kills it and everything it
// started once timeout passes.
func (st Stage) Run(t testing.TB, timeout time.Duration, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := st.command(args)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	adoptOrphans()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", st.Name, err)
	}
	pgid := cmd.Process.Pid
	stop := context.AfterFunc(ctx, func() { killGroup(pgid) })
	err := cmd.Wait()
	stop()
	// Whatever it left behind goes too.
	killGroup(pgid)
	for deadline := time.Now().Add(5 * time.Second); !groupGone(pgid) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // polls a condition; orders nothing
	}
	r := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), TimedOut: ctx.Err() != nil}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.ExitCode = ee.ExitCode()
	default:
		t.Fatalf("run %s: %v", st.Name, err)
	}
	return r
}

func (st Stage) command(args []string) *exec.Cmd {
	cmd := exec.Command(st.Bin, args...)
	if len(st.Wrap) > 0 {
		cmd = exec.Command(st.Wrap[0], append(append(st.Wrap[1:len(st.Wrap):len(st.Wrap)], st.Bin), args...)...)
	}
	cmd.Env = append(os.Environ(), st.Env...)
	cmd.ExtraFiles = st.ExtraFiles
	cmd.SysProcAttr = groupAttr()
	return cmd
}
