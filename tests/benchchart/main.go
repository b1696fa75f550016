// Command benchchart turns the output of make bench (go test -bench, in
// the format benchstat reads) into TUTORIAL.md's tables and charts:
//
//	go run . -in ../bench/results.txt -out ../bench
//
// It writes tables.md (one table per metric, rows stages, columns
// connection counts) and three SVG charts, against the number of
// connections, ping-pong: CPU time per line (cpu.svg), memory per idle
// connection (memory.svg) and system calls per line (syscalls.svg).
//
// Each chart is small multiples, drawn to be read at a glance by a class:
// one panel per chapter of the book (02's processes, 03's select, 04's
// reactor on its three backends, 05's bufferevents with libevent's own C
// beside them, and 06's goroutines with 04 on epoll beside them, as the
// chapter compares them), all panels on the same log axes so that they
// compare. In each panel the stage the chapter builds is a thick solid
// black line and what it is compared with thin dashed coloured lines; the
// keys sit above the panels, off the lines, and a spare cell of the grid
// says how to read it all. chart.go draws them, ticks.go labels the axes.
//
// It is a module of its own: its dependency, gonum.org/v1/plot (and the
// fonts and renderers under it), draws charts far better than we would by
// hand, and the ladder itself depends on nothing but x/sys and testify.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// A cell is one benchmark's figures: metric unit -> its values, one per
// run (make bench runs the cells the targets compare several times).
type cell map[string][]float64

// value returns the median of a cell's runs for unit, and whether it has
// any: the median, so that one run disturbed by a noisy neighbour does not
// decide a comparison.
func value(cells map[key]cell, k key, unit string) (float64, bool) {
	vs := slices.Clone(cells[k][unit])
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], true
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, true
}

// key is a cell's place: stage, connections, load.
type key struct {
	stage string
	conns int
	load  string
}

func main() {
	in := flag.String("in", "../bench/results.txt", "the benchmark output to read")
	out := flag.String("out", "../bench", "the `directory` to write tables.md and the charts to")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("benchchart: ")

	cells, stages, err := read(*in)
	if err != nil {
		log.Fatal(err)
	}
	if len(cells) == 0 {
		log.Fatalf("%s: no BenchmarkStages results", *in)
	}
	var md strings.Builder
	for _, m := range []struct{ unit, load, title string }{
		{"cpu-us/line", "pingpong", "Server CPU time per line, µs (ping-pong)"},
		{"cpu-us/line", "pipelined", "Server CPU time per line, µs (16 lines in flight per connection)"},
		{"syscalls/line", "pingpong", "Server system calls per line (ping-pong)"},
		{"rss-B/conn", "pingpong", "Server memory per idle connection, bytes"},
		{"lines/s", "pingpong", "Lines answered per second (ping-pong)"},
		{"p99-us", "pingpong", "99th percentile latency, µs (ping-pong)"},
	} {
		table(&md, cells, stages, m.unit, m.load, m.title)
	}
	targets(&md, cells)
	if err := os.WriteFile(filepath.Join(*out, "tables.md"), []byte(md.String()), 0o644); err != nil {
		log.Fatal(err)
	}
	for _, m := range []metric{
		{
			file: "cpu.svg", unit: "cpu-us/line",
			title:  "Server CPU time per line, ping-pong, as connections grow: lower is better",
			ylabel: "CPU time per line (µs)",
		},
		{
			file: "memory.svg", unit: "rss-B/conn",
			title:  "Server memory per idle connection, as connections grow: lower is better",
			ylabel: "memory per idle connection (bytes)",
			note:   "A gap in a line is a 0: memory grew by less than the resident size shows, which a log axis has no place for.",
		},
		{
			file: "syscalls.svg", unit: "syscalls/line",
			title:  "Server system calls per line, ping-pong, as connections grow: lower is better",
			ylabel: "system calls per line",
		},
	} {
		if err := chart(filepath.Join(*out, m.file), cells, stages, m); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Print(md.String())
}

// read parses lines like
//
//	BenchmarkStages/stage=04-reactor-server-epoll/conns=100/load=pingpong-2  1  3.0e9 ns/op  4.2 cpu-us/line ...
//
// and returns the cells, and the stages in the order they first appear.
func read(path string) (map[key]cell, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	cells := map[key]cell{}
	var stages []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "BenchmarkStages/") {
			continue
		}
		var k key
		for _, part := range strings.Split(fields[0], "/")[1:] {
			name, value, _ := strings.Cut(part, "=")
			switch name {
			case "stage":
				k.stage = value
			case "conns":
				k.conns, _ = strconv.Atoi(value)
			case "load":
				k.load, _, _ = strings.Cut(value, "-") // "pingpong-2": GOMAXPROCS
			}
		}
		c := cells[k]
		if c == nil {
			c = cell{}
			cells[k] = c
		}
		for i := 2; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				c[fields[i+1]] = append(c[fields[i+1]], v)
			}
		}
		if !slices.Contains(stages, k.stage) {
			stages = append(stages, k.stage)
		}
	}
	return cells, stages, sc.Err()
}

