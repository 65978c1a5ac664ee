package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kluis-nl/kluis/demo"
	"github.com/kluis-nl/kluis/synth"
)

func cmdDemo(ctx context.Context, g *globals, args []string) error {
	fs := g.flagSet("demo", "[--dir D] [--size BYTES]", globalLog)
	dir := fs.String("dir", "", "create everything in `D` (absent or empty; default a new temporary directory)")
	size := fs.Int64("size", 4<<20, "approximate size of each practice database in `bytes`")
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "kluis-demo-")
		if err != nil {
			return err
		}
		*dir = d
	}
	start := time.Now()
	// A bar per long step on a terminal (stderr); the narrative on stdout
	// is plain lines either way.
	var bar *progress
	var barLabel string
	onProgress := func(label string, done, total int64) {
		if label == "" {
			if bar != nil {
				bar.done()
			}
			bar, barLabel = nil, ""
			return
		}
		if label != barLabel {
			if bar != nil {
				bar.done()
			}
			bar, barLabel = newProgress(g, label), label
		}
		bar.update(done, total, "")
	}
	_, err := demo.Run(ctx, demo.Options{Dir: *dir, Scale: synth.ScaleForBytes(*size), Out: g.stdout, Log: g.log, Progress: onProgress})
	if bar != nil {
		bar.done()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "\ndemo finished in %s\n", humanDuration(time.Since(start)))
	fmt.Fprintf(g.stdout, "everything it made (config, keys, both locations, state, evidence export, dossier) is in %s; remove it with: rm -rf %s\n", *dir, *dir)
	return nil
}
