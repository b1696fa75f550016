// Package tests is the conformance suite: every stage of the ladder, run
// as a process, against every rule of ../shared/CONTRACT.md (kept in the
// repository's README as the stage contract).
//
// Two tables drive it, after golang.org/x/net's nettest: stages (below, in
// stages_test.go) and properties, one or more per rule of the contract
// (server_test.go, client_test.go). TestConformance runs every stage
// against every property that applies to it, each as a named subtest with
// its own deadline, each on a fresh process listening on 127.0.0.1:0. A
// stage can be marked to break a property by design (the book's Bad
// Examples): the suite then asserts that it breaks it in the predicted way,
// and prints the figure it measured.
//
// The matrix of results is printed when the suite ends:
//
//	make conformance          # or: cd tests && go test -run Conformance
package tests

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tinyasync/pkg/stagetest"
	"tinyasync/pkg/uring"
)

func TestMain(m *testing.M) {
	code := m.Run()
	results.print(os.Stdout)
	stagetest.Finish(code)
}

// A property is one rule of the contract, checked from outside.
type property struct {
	name    string        // the matrix's column: short, kebab-case
	rule    string        // what the contract says, in a line
	timeout time.Duration // the subtest's deadline
	check   func(c *check)
	only    func(stage) bool // the stages it applies to; nil: every one
}

// limit is how long the property's check may take: its timeout, and for
// the chaos soak the soak's own length on top.
func (p property) limit() time.Duration {
	if p.name == "chaos" {
		return p.timeout + *soakTime
	}
	return p.timeout
}

// propertyFlag picks properties by name, whatever the stage's name holds
// (-run's pattern is cut at each slash, and some stages' names have one):
// make soak runs -property '^chaos$'.
var propertyFlag = regexpFlag("property", "", "run only the properties whose names match this `regexp`")

// stageFlag picks stages by their rows' names, "04-reactor-server (poll)"
// and "02-forking-server/blocking-loop" included.
var stageFlag = regexpFlag("stage", "", "run only the stages whose names match this `regexp`")

func regexpFlag(name, value, usage string) *regexp.Regexp {
	re := regexp.MustCompile(value)
	flag.Func(name, usage, func(s string) error {
		r, err := regexp.Compile(s)
		if err == nil {
			*re = *r
		}
		return err
	})
	return re
}

// stagesFlag points the suite at another copy of the repository: a
// student's, or one with an exercise's bug planted in it. Its stages are
// built from there; the suite and the C reference stay this repository's.
//
//	cd tests && go test -run 'Conformance/03-select-server$' -property fairness -stages ~/my-copy
var stagesFlag = flag.String("stages", "", "build the stages from the repository copy in `dir` instead of this one")

// TestConformance runs every stage against every property that applies.
func TestConformance(t *testing.T) {
	for _, st := range stages {
		if !stageFlag.MatchString(st.id()) {
			continue
		}
		t.Run(st.id(), func(t *testing.T) {
			var built stagetest.Stage
			if st.c {
				built = stagetest.BuildLibevent(t, st.id(), st.dir)
			} else {
				built = stagetest.BuildIn(t, *stagesFlag, st.dir)
			}
			built.Env = st.env
			for _, p := range st.properties() {
				if !propertyFlag.MatchString(p.name) {
					continue
				}
				t.Run(p.name, func(t *testing.T) {
					if st.completion && p.name != "io-uring-refused" {
						if err := uring.Available(); err != nil {
							t.Skip(err) // the reason, in one line: a sandbox, or an older kernel
						}
					}
					run(t, st, built, p)
				})
			}
		})
	}
}

