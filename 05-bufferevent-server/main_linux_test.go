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
// that long, through the bufferevent's read timeout, and one that writes
// and never reads, through the write timeout (once its output holds 1 MiB,
// reading is paused, and only the write side still counts), and one that
// trickles a byte every 50 ms and never finishes its line (each byte
// restarts the read timeout: the line's age is what ends it); a client that
// keeps talking stays.
func TestIdleClientsAreDropped(t *testing.T) {
	s := stagetest.Build(t, "05-bufferevent-server").Start(t, "-idle", "300ms")
	start := time.Now()
	silent := s.Dial(t)
	deaf := s.Dial(t)
	talker := s.Dial(t)

	silent.SetReadDeadline(time.Now().Add(20 * time.Second))
	silentClosed := make(chan time.Duration, 1)
	go func() {
		io.ReadAll(silent) // until the server closes it
		silentClosed <- time.Since(start)
	}()
	deafClosed := make(chan time.Duration, 1)
	go func() { // writes lines and never reads, until the server gives up
		deaf.SetWriteDeadline(time.Now().Add(20 * time.Second))
		line := []byte(strings.Repeat("never read ", 93) + "\n")
		for {
			if _, err := deaf.Write(line); err != nil {
				deafClosed <- time.Since(start)
				return
			}
		}
	}()

	trickler := s.Dial(t)
	trickleClosed := make(chan time.Duration, 1)
	go func() { // a byte every 50 ms, a line never finished
		for {
			if _, err := trickler.Write([]byte("x")); err != nil {
				trickleClosed <- time.Since(start)
				return
			}
			if time.Since(start) > 15*time.Second {
				return
			}
			time.Sleep(50 * time.Millisecond) // the pace of a trickle
		}
	}()

	talker.SetDeadline(time.Now().Add(20 * time.Second))
	got := make([]byte, 6)
	for time.Since(start) < time.Second {
		_, err := talker.Write([]byte("hello\n"))
		require.NoError(t, err)
		_, err = io.ReadFull(talker, got)
		require.NoError(t, err, "the talking client is served throughout")
		time.Sleep(50 * time.Millisecond) // the pace of a client that talks
	}
	for name, ch := range map[string]chan time.Duration{"silent": silentClosed, "deaf": deafClosed, "trickling": trickleClosed} {
		select {
		case after := <-ch:
			assert.GreaterOrEqual(t, after, 300*time.Millisecond, "the %s client: not before -idle", name)
			t.Logf("the %s client was closed after %v", name, after)
		case <-time.After(15 * time.Second):
			t.Errorf("the %s client was not closed", name)
		}
	}
	assert.Len(t, s.Stderr(), 1, "idle clients are ordinary: nothing logged")
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
