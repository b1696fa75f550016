package tests

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"tinyasync/pkg/stagetest"
)

// TestTutorialExcerpts keeps TUTORIAL.md's code true to the source: every
// Go block in it must start with a comment naming the file it comes from
// (// 02-forking-server/main.go), and its lines must appear in that file,
// in order and unchanged. A line "// ..." (at any indentation) marks lines
// left out.
func TestTutorialExcerpts(t *testing.T) {
	root, err := stagetest.ModuleRoot()
	require.NoError(t, err)
	blocks, err := goBlocks(filepath.Join(root, "TUTORIAL.md"))
	require.NoError(t, err)
	require.NotEmpty(t, blocks, "TUTORIAL.md shows no Go")
	for _, b := range blocks {
		name := fmt.Sprintf("TUTORIAL.md:%d", b.line)
		if !assert.NotEmpty(t, b.lines, name) {
			continue
		}
		src, ok := strings.CutPrefix(b.lines[0], "// ")
		if !assert.True(t, ok && strings.HasSuffix(src, ".go"), "%s: a Go excerpt starts with // path/to/file.go, not %q", name, b.lines[0]) {
			continue
		}
		text, err := os.ReadFile(filepath.Join(root, src))
		if !assert.NoError(t, err, name) {
			continue
		}
		file := strings.Split(string(text), "\n")
		at := 0
		for _, piece := range pieces(b.lines[1:]) {
			i := find(file, piece, at)
			if !assert.True(t, i >= 0, "%s: these lines are not in %s (after line %d), or not in this order:\n%s",
				name, src, at, strings.Join(piece, "\n")) {
				break
			}
			at = i + len(piece)
		}
	}
}

// TestTutorialErrata keeps TUTORIAL.md's errata as long as the code's: each
// file's "Unlike the book:" comments are counted, and the errata must list
// as many entries naming that file.
func TestTutorialErrata(t *testing.T) {
	root, err := stagetest.ModuleRoot()
	require.NoError(t, err)
	inCode := map[string]int{}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		text, err := os.ReadFile(path)
		if n := strings.Count(string(text), "Unlike the book"); n > 0 {
			rel, _ := filepath.Rel(root, path)
			inCode[rel] = n
		}
		return err
	})
	require.NoError(t, err)
	require.NotEmpty(t, inCode)

	tut, err := os.ReadFile(filepath.Join(root, "TUTORIAL.md"))
	require.NoError(t, err)
	_, errata, found := strings.Cut(string(tut), "\n## Appendix C")
	require.True(t, found, "TUTORIAL.md has its errata, Appendix C")
	errata, _, _ = strings.Cut(errata, "\n## ")
	entry := regexp.MustCompile("(?m)^\\| `([^`]+\\.go)`")
	listed := map[string]int{}
	for _, m := range entry.FindAllStringSubmatch(errata, -1) {
		listed[m[1]]++
	}
	assert.Equal(t, inCode, listed, "\"Unlike the book\" comments per file, in the code and in TUTORIAL.md's errata table")
}

type block struct {
	line  int // where the block starts in TUTORIAL.md
	lines []string
}

// goBlocks returns the ```go fenced blocks of a Markdown file.
func goBlocks(path string) ([]block, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var blocks []block
	var cur *block
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(l) == "```go":
			cur = &block{line: n}
		case cur != nil && strings.TrimSpace(l) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, l)
		}
	}
	return blocks, sc.Err()
}

