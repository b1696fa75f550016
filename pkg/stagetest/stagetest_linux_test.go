package stagetest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"tinyasync/pkg/evutil"
)

// The harness is tested on a stand-in for a stage: this test binary,
// started again with STAGETEST_HELPER set, which acts as a small server.

func TestMain(m *testing.M) {
	switch os.Getenv("STAGETEST_HELPER") {
	case "server":
		helperServer()
	case "tree":
		helperTree()
	case "burner":
		helperBurner()
	case "hoarder":
		helperHoarder()
	case "exit":
		fmt.Print("to stdout")
		fmt.Fprint(os.Stderr, "one\n\ntwo\n")
		os.Exit(3)
	case "silent":
		fmt.Fprintln(os.Stderr, "no listening line, and gone")
		os.Exit(1)
	default:
		Main(m)
	}
}

// helperServer listens where -listen says, starts one child that exits at
// once and is never reaped (a zombie) and one that lives on, and accepts
// and closes connections in a blocking accept.
func helperServer() {
	addr := "127.0.0.1:0"
	for i, a := range os.Args {
		if a == "-listen" && i+1 < len(os.Args) {
			addr = os.Args[i+1]
		}
	}
	fd, err := evutil.Listen(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	zombie := exec.Command("true")
	sleeper := exec.Command("sleep", "60")
	if zombie.Start() != nil || sleeper.Start() != nil {
		os.Exit(1)
	}
	local, _ := evutil.LocalAddr(fd)
	fmt.Fprintf(os.Stderr, "helper: listening on %s\n", local)
	for {
		nfd, _, err := unix.Accept(fd)
		if err == nil {
			fmt.Fprintf(os.Stderr, "accepted fd %d\n", nfd)
			unix.Close(nfd)
		}
	}
}

// burners is how many children the tree helper starts.
const burners = 20

// helperTree starts burners children, each a burner, then serves as the
// server helper does.
func helperTree() {
	for range burners {
		c := exec.Command(os.Args[0])
		c.Env = append(os.Environ(), "STAGETEST_HELPER=burner")
		c.Stderr = os.Stderr
		if c.Start() != nil {
			os.Exit(1)
		}
	}
	helperServer()
}

// helperBurner waits for SIGUSR1, then spends 5 ms of CPU and makes 100
// getppid calls: a little work in each of many processes, as 02's
// children do.
func helperBurner() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	fmt.Fprintf(os.Stderr, "burner %d ready\n", os.Getpid())
	<-c
	// 5 ms of CPU, not of the clock: twenty burners share two cores.
	cpu := func() time.Duration {
		var ru unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for start := cpu(); cpu()-start < 5*time.Millisecond; {
	}
	for range 100 {
		unix.Getppid()
	}
	fmt.Fprintf(os.Stderr, "burner %d burned\n", os.Getpid())
	select {}
}

// helperHoarder listens, accepts one connection, and then only writes to
// it: it never reads what its client sends, nor accepts another.
func helperHoarder() {
	fd, err := evutil.Listen("127.0.0.1:0")
	if err != nil {
		os.Exit(1)
	}
	local, _ := evutil.LocalAddr(fd)
	fmt.Fprintf(os.Stderr, "hoarder: listening on %s\n", local)
	nfd, _, err := unix.Accept(fd)
	if err != nil {
		os.Exit(1)
	}
	chunk := make([]byte, 64<<10)
	for evutil.WriteAll(nfd, chunk) == nil {
	}
	os.Exit(1)
}

func helper(mode string) Stage {
	return Stage{Name: "helper-" + mode, Bin: os.Args[0], Env: []string{"STAGETEST_HELPER=" + mode}}
}

func TestServerMeasuresItsProcessGroup(t *testing.T) {
	s := helper("server").Start(t)
	assert.True(t, strings.HasPrefix(s.Addr, "127.0.0.1:"), s.Addr)
	assert.NotEqual(t, "0", s.Port())

	// The child that exited stays a zombie: the helper never reaps it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var u Usage
	for u.Zombies == 0 && ctx.Err() == nil {
		var err error
		u, err = s.Usage()
		require.NoError(t, err)
	}
	assert.Equal(t, 3, u.Procs, "the helper, its sleeper and its zombie")
	assert.Equal(t, 1, u.Zombies)
	assert.Positive(t, u.RSS)
	assert.GreaterOrEqual(t, u.PeakRSS, u.RSS, "a high-water mark is never below the level")
	assert.Positive(t, u.PSS)
	assert.Less(t, u.PSS, u.PeakRSS+1, "shared pages count in part")
	assert.GreaterOrEqual(t, u.Threads, 3)
	assert.GreaterOrEqual(t, u.FDs, 4+3, "stdio and the listener, and the sleeper's stdio")
	pids, err := s.Pids()
	require.NoError(t, err)
	assert.Len(t, pids, 3)
	assert.Equal(t, s.Pid, pids[0])

	holders, err := s.ListenerHolders()
	require.NoError(t, err)
	assert.Equal(t, []int{s.Pid}, holders, "only the helper holds its listening socket")

	// Blocked in accept, it holds one more descriptor than it shows.
	require.NoError(t, s.WaitInSyscall(ctx, unix.SYS_ACCEPT4))
	free, err := s.LowestFreeFD()
	require.NoError(t, err)
	old, err := s.SetFileLimit(uint64(free + 1))
	require.NoError(t, err)
	var lim unix.Rlimit
	require.NoError(t, unix.Prlimit(s.Pid, unix.RLIMIT_NOFILE, nil, &lim))
	assert.EqualValues(t, free+1, lim.Cur)
	_, err = s.SetFileLimit(old)
	require.NoError(t, err)

	c := s.Dial(t)
	c.Close()
	line, err := s.WaitStderr(ctx, func(l string) bool { return strings.HasPrefix(l, "accepted fd") })
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("accepted fd %d", free), line, "the descriptor accept reserved")
	assert.Contains(t, s.Stderr()[0], "listening on "+s.Addr)

	s.Kill()
	assert.True(t, s.Gone(), "Kill ends the whole group, the sleeper and the zombie included")
	state := s.Wait(0)
	require.NotNil(t, state)
	assert.False(t, state.Exited(), "killed by a signal")
}

