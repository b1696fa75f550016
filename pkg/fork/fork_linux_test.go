package fork

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestMain is also the child: Child starts this test binary again, which
// finds its connection as descriptor FD, says who it is on it, and ends.
// (No goleak here: Supervise's goroutine runs for as long as the program,
// by design.)
func TestMain(m *testing.M) {
	if InChild() {
		comm, _ := os.ReadFile("/proc/self/comm")
		fmt.Fprintf(os.NewFile(FD, "connection"), "child %d %s args %d", os.Getpid(), bytes.TrimSpace(comm), len(os.Args))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestChildServesItsSocketAndIsReaped(t *testing.T) {
	var trace bytes.Buffer
	require.NoError(t, Supervise(log.New(&trace, "", 0)))
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[1])

	pid, err := Child(fds[0])
	unix.Close(fds[0])
	require.NoError(t, err)
	got, err := io.ReadAll(os.NewFile(uintptr(fds[1]), "parent's end"))
	require.NoError(t, err)
	var childPid, nargs int
	var name string
	_, err = fmt.Sscanf(string(got), "child %d %s args %d", &childPid, &name, &nargs)
	require.NoError(t, err, "the child said %q", got)
	assert.Equal(t, pid, childPid, "the child that answered is the one started")
	want := filepath.Base(os.Args[0])
	assert.Equal(t, want[:min(len(want), 15)], name, "ps shows the child by the program's name, not exe")
	assert.Equal(t, len(os.Args), nargs, "the child sees the parent's arguments, and no more")

	// Reaped: SIGCHLD came, and the supervisor waited for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		children.Lock()
		left := len(children.pids)
		children.Unlock()
		if left == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the child was never reaped")
		time.Sleep(time.Millisecond) // polls a condition; orders nothing
	}
	var ws unix.WaitStatus
	_, err = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	assert.Equal(t, unix.ECHILD, err, "nothing left to wait for: no zombie")
	assert.Contains(t, trace.String(), "reap child "+strconv.Itoa(pid)+": exit status 0")
}