// run checks one property of one stage and records the matrix cell.
func run(t *testing.T, st stage, built stagetest.Stage, p property) {
	timeout := p.limit()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := &check{T: t, ctx: ctx, stage: st, built: built, prop: p}
	// A watchdog, in case a check blocks on something without a deadline:
	// killing the servers and closing the connections unblocks it.
	watchdog := time.AfterFunc(timeout+5*time.Second, func() {
		t.Errorf("%s did not finish within %v", p.name, timeout)
		c.abort()
	})
	defer watchdog.Stop()
	defer c.abort()

	// The cell is recorded however the check ends: a require that fails
	// ends it through runtime.Goexit, and deferred calls still run.
	defer func() {
		kind, designed := st.designed[p.name]
		c.mu.Lock()
		seen := len(c.violations[kind])
		c.mu.Unlock()
		cell, complaint := verdict(designed, seen, t.Failed())
		if complaint != "" {
			t.Errorf("%s is designed to break %q (%s), but %s", st.id(), p.name, kind, complaint)
		}
		results.record(st.id(), p.name, cell, c.figures())
	}()
	t.Logf("rule: %s", p.rule)
	p.check(c)
}

// verdict is a check's cell in the matrix: whether the stage is designed
// to break the property, how many times it broke it in the designed way,
// and whether anything else failed. A designed failure that does not
// happen is a failure too, with a complaint to report.
func verdict(designed bool, seen int, failed bool) (cell, complaint string) {
	switch {
	case failed:
		return cellFail, ""
	case designed && seen == 0:
		return cellFail, "it kept the rule"
	case designed:
		return cellDesigned, ""
	}
	return cellPass, ""
}

// A check is one property being checked against one stage: a testing.T
// with the stage's helpers, a deadline, and a record of what it measured.
type check struct {
	*testing.T
	ctx   context.Context // ends at the property's deadline
	stage stage
	built stagetest.Stage
	prop  property

	// halted is set once the check has ended its clients early (halt):
	// what they report after that is the halt's doing, not the stage's.
	halted atomic.Bool

	mu         sync.Mutex
	servers    []*stagetest.Server
	conns      []net.Conn
	notes      []string
	violations map[string][]string
}

// start starts the stage as a server with args.
func (c *check) start(args ...string) *stagetest.Server {
	c.Helper()
	s := c.built.Start(c.T, args...)
	c.mu.Lock()
	c.servers = append(c.servers, s)
	c.mu.Unlock()
	return s
}

// dial connects to s, with the check's deadline on every read and write.
// It is safe from any goroutine; it reports a failure with Errorf and
// returns nil.
func (c *check) dial(s *stagetest.Server) *net.TCPConn {
	conn, err := s.DialErr()
	if err != nil {
		c.Errorf("dial %s: %v", s.Addr, err)
		return nil
	}
	c.track(conn)
	return conn
}

// track puts the check's deadline on conn and closes it when the check
// ends.
func (c *check) track(conn net.Conn) {
	if d, ok := c.ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	c.mu.Lock()
	c.conns = append(c.conns, conn)
	c.mu.Unlock()
}

// abort closes every connection and kills every server of the check.
func (c *check) abort() {
	c.mu.Lock()
	conns, servers := c.conns, c.servers
	c.conns, c.servers = nil, nil
	c.mu.Unlock()
	for _, conn := range conns {
		conn.Close()
	}
	for _, s := range servers {
		s.Kill()
	}
}

// Errorf reports a failure, unless the check has been halted.
func (c *check) Errorf(format string, args ...any) {
	if c.halted.Load() {
		return
	}
	c.T.Errorf(format, args...)
}

// halt ends the check's clients and servers at once: what they report
// from then on is ignored. A check halts when it has seen what it needed
// (a stall it was looking for) and the rest would only wait for it.
func (c *check) halt() {
	c.halted.Store(true)
	c.abort()
}

// figure records a measured figure for the matrix's notes and the log.
func (c *check) figure(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.Log(msg)
	c.mu.Lock()
	c.notes = append(c.notes, msg)
	c.mu.Unlock()
}

func (c *check) figures() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.notes...)
}