// pieces splits an excerpt at its "// ..." lines.
func pieces(lines []string) [][]string {
	var out [][]string
	var cur []string
	for _, l := range lines {
		if strings.TrimSpace(l) == "// ..." {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, l)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// find returns where piece appears in file as consecutive lines, at or
// after from, or -1.
func find(file, piece []string, from int) int {
	for i := from; i+len(piece) <= len(file); i++ {
		match := true
		for j, l := range piece {
			if file[i+j] != l {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}

// TestTutorialBenchTables keeps TUTORIAL.md's measured tables true to the
// last make bench: what lies between the markers below must be a part of
// tests/bench/tables.md, line for line, and the charts it shows must exist.
func TestTutorialBenchTables(t *testing.T) {
	root, err := stagetest.ModuleRoot()
	require.NoError(t, err)
	tutorial, err := os.ReadFile(filepath.Join(root, "TUTORIAL.md"))
	require.NoError(t, err)
	tables, err := os.ReadFile(filepath.Join(root, "tests/bench/tables.md"))
	require.NoError(t, err, "make bench writes it")
	const begin, end = "<!-- from tests/bench/tables.md", "<!-- end of tables.md -->"
	_, rest, ok := strings.Cut(string(tutorial), begin)
	require.True(t, ok, "TUTORIAL.md shows no tables from make bench")
	_, rest, _ = strings.Cut(rest, "-->\n")
	shown, _, ok := strings.Cut(rest, end)
	require.True(t, ok, "no %q after the tables", end)
	have := strings.Split(string(tables), "\n")
	for _, block := range strings.Split(strings.TrimSpace(shown), "\n\n") {
		lines := strings.Split(block, "\n")
		assert.True(t, find(have, lines, 0) >= 0, "TUTORIAL.md shows lines tables.md does not have (run make bench, then copy them again):\n%s", block)
	}
	for _, svg := range regexp.MustCompile(`\]\((tests/bench/[a-z]+\.svg)\)`).FindAllStringSubmatch(string(tutorial), -1) {
		_, err := os.Stat(filepath.Join(root, svg[1]))
		assert.NoError(t, err, "TUTORIAL.md shows a chart make bench did not draw")
	}
}

// TestTutorialLineCounts keeps the sizes TUTORIAL.md quotes ("`05-.../main.go`
// is 168 lines") true to the files.
func TestTutorialLineCounts(t *testing.T) {
	root, err := stagetest.ModuleRoot()
	require.NoError(t, err)
	tutorial, err := os.ReadFile(filepath.Join(root, "TUTORIAL.md"))
	require.NoError(t, err)
	quoted := regexp.MustCompile("`([A-Za-z0-9_./-]+\\.go)` is (\\d+)\\b").FindAllStringSubmatch(string(tutorial), -1)
	require.NotEmpty(t, quoted, "TUTORIAL.md quotes no file's size")
	for _, q := range quoted {
		text, err := os.ReadFile(filepath.Join(root, q[1]))
		if !assert.NoError(t, err) {
			continue
		}
		lines := strings.Count(string(text), "\n")
		assert.Equal(t, q[2], fmt.Sprint(lines), "TUTORIAL.md says %s is %s lines; it is %d", q[1], q[2], lines)
	}
}

// TestTutorialNamesRealTests keeps the tests TUTORIAL.md cites real: every
// `TestX`, `FuzzX` and `BenchmarkX` it names is defined in a test file of
// the module, and every check it calls a suite's (suite `half-close`,
// suites `sigterm`, `sigint`) is one of this suite's properties.
func TestTutorialNamesRealTests(t *testing.T) {
	root, err := stagetest.ModuleRoot()
	require.NoError(t, err)
	tutorial, err := os.ReadFile(filepath.Join(root, "TUTORIAL.md"))
	require.NoError(t, err)

	defined := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]*)\(`)
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		text, err := os.ReadFile(path)
		for _, m := range decl.FindAllStringSubmatch(string(text), -1) {
			defined[m[1]] = true
		}
		return err
	})
	require.NoError(t, err)
	cited := regexp.MustCompile("`((?:Test|Fuzz|Benchmark)[A-Z][A-Za-z0-9_]*)`").FindAllStringSubmatch(string(tutorial), -1)
	require.NotEmpty(t, cited, "TUTORIAL.md cites no test")
	for _, m := range cited {
		if !defined[m[1]] {
			t.Errorf("TUTORIAL.md cites %s, which no test file defines", m[1])
			defined[m[1]] = true // once is enough
		}
	}

	props := map[string]bool{}
	for _, p := range append(append([]property(nil), serverProperties...), clientProperties...) {
		props[p.name] = true
	}
	suites := regexp.MustCompile("(?i)suites? ((?:`[a-z0-9-]+`(?:,? and |, )?)+)").FindAllStringSubmatch(string(tutorial), -1)
	require.NotEmpty(t, suites, "TUTORIAL.md cites no check of the suite")
	name := regexp.MustCompile("`([a-z0-9-]+)`")
	for _, m := range suites {
		for _, n := range name.FindAllStringSubmatch(m[1], -1) {
			assert.True(t, props[n[1]], "TUTORIAL.md cites suite %q, which is no property of the conformance suite", n[1])
		}
	}
}

// TestTutorialShowsEveryPicture checks that TUTORIAL.md shows every
// picture the repository draws (the recorded scenarios and the ideas in
// tests/pictures, the bench charts in tests/bench), each with a caption:
// an italic line saying what to look at (or follow), right below it; and that every
// picture it shows exists.
func TestTutorialShowsEveryPicture(t *testing.T) {
	text, err := os.ReadFile("../TUTORIAL.md")
	require.NoError(t, err)
	lines := strings.Split(string(text), "\n")
	image := regexp.MustCompile(`^!\[[^\]]+\]\(([^)]+\.svg)\)$`)
	caption := regexp.MustCompile(`^\*(Look at|Follow) `)
	shown := map[string]bool{}
	for i, line := range lines {
		m := image.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		shown[m[1]] = true
		assert.FileExists(t, filepath.Join("..", m[1]), "TUTORIAL.md line %d", i+1)
		if i+2 >= len(lines) || lines[i+1] != "" || !caption.MatchString(lines[i+2]) {
			t.Errorf("TUTORIAL.md line %d: %s has no caption (a blank line, then *Look at ...* or *Follow ...*)", i+1, m[1])
		}
	}
	drawn, err := filepath.Glob("pictures/*/*.svg")
	require.NoError(t, err)
	charts, err := filepath.Glob("bench/*.svg")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(drawn), 13, "the pictures: 7 recorded scenarios and 6 ideas at least")
	for _, svg := range append(drawn, charts...) {
		assert.True(t, shown["tests/"+svg], "TUTORIAL.md does not show tests/%s", svg)
	}
}

// tutorialParts splits TUTORIAL.md at its first "## Appendix" heading:
// Part I, the walkthrough a class does, and Part II, the appendices.
func tutorialParts(t *testing.T) (partI, partII string) {
	text, err := os.ReadFile("../TUTORIAL.md")
	require.NoError(t, err)
	i := strings.Index(string(text), "\n## Appendix")
	require.GreaterOrEqual(t, i, 0, "TUTORIAL.md has no heading \"## Appendix ...\"")
	return string(text[:i+1]), string(text[i+1:])
}

// sections returns the "## " sections of a Markdown text: heading -> body.
func sections(text string) (headings []string, body map[string]string) {
	body = map[string]string{}
	var cur string
	for _, line := range strings.Split(text, "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			cur = h
			headings = append(headings, h)
			continue
		}
		if cur != "" {
			body[cur] += line + "\n"
		}
	}
	return headings, body
}

// anchor is GitHub's link target for a heading.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestTutorialPartI holds the walkthrough to what a class can finish: at
// most 8,000 words before the appendices (9,000 once it has 07's section,
// which alone stays within 1,000), a table of contents that links every
// section, and for each rung of the ladder (01 to 07 and the two Bad
// Examples) its Try it, its Exercises and What you learned; a page for
// teachers at its end; the appendices after it.
func TestTutorialPartI(t *testing.T) {
	partI, partII := tutorialParts(t)
	headings, body := sections(partI)
	limit := 8000
	for _, h := range headings {
		if strings.HasPrefix(h, "07") {
			limit = 9000
			words := len(strings.Fields("## " + h + "\n" + body[h]))
			assert.LessOrEqual(t, words, 1000, "the section %q has %d words", h, words)
			t.Logf("%s: %d words", h, words)
		}
	}
	words := len(strings.Fields(partI))
	assert.LessOrEqual(t, words, limit, "Part I (up to the first \"## Appendix\") has %d words", words)
	t.Logf("Part I: %d words", words)

	appendices, _ := sections(partII)
	var rungs []string
	for _, h := range headings {
		if h[0] >= '0' && h[0] <= '9' || strings.HasPrefix(h, "Bad Example") {
			rungs = append(rungs, h)
		}
	}
	assert.Len(t, rungs, 9, "the rungs: 01 to 07 and the two Bad Examples; found %q", rungs)
	for _, h := range rungs {
		for _, sub := range []string{"### Try it", "### Exercises", "### What you learned"} {
			assert.Contains(t, body[h], "\n"+sub+"\n", "%q has no %q", h, sub)
		}
		assert.Contains(t, body[h], "\n#### ", "%q: its exercises, one #### heading each", h)
	}
	require.NotEmpty(t, headings)
	assert.Equal(t, "For teachers", headings[len(headings)-1], "Part I ends with the page for teachers")
	for _, want := range []string{"A", "B", "C", "D", "E", "F"} {
		found := false
		for _, h := range appendices {
			found = found || strings.HasPrefix(h, "Appendix "+want+":")
		}
		assert.True(t, found, "no \"## Appendix %s: ...\"", want)
	}
	// The contents: a link to every section, before the first of them.
	first := strings.Index(partI, "\n## ")
	require.GreaterOrEqual(t, first, 0)
	contents := partI[:first]
	if len(headings) > 0 && strings.EqualFold(headings[0], "Contents") {
		contents = body[headings[0]]
		headings = headings[1:]
	}
	for _, h := range append(headings, appendices...) {
		assert.Contains(t, contents, "(#"+anchor(h)+")", "the contents do not link %q", h)
	}
}

// TestTutorialExercises: every exercise in the walkthrough names its patch
// in tests/exercises (which TestExercises proves the suite catches), every
// patch there is an exercise, and each has its answer in an appendix.
func TestTutorialExercises(t *testing.T) {
	partI, partII := tutorialParts(t)
	patches, err := filepath.Glob("exercises/*.patch")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(patches), 12, "at least 12 exercises")
	named := regexp.MustCompile(`tests/exercises/([a-z0-9-]+)\.patch`)
	inPartI := map[string]bool{}
	for _, m := range named.FindAllStringSubmatch(partI, -1) {
		inPartI[m[1]] = true
		assert.FileExists(t, filepath.Join("exercises", m[1]+".patch"), "TUTORIAL.md names it")
	}
	for _, p := range patches {
		name := strings.TrimSuffix(filepath.Base(p), ".patch")
		assert.True(t, inPartI[name], "exercise %s is not in the walkthrough", name)
		assert.Contains(t, partII, name, "exercise %s has no answer in the appendices", name)
	}
}

// TestTutorialCommandsWork checks the forms a student found broken: pgrep
// -f matches go run as well as the program (use bin/NAME.pid, which make
// run writes); and the book's buffer_used = 1 sends no wrong byte.
func TestTutorialCommandsWork(t *testing.T) {
	text, err := os.ReadFile("../TUTORIAL.md")
	require.NoError(t, err)
	for i, line := range strings.Split(string(text), "\n") {
		if strings.Contains(line, "pgrep -f") {
			t.Errorf("TUTORIAL.md line %d: pgrep -f: %s", i+1, line)
		}
		if strings.Contains(strings.ToLower(line), "stray byte") {
			t.Errorf("TUTORIAL.md line %d: a stray byte: %s", i+1, line)
		}
	}
}
