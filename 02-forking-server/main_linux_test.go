package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"tinyasync/pkg/stagetest"
)

// These tests check the fixes to the book's forking server that the
// conformance suite (tests/) does not see from the contract alone. They run
// the built server as a process, like the suite.

func TestMain(m *testing.M) { stagetest.Main(m) }

// exchange sends line and reads its answer.
func exchange(t *testing.T, c io.ReadWriter, line string) {
	t.Helper()
	_, err := c.Write([]byte(line + "\n"))
	require.NoError(t, err)
	got := make([]byte, len(line)+1)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	want := []byte(line + "\n")
	for i, b := range want {
		switch {
		case b >= 'a' && b <= 'z':
			want[i] = 'a' + (b-'a'+13)%26
		case b >= 'A' && b <= 'Z':
			want[i] = 'A' + (b-'A'+13)%26
		}
	}
	assert.Equal(t, string(want), string(got))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestChildReadsWhatHasArrived: the book's child calls recv once per byte;
// this one reads what has arrived. A 10 KiB line takes a handful of reads,
// not 10241.
func TestChildReadsWhatHasArrived(t *testing.T) {
	s := stagetest.Build(t, "02-forking-server").Start(t, "-trace")
	c := s.Dial(t)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	exchange(t, c, strings.Repeat("abcdefghij", 1024))
	c.Close()
	_, err := s.WaitStderr(ctx(t), func(l string) bool { return strings.HasPrefix(l, "reap child") })
	require.NoError(t, err)
	reads := 0
	for _, l := range s.Stderr() {
		if strings.Contains(l, "] read ") {
			reads++
		}
	}
	assert.Less(t, reads, 20, "reads for 10241 bytes:\n%s", strings.Join(s.Stderr(), "\n"))
	t.Logf("%d reads for a 10241-byte line", reads)
}

// TestForkFailureDropsOnlyThatClient: the book's parent takes a failed
// fork (-1) for its own return and carries on with the connection open.
// Here the client is closed at once, the failure is logged, and the other
// clients, and the next ones, are served.
//
// The fork is made to fail by leaving the parent no descriptor for the
// pipe syscall.ForkExec opens: the limit drops while the parent waits in
// accept, which on Linux has already reserved the descriptor the next
// connection gets.
func TestForkFailureDropsOnlyThatClient(t *testing.T) {
	s := stagetest.Build(t, "02-forking-server").Start(t)
	b := s.Dial(t)
	b.SetDeadline(time.Now().Add(10 * time.Second))
	exchange(t, b, "served before")

	require.NoError(t, s.WaitInSyscall(ctx(t), unix.SYS_ACCEPT4))
	free, err := s.LowestFreeFD()
	require.NoError(t, err)
	limit, err := s.SetFileLimit(uint64(free))
	require.NoError(t, err)

	a := s.Dial(t)
	a.SetDeadline(time.Now().Add(2 * time.Second))
	a.Write([]byte("no child for me\n"))
	n, err := a.Read(make([]byte, 100))
	assert.Zero(t, n, "no answer without a child")
	assert.Error(t, err, "the client is closed (EOF or reset), not left waiting")
	assert.NotContains(t, fmt.Sprint(err), "timeout", "the client is closed, not left waiting")
	_, err = s.WaitStderr(ctx(t), func(l string) bool {
		return strings.Contains(l, "fork:") && strings.Contains(l, "too many open files")
	})
	assert.NoError(t, err, "the failed fork is logged:\n%s", strings.Join(s.Stderr(), "\n"))

	exchange(t, b, "the other client is still served")
	_, err = s.SetFileLimit(limit)
	require.NoError(t, err)
	c := s.Dial(t)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	exchange(t, c, "and the next one")
}

// TestForkFailureUnderAProcessLimit: the machine (or the container) has
// run out of processes, and every fork fails with EAGAIN. Each client
// that comes meanwhile is closed at once rather than left waiting, the
// failure is logged at most once a second however many clients come, the
// client whose child already runs is served on, and once processes come
// free the next client gets a child again.
func TestForkFailureUnderAProcessLimit(t *testing.T) {
	s := stagetest.Build(t, "02-forking-server").Start(t)
	b := s.Dial(t)
	b.SetDeadline(time.Now().Add(20 * time.Second))
	exchange(t, b, "served before")

	lift, err := s.CapProcesses(t)
	if errors.Is(err, stagetest.ErrNoCgroup) {
		t.Skipf("this machine gives no way to cap root's processes: %v", err)
	}
	require.NoError(t, err)
	start := time.Now()
	const clients = 50
	for i := range clients {
		a := s.Dial(t)
		a.SetDeadline(time.Now().Add(2 * time.Second))
		a.Write([]byte("no child for me\n"))
		n, err := a.Read(make([]byte, 100))
		require.Zero(t, n, "client %d: no answer without a child", i)
		require.Error(t, err, "client %d is closed (EOF or reset), not left waiting", i)
		require.NotContains(t, fmt.Sprint(err), "timeout", "client %d is closed, not left waiting", i)
		a.Close()
	}
	elapsed := time.Since(start)
	var logged []string
	for _, l := range s.Stderr() {
		if strings.Contains(l, "fork:") {
			logged = append(logged, l)
		}
	}
	require.NotEmpty(t, logged, "the failed forks are logged:\n%s", strings.Join(s.Stderr(), "\n"))
	assert.Contains(t, logged[0], "resource temporarily unavailable")
	assert.LessOrEqual(t, len(logged), int(elapsed/time.Second)+1, "at most a line a second:\n%s", strings.Join(logged, "\n"))
	t.Logf("%d clients closed in %v with no process to serve them; %d log lines", clients, elapsed.Round(time.Millisecond), len(logged))

	exchange(t, b, "the client whose child runs is still served")
	require.NoError(t, lift())
	c := s.Dial(t)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	exchange(t, c, "and once processes are free, the next one")
}

// TestChildEndsQuietlyWhenClientResets: a client that resets in the middle
// of a line ends its child with exit status 0, never a signal, and nothing
// on stderr without -trace.
func TestChildEndsQuietlyWhenClientResets(t *testing.T) {
	s := stagetest.Build(t, "02-forking-server").Start(t, "-trace")
	c := s.Dial(t)
	c.Write([]byte("half a line"))
	_, err := s.WaitStderr(ctx(t), func(l string) bool { return strings.Contains(l, "] read 11 ") })
	require.NoError(t, err)
	c.SetLinger(0)
	c.Close()
	line, err := s.WaitStderr(ctx(t), func(l string) bool { return strings.HasPrefix(l, "reap child") })
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(line, ": exit status 0"), "%q", line)
	for _, l := range s.Stderr()[1:] {
		assert.False(t, strings.HasPrefix(l, "02-forking-server: "), "only trace lines, no log line: %q", l)
	}
}