// violation reports that the stage broke the rule, in the way named by
// kind ("stall", "burns-cpu"), with the figure that shows it. For a stage
// designed to break this property in this way, it is the expected outcome
// and is recorded as a figure; for any other, it is a failure.
func (c *check) violation(kind, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if c.stage.designed[c.prop.name] == kind {
		c.figure("as designed, %s: %s", kind, msg)
		c.mu.Lock()
		if c.violations == nil {
			c.violations = map[string][]string{}
		}
		c.violations[kind] = append(c.violations[kind], msg)
		c.mu.Unlock()
		return
	}
	c.Errorf("%s: %s", kind, msg)
}

var seedFlag = flag.Uint64("seed", 0, "the seed of the checks' random data; 0 picks one, which each check prints")

// rand returns a source of random data for the check, seeded by -seed or
// at random, and prints the seed so that a failure can be replayed:
// go test -run 'Conformance/02-forking-server/pipelined' -seed N.
func (c *check) rand() *rand.Rand {
	seed := *seedFlag
	if seed == 0 {
		seed = rand.Uint64()
	}
	c.figure("seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// deadline returns when the check must be done.
func (c *check) deadline() time.Time {
	d, _ := c.ctx.Deadline()
	return d
}

// The matrix: a cell per stage and property.
const (
	cellPass     = "pass"
	cellFail     = "FAIL"
	cellDesigned = "fails as designed"
)

type matrix struct {
	mu    sync.Mutex
	cells map[[2]string]string
	notes map[[2]string][]string
}

var results matrix

func (m *matrix) record(stage, prop, cell string, notes []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cells == nil {
		m.cells, m.notes = map[[2]string]string{}, map[[2]string][]string{}
	}
	m.cells[[2]string{stage, prop}] = cell
	m.notes[[2]string{stage, prop}] = notes
}

// print writes one table for the servers and one for the clients, rows
// stages and columns properties, then the figures measured.
func (m *matrix) print(w *os.File) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.cells) == 0 {
		return
	}
	for _, table := range []struct {
		title  string
		client bool
		props  []property
	}{{"servers", false, serverProperties}, {"clients", true, clientProperties}} {
		var rows []stage
		for _, st := range stages {
			if st.client != table.client {
				continue
			}
			for _, p := range table.props {
				if _, ok := m.cells[[2]string{st.id(), p.name}]; ok {
					rows = append(rows, st)
					break
				}
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nConformance matrix, %s (rows: stages; columns: properties of CONTRACT.md)\n\n", table.title)
		// The columns of the properties that ran: make check's one
		// property is a table of one column.
		var cols []property
		for _, p := range table.props {
			for _, st := range rows {
				if _, ok := m.cells[[2]string{st.id(), p.name}]; ok {
					cols = append(cols, p)
					break
				}
			}
		}
		header := []string{"stage"}
		for _, p := range cols {
			header = append(header, p.name)
		}
		grid := [][]string{header}
		for _, st := range rows {
			row := []string{st.id()}
			for _, p := range cols {
				cell, ok := m.cells[[2]string{st.id(), p.name}]
				if !ok {
					cell = "-"
				}
				row = append(row, cell)
			}
			grid = append(grid, row)
		}
		writeTable(w, grid)
	}
	var keys [][2]string
	for k, notes := range m.notes {
		if len(notes) > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1]
	})
	if len(keys) > 0 {
		fmt.Fprintf(w, "\nFigures measured\n\n")
	}
	for _, k := range keys {
		fmt.Fprintf(w, "  %s %s: %s\n", k[0], k[1], strings.Join(m.notes[k], "; "))
	}
	fmt.Fprintln(w)
}

// writeTable writes grid as a Markdown table with aligned columns.
func writeTable(w *os.File, grid [][]string) {
	widths := make([]int, len(grid[0]))
	for _, row := range grid {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	line := func(row []string) {
		var b strings.Builder
		for i, cell := range row {
			fmt.Fprintf(&b, "| %-*s ", widths[i], cell)
		}
		fmt.Fprintln(w, b.String()+"|")
	}
	line(grid[0])
	sep := make([]string, len(widths))
	for i, n := range widths {
		sep[i] = strings.Repeat("-", n)
	}
	line(sep)
	for _, row := range grid[1:] {
		line(row)
	}
}
