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
	fs := g.flags("demo", "[--dir D] [--size BYTES]")
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
	_, err := demo.Run(ctx, demo.Options{Dir: *dir, Scale: synth.ScaleForBytes(*size), Out: g.stdout, Log: g.log})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "\ndemo finished in %.1fs\n", time.Since(start).Seconds())
	return nil
}