// TestChildrenDieWithTheParent: the book's children, and ours on SIGINT or
// SIGTERM, stop with the parent. Here the parent dies of SIGKILL, which it
// cannot catch, and the kernel kills its children (PR_SET_PDEATHSIG).
func TestChildrenDieWithTheParent(t *testing.T) {
	s := stagetest.Build(t, "02-forking-server").Start(t)
	c := s.Dial(t)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	exchange(t, c, "a child serves me")
	pids, err := s.Pids()
	require.NoError(t, err)
	require.Len(t, pids, 2, "the parent and one child")

	require.NoError(t, s.Signal(unix.SIGKILL))
	deadline := time.Now().Add(2 * time.Second)
	for !s.Gone() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polls a condition; orders nothing
	}
	assert.True(t, s.Gone(), "the child outlived its parent")
	_, err = c.Read(make([]byte, 1))
	assert.Error(t, err, "the client's connection is closed")
}

// TestChildrenInheritOnlyTheirSocket: a child gets stdin, stdout, stderr
// and its connection. Not the listening socket (every descriptor this
// program opens is close-on-exec), and not what the parent itself
// inherited without close-on-exec: here, the write end of a pipe.
func TestChildrenInheritOnlyTheirSocket(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	stage := stagetest.Build(t, "02-forking-server")
	stage.ExtraFiles = []*os.File{w, w} // fds 3 and 4: a child's socket replaces the first
	s := stage.Start(t)
	w.Close()
	c := s.Dial(t)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	exchange(t, c, "what do I hold")

	pids, err := s.Pids()
	require.NoError(t, err)
	require.Len(t, pids, 2, "the parent and one child")
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pids[1]) + "/fd")
	require.NoError(t, err)
	for _, fd := range fds {
		link, _ := os.Readlink("/proc/" + strconv.Itoa(pids[1]) + "/fd/" + fd.Name())
		n, _ := strconv.Atoi(fd.Name())
		switch {
		case n <= 2:
		case n == 3:
			assert.True(t, strings.HasPrefix(link, "socket:"), "fd 3 is the connection, not %s", link)
		default:
			assert.False(t, strings.HasPrefix(link, "pipe:") || strings.HasPrefix(link, "socket:"),
				"the child holds fd %d, %s, which is not its own", n, link)
		}
	}
}
