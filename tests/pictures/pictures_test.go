package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestRendered keeps every committed SVG true to its source: each D2
// file, rendered now, gives the SVG beside it, byte for byte. A source
// edited without `make pictures` fails here.
func TestRendered(t *testing.T) {
	sources, err := filepath.Glob("*/*.d2")
	if err != nil {
		t.Fatal(err)
	}
	if len(sources) < len(scenarios)+6 {
		t.Fatalf("%d sources; want the %d scenarios and at least 6 ideas", len(sources), len(scenarios))
	}
	for _, path := range sources {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(path, ".d2") + ".svg")
			if err != nil {
				t.Fatalf("%v: make pictures draws it", err)
			}
			got, err := render(string(src))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("%s does not render to the SVG beside it: run make pictures, and commit both", path)
			}
		})
	}
}

// TestScenarios runs each scenario again, against the stage as it is
// now: the run must show its lesson (recording checks that, and fails
// otherwise), and so must the committed picture, read back from its D2.
func TestScenarios(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the recordings read /proc and run strace: Linux only")
	}
	dir := t.TempDir()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			if _, err := exec.LookPath("strace"); sc.strace && err != nil && os.Getenv("TINYASYNC_STRACE") == "" {
				t.Skip("strace is not installed (apt-get install strace); .ci/run installs it and sets TINYASYNC_STRACE")
			}
			src, err := os.ReadFile(filepath.Join("runs", sc.name+".d2"))
			if err != nil {
				t.Fatalf("%v: make pictures records it", err)
			}
			committed := parseSequence(string(src))
			if msg := lessonHolds(committed, sc.lesson); msg != "" {
				t.Errorf("the committed runs/%s.d2 does not show the lesson: %s", sc.name, msg)
			}
			_, events, err := sc.record("../..", dir)
			if err != nil {
				t.Fatal(err)
			}
			// The same lifelines take part, in the run and in the picture;
			// but how many of the Go runtime's threads serve 06's clients
			// is the scheduler's choice, run by run.
			if got, want := lifelines(events), lifelines(committed); !slices.Equal(got, want) {
				t.Errorf("the run's lifelines %q, the picture's %q: record it again (make pictures)", got, want)
			}
		})
	}
}

func lifelines(events []event) []string {
	var names []string
	for _, e := range events {
		for _, n := range []string{e.from, e.to} {
			if n != "" && !strings.HasPrefix(n, "thread ") && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return names
}

// TestLessonCanFail shows that the lesson check sees an order broken:
// the blocking loop's picture with C answered before B spoke (what a
// server that does not stall would show) fails it; and each of its
// patterns matters.
func TestLessonCanFail(t *testing.T) {
	var stall scenario
	for _, sc := range scenarios {
		if sc.name == "02-blocking-loop" {
			stall = sc
		}
	}
	src, err := os.ReadFile("runs/02-blocking-loop.d2")
	if err != nil {
		t.Fatal(err)
	}
	events := parseSequence(string(src))
	if msg := lessonHolds(events, stall.lesson); msg != "" {
		t.Fatalf("the committed picture: %s", msg)
	}
	// Move C's answer to just after C's line: no stall.
	answer := slices.IndexFunc(events, func(e event) bool { return e.from == "server" && e.to == "C" })
	line := slices.IndexFunc(events, func(e event) bool { return e.from == "C" && e.to == "server" && e.text != "connect" })
	if answer < 0 || line < 0 || line > answer {
		t.Fatalf("no line from C before its answer in %v", events)
	}
	moved := slices.Clone(events)
	a := moved[answer]
	moved = slices.Delete(moved, answer, answer+1)
	moved = slices.Insert(moved, line+1, a)
	if msg := lessonHolds(moved, stall.lesson); msg == "" {
		t.Errorf("C answered at once, and the lesson check did not see it:%s", list(moved))
	}
	// Without the events one pattern needs, the check fails too.
	for _, pattern := range stall.lesson {
		without := slices.DeleteFunc(slices.Clone(events), func(e event) bool {
			return lessonHolds([]event{e}, []string{pattern}) == ""
		})
		if msg := lessonHolds(without, stall.lesson); msg == "" {
			t.Errorf("the lesson holds without any event matching %q", pattern)
		}
	}
}