func TestRun(t *testing.T) {
	r := helper("exit").Run(t, 10*time.Second)
	assert.Equal(t, 3, r.ExitCode)
	assert.Equal(t, "to stdout", string(r.Stdout))
	assert.Equal(t, []string{"one", "two"}, r.StderrLines())
	assert.False(t, r.TimedOut)

	r = Stage{Name: "sleep", Bin: "/bin/sh"}.Run(t, 100*time.Millisecond, "-c", "sleep 30 & sleep 30")
	assert.True(t, r.TimedOut)
	assert.Equal(t, -1, r.ExitCode, "killed")
}

func TestStartReportsAServerThatNeverListens(t *testing.T) {
	_, err := helper("silent").StartErr()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no listening line, and gone", "the error shows the server's stderr")
}

// TestTreeCPUAndSystemCalls: the CPU time and the system calls of every
// process in the tree count, those of children busy for a few
// milliseconds each (rounded to nothing by /proc/PID/stat's ticks) and
// those of children forked before the count began (which strace -f alone
// would miss).
func TestTreeCPUAndSystemCalls(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil && os.Getenv("TINYASYNC_STRACE") == "" {
		t.Skip("strace is not installed (apt-get install strace); .ci/run installs it and sets TINYASYNC_STRACE")
	}
	s := helper("tree").Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// waitFor waits until n lines of stderr end with suffix.
	waitFor := func(suffix string) {
		for {
			lines, n := s.Stderr(), 0
			for _, l := range lines {
				if strings.HasSuffix(l, suffix) {
					n++
				}
			}
			if n == burners {
				return
			}
			_, err := s.WaitStderrFrom(ctx, len(lines), func(string) bool { return true })
			require.NoError(t, err, "%d of %d burners%s", n, burners, suffix)
		}
	}
	waitFor(" ready")
	pids, err := s.Pids()
	require.NoError(t, err)
	before, err := s.Usage()
	require.NoError(t, err)

	counts, err := s.CountSyscalls(func() {
		for _, pid := range pids[1:] {
			unix.Kill(pid, unix.SIGUSR1) // the burners (the sleeper ignores it)
		}
		waitFor(" burned")
	})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, counts["getppid"], burners*100, "every child's calls counted")

	after, err := s.Usage()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, after.CPU-before.CPU, burners*5*time.Millisecond, "every child's 5 ms counted")
}

