package main

import (
	"bytes"
	"image/color"
	"log"
	"math"
	"os"
	"slices"
	"strings"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// A metric is one chart: one figure of results.txt, ping-pong, against
// the number of connections.
type metric struct {
	file   string
	unit   string // as results.txt names it
	title  string // the figure's title line
	ylabel string // the y axis title, with the unit
	note   string // said under "How to read", if this chart needs it
}

// A family is one panel: the stages one chapter of the book sets side by
// side. The first member is the stage the chapter builds, drawn strongest;
// the others are what it is compared with.
type family struct {
	title   string
	prefix  []string // any stage no family lists whose name starts with one of these joins the panel too
	members []member
}

type member struct {
	stage string // as results.txt names it
	label string // in the panel's key: short, the panel's title says the rest
}

// families are the panels, in the book's order. 06 has a panel of its own,
// with 04 on epoll beside it: the chapter's point is that Go's netpoller is
// that same reactor under goroutines, and the targets compare the two. 07's
// sets both completion servers beside their readiness twins.
var families = []family{
	{"02: a process per connection", []string{"02-"}, []member{
		{"02-forking-server", "fork per client"},
		{"02-forking-server-blocking-loop", "blocking loop"},
	}},
	{"03: select", []string{"03-"}, []member{
		{"03-select-server", "select"},
		{"03-select-server-busy-poll", "busy poll"},
	}},
	{"04: a reactor, on three backends", []string{"04-"}, []member{
		{"04-reactor-server-epoll", "epoll"},
		{"04-reactor-server-poll", "poll"},
		{"04-reactor-server-select", "select"},
	}},
	{"05: bufferevents, and libevent itself", []string{"05-", "libevent"}, []member{
		{"05-bufferevent-server-epoll", "epoll"},
		{"05-bufferevent-server-poll", "poll"},
		{"05-bufferevent-server-select", "select"},
		{"libevent-C", "libevent (C)"},
	}},
	{"06: a goroutine per connection", []string{"06-"}, []member{
		{"06-goroutine-server", "goroutines"},
		{"04-reactor-server-epoll", "04 on epoll"},
	}},
	{"07: completion, on io_uring", []string{"07-"}, []member{
		{"07-completion-server", "07"},
		{"05-bufferevent-server-io_uring", "05 on io_uring"},
		{"04-reactor-server-epoll", "04 on epoll"},
		{"05-bufferevent-server-epoll", "05 on epoll"},
	}},
}

// listed reports whether some family names stage among its members.
func listed(stage string) bool {
	for _, f := range families {
		if f.has(stage) {
			return true
		}
	}
	return false
}

// The look of the charts. One colour carries the lesson: the chapter's own
// stage is a thick solid black line. Its comparisons are thinner, dashed,
// each in one of Okabe and Ito's colours (chosen to stay apart for
// colour-blind readers, and dark enough for a projector), and each with a
// marker of its own, so that they still part in black and white.
var (
	lead = look{
		line:  draw.LineStyle{Color: color.Black, Width: vg.Points(3)},
		glyph: draw.GlyphStyle{Color: color.Black, Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}},
	}
	comparisons = []look{
		{
			line:  draw.LineStyle{Color: rgb(0xD55E00), Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(6), vg.Points(3)}},
			glyph: draw.GlyphStyle{Color: rgb(0xD55E00), Radius: vg.Points(3), Shape: draw.BoxGlyph{}},
		},
		{
			line:  draw.LineStyle{Color: rgb(0x0072B2), Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}},
			glyph: draw.GlyphStyle{Color: rgb(0x0072B2), Radius: vg.Points(3.2), Shape: draw.PyramidGlyph{}},
		},
		{
			line:  draw.LineStyle{Color: rgb(0x009E73), Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(7), vg.Points(2), vg.Points(2), vg.Points(2)}},
			glyph: draw.GlyphStyle{Color: rgb(0x009E73), Radius: vg.Points(3.2), Shape: draw.CrossGlyph{}},
		},
	}
	gridLine = draw.LineStyle{Color: rgb(0xDDDDDD), Width: vg.Points(0.5)}
)

type look struct {
	line  draw.LineStyle
	glyph draw.GlyphStyle
}

func rgb(c uint32) color.Color {
	return color.RGBA{R: uint8(c >> 16), G: uint8(c >> 8), B: uint8(c), A: 0xff}
}

