package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// Work below these sizes finishes too fast for a progress bar to help.
const (
	progressMinBytes = 64 << 20
	progressMinFiles = 100
)

// envProgress set to "always" shows progress bars whatever standard error
// is (for tests); "never" hides them.
const envProgress = "KMSRING_PROGRESS"

// progress is a one-line bar on standard error, redrawn at most ten times
// a second. A nil *progress draws nothing.
type progress struct {
	w         io.Writer
	label     string
	total     int64
	done      int64
	bytes     bool
	start     time.Time
	lastDrawn time.Time
}

// newProgress returns a bar for work of total units (bytes if bytes is
// true, else files), or nil when standard error is not a terminal or the
// work is small.
func (a *app) newProgress(label string, total int64, bytes bool) *progress {
	min := int64(progressMinFiles)
	if bytes {
		min = progressMinBytes
	}
	switch os.Getenv(envProgress) {
	case "always":
	case "never":
		return nil
	default:
		f, ok := a.stderr.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) || total < min {
			return nil
		}
	}
	return &progress{w: a.stderr, label: label, total: total, bytes: bytes, start: time.Now()}
}

// add records n more units done.
func (p *progress) add(n int64) {
	if p == nil {
		return
	}
	p.done += n
	if now := time.Now(); now.Sub(p.lastDrawn) >= 100*time.Millisecond {
		p.lastDrawn = now
		p.draw()
	}
}

// finish draws the final state and ends the line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.draw()
	fmt.Fprintln(p.w)
}

func (p *progress) draw() {
	const width = 30
	filled := width
	if p.total > 0 {
		filled = int(min(width*p.done/p.total, width))
	}
	count := fmt.Sprintf("%d/%d files", p.done, p.total)
	if p.bytes {
		count = fmt.Sprintf("%s/%s", size(p.done), size(p.total))
	}
	rate := ""
	if el := time.Since(p.start).Seconds(); p.bytes && el > 0 {
		rate = fmt.Sprintf("  %s/s", size(int64(float64(p.done)/el)))
	}
	fmt.Fprintf(p.w, "\r%s [%s%s] %s%s", p.label, strings.Repeat("#", filled), strings.Repeat(".", width-filled), count, rate)
}

// size formats a byte count in binary units.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progressReader counts what is read through it on a progress bar (nil
// for none), and stops with the context's error once it ends: Ctrl-C stops
// a long seal or open, whose output is then removed.
type progressReader struct {
	ctx context.Context
	r   io.Reader
	p   *progress
}

func (r progressReader) Read(b []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.r.Read(b)
	r.p.add(int64(n))
	return n, err
}