// TestQueues: what waits in the kernel, on a connection in each direction
// and in a listening socket's accept queue, as a server that never reads
// and never accepts again leaves it.
func TestQueues(t *testing.T) {
	s := helper("hoarder").Start(t)
	c := s.Dial(t)
	defer c.Close()
	_, err := c.Write(make([]byte, 1000))
	require.NoError(t, err)
	var q Queues
	for deadline := time.Now().Add(10 * time.Second); q.ServerUnsent == 0 || q.ServerUnread < 1000 || q.ClientUnread == 0; {
		q, err = ConnQueues(c)
		require.NoError(t, err)
		require.True(t, time.Now().Before(deadline), "the hoarder's socket never filled: %+v", q)
	}
	assert.Equal(t, 1000, q.ServerUnread, "what the client sent, unread")
	assert.Positive(t, q.ClientUnread, "what the server sent, unread by the client")
	// The kernel answered by sock_diag, and agrees with /proc/net/tcp.
	local, remote := netip.MustParseAddrPort(c.LocalAddr().String()), netip.MustParseAddrPort(c.RemoteAddr().String())
	server, err := diagSocket(remote, local)
	require.NoError(t, err, "sock_diag")
	socks, err := tcpSockets()
	require.NoError(t, err)
	for _, sk := range socks {
		if sk.local == remote && sk.remote == local {
			assert.Equal(t, sk.rxQueue, server.rxQueue, "Recv-Q, by sock_diag and in /proc/net/tcp")
			assert.Equal(t, sk.inode, server.inode, "the same socket")
		}
	}

	for range 2 {
		d := s.Dial(t)
		defer d.Close()
	}
	n, err := s.AcceptQueue()
	require.NoError(t, err)
	assert.Equal(t, 2, n, "two clients connected, and not accepted")

	c.Close()
	_, err = ConnQueues(c)
	assert.Error(t, err, "a closed connection has no queues")
}

// TestSignalThreads: a signal to every thread lands on the one blocked in
// accept, runs the handler of the process that catches it, and is dropped
// by the child that does not (sleep).
func TestSignalThreads(t *testing.T) {
	s := helper("server").Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.WaitInSyscall(ctx, unix.SYS_ACCEPT4))
	r, err := s.SignalThreads(ctx, syscall.SIGURG)
	require.NoError(t, err, "delivered everywhere")
	assert.Equal(t, 2, r.Processes, "the helper and its sleeper (not the zombie)")
	assert.Equal(t, 1, r.Catching, "Go's runtime catches SIGURG; sleep does not")
	assert.Greater(t, r.Threads, 2, "the helper's threads and the sleeper")
	assert.Equal(t, 1, r.Interrupted["accept4"], "the thread blocked in accept4: %v", r.Interrupted)
	select {
	case <-s.Exited():
		t.Fatal("the helper died of SIGURG")
	default:
	}
}

// TestBuildIn builds the same directory from two copies of a module, and
// gets the program of each.
func TestBuildIn(t *testing.T) {
	var roots []string
	for _, word := range []string{"one", "two"} {
		root := t.TempDir()
		require.NoError(t, os.WriteFile(root+"/go.mod", []byte("module copy\n\ngo 1.22\n"), 0o644))
		require.NoError(t, os.Mkdir(root+"/hello", 0o755))
		src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Print(\"" + word + "\") }\n"
		require.NoError(t, os.WriteFile(root+"/hello/main.go", []byte(src), 0o644))
		roots = append(roots, root)
	}
	for i, want := range []string{"one", "two"} {
		st := BuildIn(t, roots[i], "hello")
		assert.Equal(t, "hello", st.Name)
		assert.True(t, strings.HasSuffix(st.Bin, "/hello"), "the binary keeps the program's name: %s", st.Bin)
		r := st.Run(t, 30*time.Second)
		assert.Equal(t, want, string(r.Stdout))
	}
}