// Text: Liberation Sans, the sans-serif gonum/plot carries, which reads
// better projected than its default serif; 11 points at the least.
var (
	regular = font.Font{Typeface: "Liberation", Variant: "Sans"}
	bold    = font.Font{Typeface: "Liberation", Variant: "Sans", Weight: xfont.WeightBold}
)

func textStyle(f font.Font, size vg.Length) text.Style {
	return text.Style{
		Color:   color.Black,
		Font:    font.From(f, size),
		XAlign:  draw.XLeft,
		YAlign:  draw.YTop,
		Handler: plot.DefaultTextHandler,
	}
}

// The layout, in points. The figure is as wide as a GitHub page shows an
// image without shrinking it, so its text keeps its size there.
const (
	figureWidth = 740
	columns     = 2
	margin      = 12  // around the whole figure
	titleHeight = 30  // the figure's title line
	yTitleWidth = 22  // the y axis title, at the figure's left edge
	gapX        = 22  // between the columns of panels
	gapY        = 14  // between a panel's x axis and the next row's header
	plotHeight  = 200 // a panel's axes and data, under its header
	keyRowH     = 15  // one row of a key
	keySample   = 28  // the length of a key's line sample
)

// A series is one stage in one panel, ready to draw: its runs are the
// stretches of consecutive counts that have a value, so that a count with
// none (not measured, or 0, which a log axis cannot place) leaves a gap
// in the line rather than a line drawn across it as if measured.
type series struct {
	label string
	look  look
	runs  []plotter.XYs
}

// A panel is one family's series, the lead first.
type panel struct {
	title  string
	series []series
}

// chart draws one metric as an SVG of small multiples: one panel per
// family, sharing one y range so that panels compare, and one cell of the
// grid saying how to read them.
func chart(path string, cells map[key]cell, stages []string, m metric) error {
	ns := counts(cells)
	panels := panelsOf(cells, stages, ns, m.unit)
	if len(panels) == 0 {
		log.Printf("%s: no %s figures (was strace missing?): chart left out", path, m.unit)
		return nil
	}
	ylo, yhi := niceRange(valueRange(panels))
	xlo, xhi := float64(ns[0])/1.2, float64(ns[len(ns)-1])*1.2

	rows := (len(panels) + 1 + columns - 1) / columns // +1: the cell saying how to read
	width := vg.Points(figureWidth)
	tileWidth := (width - 2*margin - yTitleWidth - (columns-1)*gapX) / columns
	header := headerHeight(panels, tileWidth)
	height := 2*margin + titleHeight + vg.Length(rows)*(header+plotHeight) + vg.Length(rows-1)*gapY

	svg := vgsvg.New(width, height)
	dc := draw.New(svg)
	dc.SetColor(color.White) // opaque, so that the chart reads on a dark page too
	dc.Fill(dc.Rectangle.Path())
	dc.FillText(textStyle(bold, 15), vg.Point{X: margin, Y: height - margin}, m.title)
	// One y title for the figure, at its left edge: every panel has the
	// same y axis, and a title per panel would be longer than the panel
	// is high (gonum/plot then shrinks the panel to make room for it).
	ytitle := textStyle(regular, 12)
	ytitle.Rotation, ytitle.XAlign = math.Pi/2, draw.XCenter
	dc.FillText(ytitle, vg.Point{X: margin, Y: (height - titleHeight) / 2}, m.ylabel)

	plots := make([][]*plot.Plot, rows)
	for r := range plots {
		plots[r] = make([]*plot.Plot, columns)
	}
	for i, pn := range panels {
		plots[i/columns][i%columns] = pn.plot(xlo, xhi, ylo, yhi, ns)
	}
	grid := draw.Tiles{
		Rows: rows, Cols: columns,
		PadTop: margin + titleHeight + header, PadBottom: margin,
		PadLeft: margin + yTitleWidth, PadRight: margin,
		PadX: gapX, PadY: gapY + header,
	}
	// Align sizes the plots so that their data areas line up, row by row
	// and column by column; the headers go in the padding above the tiles.
	canvases := plot.Align(plots, grid, dc)
	for i := range rows * columns {
		row, col := i/columns, i%columns
		tile := grid.At(dc, col, row)
		switch {
		case i < len(panels):
			plots[row][col].Draw(canvases[row][col])
			panels[i].drawHeader(tile, tile.Max.Y+header)
		case i == len(panels):
			drawHowToRead(tile, tile.Max.Y+header, m.note)
		}
	}

	var buf bytes.Buffer
	if _, err := svg.WriteTo(&buf); err != nil {
		return err
	}
	return os.WriteFile(path, withFallbackFonts(buf.Bytes()), 0o644)
}

