package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows --bar, --eta and --progress on a terminal. A nil progress
// shows nothing: that is what herd run uses when standard error is not a
// terminal, so that logs and pipes stay clean. Its methods are called with
// the runner's output lock held.
type progress struct {
	bar    *progressbar.ProgressBar
	total  int
	done   int
	failed int
}

// newProgress returns a progress display on w, or nil if w is not a
// terminal.
func newProgress(w io.Writer, o runOptions) *progress {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return newProgressOn(w, o)
}

func newProgressOn(w io.Writer, o runOptions) *progress {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("jobs"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(o.eta || o.bar),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
	}
	if !o.bar {
		opts = append(opts, progressbar.OptionSetWidth(0))
	}
	return &progress{bar: progressbar.NewOptions(-1, opts...), total: -1}
}

func (p *progress) setTotal(n int) {
	if p == nil || p.total == n {
		return
	}
	p.total = n
	p.bar.ChangeMax(n)
}

func (p *progress) add(failed bool) {
	if p == nil {
		return
	}
	p.done++
	if failed {
		p.failed++
		p.bar.Describe(fmt.Sprintf("jobs (%d failed)", p.failed))
	}
	p.bar.Add(1)
}

// clear takes the bar off the screen before other output is written; it
// comes back with the next update.
func (p *progress) clear() {
	if p != nil {
		p.bar.Clear()
	}
}

func (p *progress) finish() {
	if p != nil {
		p.bar.Finish()
	}
}
