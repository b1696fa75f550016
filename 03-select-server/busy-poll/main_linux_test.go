package main

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"tinyasync/pkg/stagetest"
)

func TestMain(m *testing.M) { stagetest.Main(m) }

// TestTraceCountsEmptyCalls: with -trace, the busy-poller says once a
// second how many of its calls found nothing, the waste the book warns of.
// With one idle client connected, there are many.
func TestTraceCountsEmptyCalls(t *testing.T) {
	s := stagetest.Build(t, "03-select-server/busy-poll").Start(t, "-trace")
	c := s.Dial(t)
	defer c.Close()
	report := regexp.MustCompile(`in the last second, (\d+) recv and (\d+) accept calls found nothing`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	line, err := s.WaitStderr(ctx, func(l string) bool {
		m := report.FindStringSubmatch(l)
		return m != nil && m[1] != "0"
	})
	require.NoError(t, err)
	m := report.FindStringSubmatch(line)
	recvs, _ := strconv.Atoi(m[1])
	accepts, _ := strconv.Atoi(m[2])
	t.Logf("%s", line)
	assert.Greater(t, recvs, 1000, "an idle client is asked for data over and over")
	assert.Greater(t, accepts, 1000, "and the listener for clients")
}
