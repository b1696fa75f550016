package main

import (
	"bufio"
	"fmt"
	"regexp"
	"strings"
)

// sequence writes a recorded run as a D2 sequence diagram: a lifeline for
// each client and server process (or thread), in the order given; an
// arrow for each event between two of them, a note for each event on
// one; from top to bottom in the order they happened. A note is one
// line: the notes in a row on one lifeline are drawn as one.
func sequence(header, title string, order []string, events []event) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(header), "\n") {
		fmt.Fprintf(&b, "# %s\n", line)
	}
	fmt.Fprintf(&b, "run: %s {\n", d2string(title))
	b.WriteString("  shape: sequence_diagram\n")
	b.WriteString("  style.font-size: 24\n")
	b.WriteString("  (* -> *)[*].style.font-size: 20\n") // legible when projected
	for _, who := range order {
		fmt.Fprintf(&b, "  %s: %s\n", id(who), d2string(who))
	}
	for i := 0; i < len(events); i++ {
		e := events[i]
		if e.to != "" {
			fmt.Fprintf(&b, "  %s -> %s: %s\n", id(e.from), id(e.to), d2string(e.text))
			continue
		}
		// The notes one lifeline takes in a row are one note, a line
		// each, so that a round of the loop reads as one block.
		lines := []string{e.text}
		for i+1 < len(events) && events[i+1].to == "" && events[i+1].from == e.from {
			i++
			lines = append(lines, events[i].text)
		}
		fmt.Fprintf(&b, "  %s.n%d: %s\n", id(e.from), i, d2string(strings.Join(lines, "\n")))
	}
	b.WriteString("}\n")
	return b.String()
}

// id is a lifeline's key in the D2 source: its name without spaces.
func id(name string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '(' || r == ')' {
			return -1
		}
		return r
	}, name)
}

// d2string quotes a label: a newline in it breaks the line in the
// picture; a backslash is shown as it is.
func d2string(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	s = strings.ReplaceAll(s, "\n", `\n`)
	return `"` + s + `"`
}

func unquote(s string) string {
	s = strings.TrimSuffix(strings.TrimPrefix(s, `"`), `"`)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			if s[i] == 'n' {
				b.WriteByte('\n')
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// String is how a lesson's patterns see an event: "A -> server: Hello\n"
// for an arrow, "server: select: 3 of 4 ready" for a note (the label's
// line breaks as spaces, its newlines as \n).
func (e event) String() string {
	text := strings.ReplaceAll(e.text, "\n", " ")
	if e.to == "" {
		return e.from + ": " + text
	}
	return e.from + " -> " + e.to + ": " + text
}

var (
	declRE  = regexp.MustCompile(`^  (\w+): ("(?:[^"\\]|\\.)*")$`)
	arrowRE = regexp.MustCompile(`^  (\w+) -> (\w+): ("(?:[^"\\]|\\.)*")$`)
	noteRE  = regexp.MustCompile(`^  (\w+)\.n\d+: ("(?:[^"\\]|\\.)*")$`)
)

// parseSequence reads back the events of a picture written by sequence,
// so that a test can check the lesson of the committed picture.
func parseSequence(src string) []event {
	names := map[string]string{}
	var events []event
	sc := bufio.NewScanner(strings.NewReader(src))
	for sc.Scan() {
		line := sc.Text()
		if m := arrowRE.FindStringSubmatch(line); m != nil {
			events = append(events, event{from: names[m[1]], to: names[m[2]], text: unquote(m[3])})
		} else if m := noteRE.FindStringSubmatch(line); m != nil {
			for _, text := range strings.Split(unquote(m[2]), "\n") {
				events = append(events, event{from: names[m[1]], text: text})
			}
		} else if m := declRE.FindStringSubmatch(line); m != nil {
			names[m[1]] = unquote(m[2])
		}
	}
	return events
}

// lessonHolds checks that the events show the lesson: each pattern
// matching an event after the one the previous pattern matched. It
// returns what it could not find, or "".
func lessonHolds(events []event, lesson []string) string {
	i := 0
	for _, pattern := range lesson {
		re := regexp.MustCompile(pattern)
		for i < len(events) && !re.MatchString(events[i].String()) {
			i++
		}
		if i == len(events) {
			return fmt.Sprintf("no event matching %q after the ones before it", pattern)
		}
		i++
	}
	return ""
}