// panelsOf gathers each family's series for unit, leaving out the
// families with nothing measured, and says which stages fit no family.
func panelsOf(cells map[key]cell, stages []string, ns []int, unit string) []panel {
	placed := map[string]bool{}
	var panels []panel
	for _, f := range families {
		members := slices.Clone(f.members)
		for _, st := range stages {
			if !listed(st) && hasPrefix(st, f.prefix) {
				members = append(members, member{st, st})
			}
		}
		pn := panel{title: f.title}
		for i, mb := range members {
			placed[mb.stage] = true
			runs := runsOf(cells, mb.stage, ns, unit)
			label := mb.label
			if len(runs) == 0 {
				if !measured(cells, mb.stage, ns, unit) {
					continue
				}
				// Say so, or the class would look for it: 02's
				// blocking loop grew by no page of memory.
				label += " (all 0: not drawn)"
			}
			// By place in the family, not among those drawn, so that a
			// stage looks the same in all three charts.
			lk := lead
			if i > 0 {
				lk = comparisons[(i-1)%len(comparisons)]
			}
			pn.series = append(pn.series, series{label, lk, runs})
		}
		if len(pn.series) > 0 {
			panels = append(panels, pn)
		}
	}
	for _, st := range stages {
		if !placed[st] {
			log.Printf("stage %s belongs to no panel: add it to families in chart.go", st)
		}
	}
	return panels
}

func (f family) has(stage string) bool {
	for _, mb := range f.members {
		if mb.stage == stage {
			return true
		}
	}
	return false
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// runsOf returns a stage's ping-pong values for unit, split where a count
// has no value above zero.
func runsOf(cells map[key]cell, stage string, ns []int, unit string) []plotter.XYs {
	var runs []plotter.XYs
	var run plotter.XYs
	for _, n := range ns {
		if v, ok := value(cells, key{stage, n, "pingpong"}, unit); ok && v > 0 {
			run = append(run, plotter.XY{X: float64(n), Y: v})
			continue
		}
		if len(run) > 0 {
			runs = append(runs, run)
			run = nil
		}
	}
	if len(run) > 0 {
		runs = append(runs, run)
	}
	return runs
}

// measured says whether results.txt has any value of unit for stage.
func measured(cells map[key]cell, stage string, ns []int, unit string) bool {
	for _, n := range ns {
		if _, ok := value(cells, key{stage, n, "pingpong"}, unit); ok {
			return true
		}
	}
	return false
}

// valueRange is the smallest and largest value in any panel: the y range
// every panel shares.
func valueRange(panels []panel) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, pn := range panels {
		for _, s := range pn.series {
			for _, run := range s.runs {
				for _, p := range run {
					lo, hi = math.Min(lo, p.Y), math.Max(hi, p.Y)
				}
			}
		}
	}
	return lo, hi
}

// plot makes the panel's axes and lines; its title and key are drawn
// apart, above it, so that plot.Align lines up the data areas of all
// panels whatever their keys.
func (pn panel) plot(xlo, xhi, ylo, yhi float64, ns []int) *plot.Plot {
	p := plot.New()
	p.BackgroundColor = nil // the figure is white already
	axis(&p.X, "connections (log scale)", countTicks(ns))
	axis(&p.Y, "", logTicks{})
	grid := plotter.NewGrid()
	grid.Vertical, grid.Horizontal = gridLine, gridLine
	p.Add(grid)
	// The comparisons first, the lead last: on top where they cross.
	for i := len(pn.series) - 1; i >= 0; i-- {
		s := pn.series[i]
		for _, run := range s.runs {
			line, err := plotter.NewLine(run)
			if err != nil {
				log.Fatal(err) // only for NaN or infinite values, which runsOf never keeps
			}
			line.LineStyle = s.look.line
			points, _ := plotter.NewScatter(run)
			points.GlyphStyle = s.look.glyph
			p.Add(line, points)
		}
	}
	// Set after Add, which would widen them to the data's own range.
	p.X.Min, p.X.Max = xlo, xhi
	p.Y.Min, p.Y.Max = ylo, yhi
	return p
}

// axis sets up one log axis: its title, its ticks, and text big enough
// to read from the back of a classroom.
func axis(a *plot.Axis, title string, ticks plot.Ticker) {
	a.Scale = plot.LogScale{}
	a.Tick.Marker = ticks
	a.Label.Text = title
	a.Label.TextStyle.Font = font.From(regular, 12)
	a.Tick.Label.Font = font.From(regular, 11)
	a.Tick.Length = vg.Points(4)
	a.Padding = vg.Points(3) // between the axis and the data: room the x ticks need more
}

