package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"oss.terrastruct.com/d2/d2graph"
	"oss.terrastruct.com/d2/d2layouts/d2dagrelayout"
	"oss.terrastruct.com/d2/d2lib"
	"oss.terrastruct.com/d2/d2renderers/d2svg"
	"oss.terrastruct.com/d2/d2themes/d2themescatalog"
	"oss.terrastruct.com/d2/lib/log"
	"oss.terrastruct.com/d2/lib/textmeasure"
)

// render draws one D2 source as SVG. The same source always gives the
// same bytes: the layout engines are deterministic and the SVG names its
// styles after a hash of the diagram, so a test can compare the committed
// SVG with a fresh rendering byte for byte.
//
// Two themes go into every SVG: a light one, and a dark one that the
// browser picks by itself on a dark page (prefers-color-scheme), so a
// picture reads in GitHub's light and dark views alike.
func render(src string) ([]byte, error) {
	ruler, err := textmeasure.NewRuler()
	if err != nil {
		return nil, err
	}
	pad := int64(80)
	omit := true
	renderOpts := &d2svg.RenderOpts{
		Pad:         &pad,
		ThemeID:     &d2themescatalog.NeutralDefault.ID,
		DarkThemeID: &d2themescatalog.DarkMauve.ID,
		OmitVersion: &omit,
	}
	compileOpts := &d2lib.CompileOptions{
		Ruler: ruler,
		LayoutResolver: func(engine string) (d2graph.LayoutGraph, error) {
			return d2dagrelayout.DefaultLayout, nil
		},
	}
	// D2 logs its progress; a picture's errors come back as err.
	ctx := log.With(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	diagram, _, err := d2lib.Compile(ctx, src, compileOpts, renderOpts)
	if err != nil {
		return nil, fmt.Errorf("d2: %w", err)
	}
	return d2svg.Render(diagram, renderOpts)
}
