package tests

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"tinyasync/pkg/stagetest"
)

// BenchmarkStages is the measurements behind TUTORIAL.md's last chapter,
// "How efficient is all of this, really?": every server stage, for each
// number of connections it can hold, under two loads: ping-pong (each
// connection sends a 64-byte line and waits for its answer) and pipelined
// (16 lines in flight on each). For each, it reports, in the form benchstat
// reads:
//
//	lines/s        answered, every byte checked
//	cpu-us/line    the server's CPU time (user and system, its whole process
//	               tree, from /proc) per line answered
//	syscalls/line  the server's system calls per line, all threads (strace)
//	rss-B/conn     the server's resident memory per connection, idle, after
//	               one exchange on each (ping-pong cells only)
//	p50-us, p99-us the time from a line's send to its answer
//
//	make bench              # everything, some minutes
//	BENCH_SHORT=1 make bench  # fewer connection counts, shorter runs
//
// The load generator runs on the same machine, sharing its cores with the
// server: the figures compare stages with one another, on one machine.
func BenchmarkStages(b *testing.B) {
	short := os.Getenv("BENCH_SHORT") != ""
	counts := []int{1, 10, 100, 1000, 5000, 10000}
	run := 3 * time.Second
	if short {
		counts, run = []int{1, 100, 1000, 5000}, time.Second
	}
	for _, bs := range benchStages() {
		for _, n := range counts {
			if n > bs.maxConns {
				continue
			}
			for _, load := range []struct {
				name     string
				inFlight int
			}{{"pingpong", 1}, {"pipelined", 16}} {
				name := fmt.Sprintf("stage=%s/conns=%d/load=%s", bs.name, n, load.name)
				b.Run(name, func(b *testing.B) {
					measure(b, bs, n, load.inFlight, run)
				})
			}
		}
	}
}

// A benchStage is a stage as the benchmark runs it.
type benchStage struct {
	name     string // no spaces or slashes: a benchmark name's part
	st       stage
	maxConns int
}

func benchStages() []benchStage {
	var out []benchStage
	for _, st := range stages {
		if st.client {
			continue
		}
		max := 10000
		switch {
		case st.fdSetSize:
			max = 1000 // select: FD_SETSIZE
		case st.dir == "02-forking-server":
			max = 1000 // a process each
		case st.stalls():
			// The blocking loop waits on one client while the others
			// wait on it (the suite's concurrency rule shows it): past
			// one connection it serves whom it happens to reach.
			max = 1
		case st.designed["idle-cpu"] != "":
			max = 1000 // the busy poller: a system call per client per turn
		}
		name := strings.NewReplacer("/", "-", " (", "-", ")", "", " ", "-").Replace(st.id())
		out = append(out, benchStage{name: name, st: st, maxConns: max})
	}
	return out
}

// measure runs one cell: a fresh server, n connections, their idle memory,
// then the load for the time given, then a count of system calls.
func measure(b *testing.B, bs benchStage, n, inFlight int, run time.Duration) {
	var built stagetest.Stage
	if bs.st.c {
		built = stagetest.BuildLibevent(b, bs.st.id(), bs.st.dir)
	} else {
		built = stagetest.Build(b, bs.st.dir)
	}
	built.Env = bs.st.env
	s := built.Start(b)
	base, err := s.Usage()
	if err != nil {
		b.Fatal(err)
	}
	load := stagetest.Load{Addr: s.Addr, Conns: n, LineSize: 64, InFlight: inFlight, Duration: run}
	conns, err := load.Dial()
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err := warm(conns); err != nil {
		b.Fatal(err)
	}
	idle, err := s.Usage()
	if err != nil {
		b.Fatal(err)
	}

	for b.Loop() { // once: make bench runs with -benchtime 1x
		before, err := s.Usage()
		if err != nil {
			b.Fatal(err)
		}
		r := load.RunOn(conns)
		after, err := s.Usage()
		if err != nil {
			b.Fatal(err)
		}
		if r.Errors > 0 || r.Lines == 0 {
			b.Fatalf("%s: %v", bs.name, r)
		}
		b.ReportMetric(r.LinesPerSec(), "lines/s")
		b.ReportMetric(float64((after.CPU-before.CPU).Microseconds())/float64(r.Lines), "cpu-us/line")
		b.ReportMetric(float64(r.P50.Microseconds()), "p50-us")
		b.ReportMetric(float64(r.P99.Microseconds()), "p99-us")
	}
	// After the loop: its start clears the metrics reported before it.
	if inFlight == 1 {
		b.ReportMetric(float64(idle.RSS-base.RSS)/float64(n), "rss-B/conn")
	}

	var counted stagetest.LoadResult
	counts, err := s.CountSyscalls(func() {
		counted = stagetest.Load{Conns: n, LineSize: 64, InFlight: inFlight, Lines: int64(max(2000, 2*n))}.RunOn(conns)
	})
	if err != nil {
		b.Logf("no system call counts: %v", err)
		return
	}
	if counted.Errors > 0 {
		b.Fatalf("%s, counting system calls: %v", bs.name, counted)
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	b.ReportMetric(float64(total)/float64(counted.Lines), "syscalls/line")
}

// warm sends one line on each connection, and reads its answer: every
// connection accepted and served once.
func warm(conns []net.Conn) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	sem := make(chan bool, 100)
	for _, c := range conns {
		wg.Add(1)
		sem <- true
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.SetDeadline(time.Now().Add(time.Minute))
			defer c.SetDeadline(time.Time{})
			if _, err := c.Write([]byte("warm\n")); err != nil {
				errs <- err
				return
			}
			if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