// counts returns the connection counts measured, in order.
func counts(cells map[key]cell) []int {
	var ns []int
	for k := range cells {
		if !slices.Contains(ns, k.conns) {
			ns = append(ns, k.conns)
		}
	}
	sort.Ints(ns)
	return ns
}

// table writes one Markdown table: rows stages, columns connections.
func table(w *strings.Builder, cells map[key]cell, stages []string, unit, load, title string) {
	ns := counts(cells)
	fmt.Fprintf(w, "\n%s\n\n| stage |", title)
	for _, n := range ns {
		fmt.Fprintf(w, " %d |", n)
	}
	fmt.Fprintf(w, "\n|---|")
	for range ns {
		fmt.Fprintf(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, st := range stages {
		fmt.Fprintf(w, "| %s |", st)
		for _, n := range ns {
			v, ok := value(cells, key{st, n, load}, unit)
			if !ok {
				fmt.Fprintf(w, " |")
				continue
			}
			fmt.Fprintf(w, " %s |", format(v))
		}
		fmt.Fprintln(w)
	}
}

func format(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// The stages the targets of issues 6 and 16 compare, as the benchmark
// names them.
const (
	stage04      = "04-reactor-server-epoll"
	stage05      = "05-bufferevent-server-epoll"
	stage05Uring = "05-bufferevent-server-io_uring"
	stage06      = "06-goroutine-server"
	stage07      = "07-completion-server"
	libevent     = "libevent-C"
)

// targets writes the comparisons the reactor and completion stages are
// held to, from the medians: CPU per line at 1000 ping-pong connections (04
// against Go's own netpoller in 06, 05 against libevent, 07 against 04, 05
// on io_uring against 05 on epoll), system calls per line there for the
// completion stages, and memory per idle connection at 5000.
func targets(w *strings.Builder, cells map[key]cell) {
	fmt.Fprintf(w, "\nTargets (medians of %s)\n\n| figure | measured | target | met |\n|---|---:|---:|---|\n", runs(cells))
	row := func(figure string, got, target float64, ok bool) {
		if !ok {
			fmt.Fprintf(w, "| %s | not measured | %s | |\n", figure, format(target))
			return
		}
		met := "yes"
		if got > target {
			met = "NO"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", figure, format(got), format(target), met)
	}
	cpu := func(st string) (float64, bool) { return value(cells, key{st, 1000, "pingpong"}, "cpu-us/line") }
	c04, ok04 := cpu(stage04)
	c05, ok05 := cpu(stage05)
	c06, ok06 := cpu(stage06)
	cle, okle := cpu(libevent)
	row("04 CPU µs/line ÷ 06's, 1000 ping-pong", c04/c06, 1, ok04 && ok06)
	row("05 CPU µs/line ÷ libevent's, 1000 ping-pong", c05/cle, 0.75, ok05 && okle)
	c07, ok07 := cpu(stage07)
	c05u, ok05u := cpu(stage05Uring)
	row("07 CPU µs/line ÷ 04's, 1000 ping-pong", c07/c04, 0.85, ok07 && ok04)
	row("05 on io_uring CPU µs/line ÷ 05 on epoll's, 1000 ping-pong", c05u/c05, 0.9, ok05u && ok05)
	for _, st := range []struct{ name, stage string }{{"07", stage07}, {"05 on io_uring", stage05Uring}} {
		v, ok := value(cells, key{st.stage, 1000, "pingpong"}, "syscalls/line")
		row(st.name+" system calls per line, 1000 ping-pong", v, 0.5, ok)
	}
	for _, st := range []struct {
		name, stage string
		target      float64
	}{{"04", stage04, 512}, {"05", stage05, 1024}, {"07", stage07, 1024}, {"05 on io_uring", stage05Uring, 1024}} {
		v, ok := value(cells, key{st.stage, 5000, "pingpong"}, "rss-B/conn")
		row(st.name+" bytes per idle connection, 5000", v, st.target, ok)
	}
}

// runs says how many runs the targets' cells had.
func runs(cells map[key]cell) string {
	n := len(cells[key{stage04, 1000, "pingpong"}]["cpu-us/line"])
	if n == 1 {
		return "1 run"
	}
	return fmt.Sprintf("%d runs", n)
}
