package main

import (
	"context"
	"io"
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
// runs (signal(7)), and the book's server ends when select fails. Here
// SIGURG (which Go's runtime uses for itself, and ignores outside Go code)
// hits every thread of the server before each line a client sends, and
// the trace shows select interrupted and called again.
func TestSelectSurvivesSignals(t *testing.T) {
	s := stagetest.Build(t, "03-select-server").Start(t, "-trace")
	c := s.Dial(t)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	interrupted := 0
	for i := range 50 {
		r, err := s.SignalThreads(ctx, unix.SIGURG)
		require.NoError(t, err)
		interrupted += r.Interrupted["pselect6"] + r.Interrupted["select"]
		line := "line " + strconv.Itoa(i) + "\n"
		_, err = c.Write([]byte(line))
		require.NoError(t, err)
		got := make([]byte, len(line))
		_, err = io.ReadFull(c, got)
		require.NoError(t, err, "the server stopped answering after %d lines", i)
	}
	require.Positive(t, interrupted, "no signal landed on the thread in select: the test did not test anything")
	_, err := s.WaitStderr(ctx, func(l string) bool { return strings.Contains(l, "EINTR") })
	require.NoError(t, err, "the trace never showed select interrupted")
	select {
	case <-s.Exited():
		t.Fatal("the server exited")
	default:
	}
}
