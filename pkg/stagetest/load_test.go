package stagetest

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rot13Server serves the line service from this process, for the load
// generator's tests; broken makes it answer one byte wrong.
func rot13Server(t *testing.T, broken bool) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for n := 0; ; n++ {
					line, err := r.ReadBytes('\n')
					if err != nil {
						return
					}
					for i, b := range line {
						switch {
						case b >= 'a' && b <= 'z':
							line[i] = 'a' + (b-'a'+13)%26
						case b >= 'A' && b <= 'Z':
							line[i] = 'A' + (b-'A'+13)%26
						}
					}
					if broken && n == 100 {
						line[0]++
					}
					c.Write(line)
				}
			}()
		}
	}()
	return l.Addr().String()
}

func TestLoad(t *testing.T) {
	addr := rot13Server(t, false)
	r, err := Load{Addr: addr, Conns: 10, LineSize: 64, InFlight: 4, Lines: 5000}.Run()
	require.NoError(t, err)
	assert.Zero(t, r.Errors)
	assert.GreaterOrEqual(t, r.Lines, int64(5000))
	assert.Equal(t, r.Lines*64, r.Bytes)
	assert.Positive(t, r.P50)
	assert.LessOrEqual(t, r.P50, r.P99)
	assert.LessOrEqual(t, r.P99, r.P999)
	t.Log(r)

	r, err = Load{Addr: addr, Conns: 3, LineSize: 100, InFlight: 1, Duration: 200 * time.Millisecond}.Run()
	require.NoError(t, err)
	assert.Zero(t, r.Errors)
	assert.Positive(t, r.Lines)
}

// A Load leaves its connections quiet, whether it ran for a time or for a
// number of lines: the next Load on them reads no stale answer.
func TestLoadLeavesConnectionsQuiet(t *testing.T) {
	l := Load{Addr: rot13Server(t, false), Conns: 20, LineSize: 64, InFlight: 16}
	conns, err := l.Dial()
	require.NoError(t, err)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for _, run := range []Load{
		{Duration: 100 * time.Millisecond}, {Lines: 1000}, {Lines: 1}, {Duration: 50 * time.Millisecond},
	} {
		run.Conns, run.LineSize, run.InFlight = l.Conns, l.LineSize, l.InFlight
		r := run.RunOn(conns)
		assert.Zero(t, r.Errors, "%+v: %v", run, r)
		assert.GreaterOrEqual(t, r.Lines, max(run.Lines, 1))
	}
}

func TestLoadCatchesAWrongAnswer(t *testing.T) {
	r, err := Load{Addr: rot13Server(t, true), Conns: 1, LineSize: 64, InFlight: 1, Lines: 1000}.Run()
	require.NoError(t, err)
	assert.Equal(t, 1, r.Errors, "one wrong byte in the 101st answer")
	assert.Equal(t, int64(100), r.Lines)
}
