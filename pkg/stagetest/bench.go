package stagetest

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchLines measures a server stage answering lines: each round sends a
// 64-byte line on each of conns connections, then reads every answer, so
// that conns lines are in flight at once. It reports lines a second and,
// where strace is installed, the system calls the server makes per line,
// in all its threads (counted over 4000 more lines, outside the timing).
func BenchLines(b *testing.B, st Stage, conns int) {
	line := []byte(strings.Repeat("x", 63) + "\n")
	s := st.Start(b)
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := s.DialErr()
		if err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Minute))
		b.Cleanup(func() { c.Close() })
		cs[i] = c
	}
	got := make([]byte, len(line))
	round := func() {
		for _, c := range cs {
			if _, err := c.Write(line); err != nil {
				b.Fatal(err)
			}
		}
		for _, c := range cs {
			if _, err := io.ReadFull(c, got); err != nil {
				b.Fatal(err)
			}
		}
	}
	start := time.Now()
	rounds := 0
	for b.Loop() {
		round()
		rounds++
	}
	b.ReportMetric(float64(rounds*conns)/time.Since(start).Seconds(), "lines/s")

	const lines = 4000
	counts, err := s.CountSyscalls(func() {
		for range lines / conns {
			round()
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
		return float64(sum) / float64(lines/conns*conns)
	}
	all := make([]string, 0, len(counts))
	for name := range counts {
		all = append(all, name)
	}
	b.ReportMetric(per("read", "readv", "recvfrom"), "reads/line")
	b.ReportMetric(per("write", "writev", "sendto"), "writes/line")
	b.ReportMetric(per("epoll_wait", "epoll_pwait", "poll", "ppoll", "select", "pselect6"), "waits/line")
	b.ReportMetric(per("epoll_ctl"), "ctls/line")
	b.ReportMetric(per(all...), "syscalls/line")
	b.Logf("%d lines: %v", lines, counts)
}

// Backends are the environments that pick each of pkg/event's backends on
// Linux, for a reactor stage (04, 05): libevent's variables rule out the
// more efficient ones in turn.
var Backends = []struct {
	Name string
	Env  []string
}{
	{"epoll", nil},
	{"poll", []string{"EVENT_NOEPOLL=1"}},
	{"select", []string{"EVENT_NOEPOLL=1", "EVENT_NOPOLL=1"}},
}

// BenchReactor runs BenchLines for the stage at dir on every backend, for
// one client and for 100 with a line each in flight.
func BenchReactor(b *testing.B, dir string) {
	for _, be := range Backends {
		for _, n := range []int{1, 100} {
			b.Run(be.Name+"/conns="+strconv.Itoa(n), func(b *testing.B) {
				st := Build(b, dir)
				st.Env = be.Env
				BenchLines(b, st, n)
			})
		}
	}
}
