package tests

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"tinyasync/pkg/stagetest"
	"tinyasync/pkg/uring"
)

// An exercise plants a classic bug in a stage: a patch in exercises/,
// headed by what it changes and the one property of the contract it must
// break on one stage. TestExercises proves that the suite catches each:
// the property passes on the stage as it is, and fails once the patch is
// applied to a copy of the repository.
type exercise struct {
	name     string // the patch's file name, without .patch
	path     string
	title    string // Exercise:
	stage    string // Stage: a row of the matrix, "04-reactor-server (epoll)"
	property string // Property: a column, "idle-cpu"
}

// readExercise reads the header of a patch: "Key: value" lines, up to the
// first empty line. git apply skips everything before the first diff.
func readExercise(path string) (exercise, error) {
	ex := exercise{name: strings.TrimSuffix(filepath.Base(path), ".patch"), path: path}
	f, err := os.Open(path)
	if err != nil {
		return ex, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() && sc.Text() != "" {
		key, value, ok := strings.Cut(sc.Text(), ": ")
		switch {
		case !ok:
			return ex, fmt.Errorf("%s: the header's line %q is not \"Key: value\"", path, sc.Text())
		case key == "Exercise":
			ex.title = value
		case key == "Stage":
			ex.stage = value
		case key == "Property":
			ex.property = value
		}
	}
	if ex.title == "" || ex.stage == "" || ex.property == "" {
		return ex, fmt.Errorf("%s: the header needs Exercise:, Stage: and Property:", path)
	}
	return ex, sc.Err()
}

// exercisesFlag points TestExercises at other patches: a teacher's new
// exercise, or a student's bug to see caught.
var exercisesFlag = flag.String("exercises", "", "apply the patches in `dir` instead of tests/exercises")

func TestExercises(t *testing.T) {
	root, err := stagetest.ModuleRoot()
	require.NoError(t, err)
	dir := filepath.Join(root, "tests", "exercises")
	if *exercisesFlag != "" {
		dir = *exercisesFlag
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.patch"))
	require.NoError(t, err)
	require.NotEmpty(t, paths, "no exercises in %s", dir)
	for _, path := range paths {
		ex, err := readExercise(path)
		require.NoError(t, err)
		t.Run(ex.name, func(t *testing.T) {
			known, completion := false, false
			for _, st := range stages {
				for _, p := range st.properties() {
					if st.id() == ex.stage && p.name == ex.property {
						known, completion = true, st.completion
					}
				}
			}
			require.True(t, known, "%s: no property %q applies to a stage %q", path, ex.property, ex.stage)
			if completion {
				if err := uring.Available(); err != nil {
					t.Skip(err) // as the stage's own rows are
				}
			}

			// Without the patch, the property holds: TestConformance has
			// said so in this run, or a run of its own says so.
			results.mu.Lock()
			cell, checked := results.cells[[2]string{ex.stage, ex.property}]
			results.mu.Unlock()
			if !checked || *stagesFlag != "" {
				cell = runProperty(t, "", ex.stage, ex.property)
			}
			require.Equal(t, cellPass, cell, "%s on %s, without the patch", ex.property, ex.stage)

			// With it, the property fails.
			dir := t.TempDir()
			require.NoError(t, copyRepository(root, dir))
			git, err := exec.LookPath("git")
			require.NoError(t, err, "git applies the exercises' patches (apt-get install git)")
			apply := exec.Command(git, "apply", path)
			apply.Dir = dir
			out, err := apply.CombinedOutput()
			require.NoError(t, err, "the patch does not apply to this repository: update it\n%s", out)
			cell = runProperty(t, dir, ex.stage, ex.property)
			require.Equal(t, cellFail, cell, "%q planted in %s: the suite must catch it in %s", ex.title, ex.stage, ex.property)
		})
	}
}

// runProperty checks one property of one stage in a process of its own,
// this test binary run again with -stage, -property and -stages (root: a
// copy of the repository; "" for this one), and returns the matrix's cell.
// What the check logged goes to t's log.
func runProperty(t *testing.T, root, stage, property string) string {
	t.Helper()
	args := []string{"-test.run=^TestConformance$", "-test.count=1", "-test.v",
		"-stage=^" + regexp.QuoteMeta(stage) + "$", "-property=^" + regexp.QuoteMeta(property) + "$"}
	if root != "" {
		args = append(args, "-stages="+root)
	}
	cmd := exec.Command(os.Args[0], args...)
	out, _ := cmd.CombinedOutput()
	name := "TestConformance/" + strings.ReplaceAll(stage, " ", "_") + "/" + property
	var cell string
	switch {
	case bytes.Contains(out, []byte("--- PASS: "+name+" ")):
		cell = cellPass
	case bytes.Contains(out, []byte("--- FAIL: "+name+" ")):
		cell = cellFail
	default:
		t.Fatalf("%s on %s did not run:\n%s", property, stage, out)
	}
	// The check's own lines: what it measured, and why it failed.
	var said []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "    ") && !strings.Contains(line, "--- ") && !strings.Contains(line, " rule: ") {
			said = append(said, strings.TrimSpace(line))
		}
	}
	where := "this repository"
	if root != "" {
		where = "the patched copy"
	}
	t.Logf("%s on %s, in %s: %s\n\t%s", property, stage, where, cell, strings.Join(said[:min(len(said), 12)], "\n\t"))
	return cell
}

// copyRepository copies what the stages are built from (go.mod, go.sum,
// the stages and pkg/) from root to dir.
func copyRepository(root, dir string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		switch {
		case rel == ".":
			return nil
		case d.IsDir() && (strings.HasPrefix(d.Name(), ".") || rel == "tests" || rel == "bin"):
			return filepath.SkipDir
		case d.IsDir():
			return os.Mkdir(filepath.Join(dir, rel), 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), data, 0o644)
	})
}
