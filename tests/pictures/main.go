// Command pictures draws TUTORIAL.md's pictures: the ideas, from D2
// sources written by hand (ideas/*.d2), and the stages at work, recorded
// from real runs (runs/*.d2), each rendered to an SVG beside its source.
//
//	go run .            # render every source to its SVG
//	go run . -record    # run each scenario again, rewrite its source, render
//	go run . -record -only 05
//
// See README.md for what each picture shows, how a scenario is recorded,
// and why D2.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("pictures: ")
	record := flag.Bool("record", false, "run the scenarios again (building their stages) and rewrite runs/*.d2")
	only := flag.String("only", "", "only the scenarios and sources whose names match this `regexp`")
	root := flag.String("root", "../..", "the repository whose stages are recorded")
	flag.Parse()
	match, err := regexp.Compile(*only)
	if err != nil {
		log.Fatalf("-only: %v", err)
	}
	if *record {
		dir, err := os.MkdirTemp("", "pictures")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
		for _, sc := range scenarios {
			if !match.MatchString(sc.name) {
				continue
			}
			src, _, err := sc.record(*root, dir)
			if err != nil {
				os.RemoveAll(dir)
				log.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("runs", sc.name+".d2"), []byte(src), 0o644); err != nil {
				log.Fatal(err)
			}
			fmt.Printf("recorded runs/%s.d2\n", sc.name)
		}
	}
	sources, _ := filepath.Glob("*/*.d2")
	for _, path := range sources {
		if !match.MatchString(filepath.Base(path)) {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			log.Fatal(err)
		}
		svg, err := render(string(src))
		if err != nil {
			log.Fatalf("%s: %v", path, err)
		}
		out := strings.TrimSuffix(path, ".d2") + ".svg"
		if err := os.WriteFile(out, svg, 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("rendered %s\n", out)
	}
}

// record runs the scenario against a stage built from root, and returns
// its picture's source and its events.
func (sc scenario) record(root, dir string) (src string, events []event, err error) {
	bin, err := build(root, sc.stage, dir)
	if err != nil {
		return "", nil, err
	}
	if sc.strace {
		return sc.recordStrace(bin)
	}
	r, addr, err := start(sc.name, bin, append([]string{"-listen", "127.0.0.1:0", "-trace"}, sc.args...), sc.translate)
	if err != nil {
		return "", nil, err
	}
	defer r.recoverFailure(&err)
	sc.play(r, addr)
	r.stop()
	r.mustShow(r.events, sc.lesson)
	return sc.source(r.order, r.events), r.events, nil
}

// source is the picture's D2: a header saying how it was made, and the
// sequence diagram.
func (sc scenario) source(order []string, events []event) string {
	how := "its -trace lines"
	if sc.strace {
		how = "strace -f of its process"
	}
	header := fmt.Sprintf(`Recorded from a real run of ./%s, from %s,
by tests/pictures (go run . -record -only %s; make pictures renders it).
Do not edit: record it again. The lesson its test checks, in this order:
%s`, sc.stage, how, regexp.QuoteMeta(sc.name), "  "+strings.Join(sc.lesson, "\n  "))
	return sequence(header, sc.title, order, events)
}

// list writes events a line each, for a failure's message.
func list(events []event) string {
	var b strings.Builder
	for _, e := range events {
		b.WriteString("\n  " + e.String())
	}
	return b.String()
}
