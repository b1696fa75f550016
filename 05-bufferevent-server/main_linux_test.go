package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"tinyasync/pkg/stagetest"
)

// These tests run the built server, like the conformance suite (tests/).

func TestMain(m *testing.M) { stagetest.Main(m) }

// TestIdleClientsAreDropped: -idle closes a client that sends nothing for
// that long, through the bufferevent's read timeout; one that keeps
// talking stays.
func TestIdleClientsAreDropped(t *testing.T) {
	s := stagetest.Build(t, "05-bufferevent-server").Start(t, "-idle", "300ms")
	silent := s.Dial(t)
	talker := s.Dial(t)
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		silent.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.ReadAll(silent) // until the server closes it
		closed <- time.Since(start)
	}()
	talker.SetDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 6)
	for time.Since(start) < 700*time.Millisecond {
		_, err := talker.Write([]byte("hello\n"))
		require.NoError(t, err)
		_, err = io.ReadFull(talker, got)
		require.NoError(t, err, "the talking client is served throughout")
		time.Sleep(50 * time.Millisecond) // the pace of a client that talks
	}
	select {
	case after := <-closed:
		assert.GreaterOrEqual(t, after, 300*time.Millisecond, "not before -idle")
		t.Logf("the silent client was closed after %v", after)
	default:
		t.Fatal("the silent client was not closed")
	}
	assert.Len(t, s.Stderr(), 1, "an idle client is ordinary: nothing logged")
}

// TestUsageExplainsTheIdleDefault: the usage says what -idle's default is
// and why a teacher would want it.
func TestUsageExplainsTheIdleDefault(t *testing.T) {
	r := stagetest.Build(t, "05-bufferevent-server").Run(t, 10*time.Second, "-h")
	assert.Equal(t, 0, r.ExitCode)
	usage := string(r.Stderr)
	assert.Contains(t, usage, "-idle")
	assert.Contains(t, usage, "(default 10m0s)")
	assert.True(t, strings.Contains(usage, "student"), "the reason for the default:\n%s", usage)
}