// headerHeight is the room above every panel for its title and key: the
// same for all, so that the rows line up; enough for the longest key.
func headerHeight(panels []panel, width vg.Length) vg.Length {
	rows := 1
	for _, pn := range panels {
		rows = max(rows, len(pn.keyRows(width)))
	}
	return 22 + vg.Length(rows)*keyRowH + 6
}

// keyRows lays a panel's key out in rows that fit width, entries left to
// right in the panel's order.
func (pn panel) keyRows(width vg.Length) [][]series {
	sty := textStyle(regular, 11)
	var rows [][]series
	var used vg.Length
	for _, s := range pn.series {
		w := keySample + 5 + sty.Width(s.label) + 16
		if len(rows) == 0 || used+w > width {
			rows = append(rows, nil)
			used = 0
		}
		rows[len(rows)-1] = append(rows[len(rows)-1], s)
		used += w
	}
	return rows
}

// drawHeader writes the panel's title and, under it, its key, from top
// down over the width of the panel's tile: each stage's line sample,
// marker and label, outside the data, so that nothing covers a line.
func (pn panel) drawHeader(c draw.Canvas, top vg.Length) {
	c.FillText(textStyle(bold, 13), vg.Point{X: c.Min.X, Y: top}, pn.title)
	sty := textStyle(regular, 11)
	sty.YAlign = draw.YCenter
	y := top - 22 - keyRowH/2
	for _, row := range pn.keyRows(c.Max.X - c.Min.X) {
		x := c.Min.X
		for _, s := range row {
			c.StrokeLine2(s.look.line, x, y, x+keySample, y)
			c.DrawGlyphNoClip(s.look.glyph, vg.Point{X: x + keySample/2, Y: y})
			c.FillText(sty, vg.Point{X: x + keySample + 5, Y: y}, s.label)
			x += keySample + 5 + sty.Width(s.label) + 16
		}
		y -= keyRowH
	}
}

// drawHowToRead fills the grid's spare tile, from top down, with the
// legend of the styles and what the chart leaves out.
func drawHowToRead(c draw.Canvas, top vg.Length, note string) {
	width := c.Max.X - c.Min.X
	c.FillText(textStyle(bold, 13), vg.Point{X: c.Min.X, Y: top}, "How to read")
	y := top - 24
	sample := func(lk look, words string) {
		c.StrokeLine2(lk.line, c.Min.X, y-7, c.Min.X+keySample, y-7)
		c.DrawGlyphNoClip(lk.glyph, vg.Point{X: c.Min.X + keySample/2, Y: y - 7})
		y = paragraph(c, c.Min.X+keySample+8, y, width-keySample-8, words)
		y -= 6
	}
	sample(lead, "the stage the chapter builds")
	sample(comparisons[0], "what the chapter compares it with: thinner, dashed, in colour")
	y -= 4
	for _, words := range []string{
		"One panel per chapter of the book, all on the same axes, so that the panels compare.",
		"Both axes are log scale: equal distances are equal ratios (1 to 10 is as far as 10 to 100).",
		note,
	} {
		y = paragraph(c, c.Min.X, y, width, words) - 6
	}
}

// paragraph writes words from top down, wrapped to width, and returns
// where the next line would go. It wraps short of width by a sixth: a
// reader without Liberation Sans or Arial gets a wider font (DejaVu Sans).
func paragraph(c draw.Canvas, x, top, width vg.Length, words string) vg.Length {
	sty := textStyle(regular, 11)
	line := ""
	for _, w := range strings.Fields(words) {
		if line != "" && sty.Width(line+" "+w) > width*5/6 {
			c.FillText(sty, vg.Point{X: x, Y: top}, line)
			top -= keyRowH
			line = ""
		}
		line = strings.TrimSpace(line + " " + w)
	}
	if line != "" {
		c.FillText(sty, vg.Point{X: x, Y: top}, line)
		top -= keyRowH
	}
	return top
}

// withFallbackFonts lets a reader without Liberation Sans see the chart in
// Arial or Helvetica, which have its very widths (so no label outgrows the
// room measured for it), rather than in the browser's default serif.
func withFallbackFonts(svg []byte) []byte {
	return bytes.ReplaceAll(svg,
		[]byte("font-family:Liberation Sans;"),
		[]byte("font-family:Liberation Sans,Arial,Helvetica,sans-serif;"))
}
