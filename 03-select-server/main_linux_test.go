package main

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"tinyasync/pkg/stagetest"
)

// These tests check fixes to the book's select server that the conformance
// suite (tests/) does not see from the contract alone, on the built server.

func TestMain(m *testing.M) { stagetest.Main(m) }

// TestSelectSurvivesSignals: select never restarts after a signal handler
// runs (signal(7)), and the book's server ends when select fails. Here a
// storm of SIGURG (which Go's runtime uses for itself, and ignores outside
// Go code) hits every thread of the server while a client talks to it.
func TestSelectSurvivesSignals(t *testing.T) {
	s := stagetest.Build(t, "03-select-server").Start(t, "-trace")
	c := s.Dial(t)
	c.SetDeadline(time.Now().Add(20 * time.Second))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stop := make(chan bool)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(s.Pid) + "/task")
			for _, task := range tasks {
				tid, _ := strconv.Atoi(task.Name())
				unix.Tgkill(s.Pid, tid, unix.SIGURG)
			}
			time.Sleep(time.Millisecond) // the storm's pace
		}
	}()
	_, err := s.WaitStderr(ctx, func(l string) bool { return strings.Contains(l, "EINTR") })
	for i := range 50 {
		line := "line " + strconv.Itoa(i) + "\n"
		_, werr := c.Write([]byte(line))
		require.NoError(t, werr)
		got := make([]byte, len(line))
		_, rerr := io.ReadFull(c, got)
		require.NoError(t, rerr, "the server stopped answering after %d lines", i)
	}
	close(stop)
	require.NoError(t, err, "no select was interrupted: the test did not test anything")
	select {
	case <-s.Exited():
		t.Fatal("the server exited")
	default:
	}
}
