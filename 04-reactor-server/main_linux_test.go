package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"regexp"

	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"tinyasync/pkg/stagetest"
)

// These tests and benchmarks run the built server, like the conformance
// suite (tests/), on each backend the environment can choose.

func TestMain(m *testing.M) { stagetest.Main(m) }

// backends are the environments that pick each backend on Linux.
var backends = []struct {
	name string
	env  []string
}{
	{"epoll", nil},
	{"poll", []string{"EVENT_NOEPOLL=1"}},
	{"select", []string{"EVENT_NOEPOLL=1", "EVENT_NOPOLL=1"}},
}

// exchange sends a line on each connection, then reads each answer.
func exchange(t testing.TB, conns []net.Conn, line []byte) {
	for _, c := range conns {
		if _, err := c.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, len(line))
	for _, c := range conns {
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
	}
}

func dial(t testing.TB, s *stagetest.Server, n int) []net.Conn {
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := s.DialErr()
		require.NoError(t, err)
		c.SetDeadline(time.Now().Add(time.Minute))
		conns[i] = c
		t.Cleanup(func() { c.Close() })
	}
	return conns
}

// TestAnswersWithoutChangingInterest: the book adds the write event for
// every line and deletes it once the line is sent, two epoll_ctl calls per
// answer. This server writes from the read callback and asks to watch for
// writability only when a socket is full, so a client's 200 lines cost no
// change at all between its arrival and its departure. With -trace, the
// base narrates every change of interest it asks the backend for.
func TestAnswersWithoutChangingInterest(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			stage := stagetest.Build(t, "04-reactor-server")
			stage.Env = be.env
			s := stage.Start(t, "-trace")
			c := dial(t, s, 1)
			for i := range 200 {
				exchange(t, c, []byte(fmt.Sprintf("line %03d\n", i)))
			}
			c[0].Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := s.WaitStderr(ctx, func(l string) bool { return strings.HasPrefix(l, "close fd") })
			require.NoError(t, err)

			accepted := regexp.MustCompile(`^accept fd=(\d+)`)
			fd := ""
			for _, l := range s.Stderr() {
				if m := accepted.FindStringSubmatch(l); m != nil {
					fd = m[1]
				}
			}
			require.NotEmpty(t, fd)
			var changes []string
			for _, l := range s.Stderr() {
				if strings.Contains(l, ": fd "+fd+": watch for") {
					changes = append(changes, l)
				}
			}
			assert.Equal(t, []string{
				be.name + ": fd " + fd + ": watch for Read, was 0",
				be.name + ": fd " + fd + ": watch for 0, was Read",
			}, changes, "watched for reading on arrival, forgotten on departure, and no change between")
		})
	}
}

// BenchmarkLines measures lines answered per second, and, where strace is
// installed, the system calls the server makes per line (in all its
// threads), on each backend, for one client at a time and for 100 with a
// line each in flight.
//
//	go test -run '^$' -bench Lines ./04-reactor-server
func BenchmarkLines(b *testing.B) {
	line := []byte(strings.Repeat("x", 63) + "\n")
	for _, be := range backends {
		for _, n := range []int{1, 100} {
			b.Run(fmt.Sprintf("%s/conns=%d", be.name, n), func(b *testing.B) {
				stage := stagetest.Build(b, "04-reactor-server")
				stage.Env = be.env
				s := stage.Start(b)
				conns := dial(b, s, n)
				start := time.Now()
				rounds := 0
				for b.Loop() {
					exchange(b, conns, line)
					rounds++
				}
				b.ReportMetric(float64(rounds*n)/time.Since(start).Seconds(), "lines/s")

				const lines = 4000
				counts, err := s.CountSyscalls(func() {
					for range lines / n {
						exchange(b, conns, line)
					}
				})
				if err != nil {
					b.Logf("no system call counts: %v", err)
					return
				}
				per := func(names ...string) float64 {
					sum := 0
					for _, name := range names {
						sum += counts[name]
					}
					return float64(sum) / lines
				}
				all := make([]string, 0, len(counts))
				for name := range counts {
					all = append(all, name)
				}
				b.ReportMetric(per("read"), "reads/line")
				b.ReportMetric(per("write"), "writes/line")
				b.ReportMetric(per("epoll_wait", "epoll_pwait", "poll", "ppoll", "select", "pselect6"), "waits/line")
				b.ReportMetric(per("epoll_ctl"), "ctls/line")
				b.ReportMetric(per(all...), "syscalls/line")
				b.Logf("%d lines: %v", lines, counts)
			})
		}
	}
}
