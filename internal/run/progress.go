package run

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/vbauerster/cupwriter"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// progress shows --bar, --eta and --progress on a terminal. A nil progress
// shows nothing: that is what herd run uses when standard error is not a
// terminal, so that logs and pipes stay clean.
type progress struct {
	out    io.Writer // the terminal
	p      *mpb.Progress
	bar    *mpb.Bar
	seen   atomic.Int64 // jobs read so far, while the total is unknown
	failed atomic.Int64
}

// newProgress returns a progress display on w, or nil if w is not a
// terminal.
func newProgress(w io.Writer, cfg *Config) *progress {
	if !IsTerminal(w) {
		return nil
	}
	return newProgressOn(w, cfg)
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newProgressOn(w io.Writer, cfg *Config) *progress {
	pr := &progress{out: w, p: mpb.New(mpb.WithConsoleWriter(sized{cupwriter.New(w, true)}), mpb.WithRefreshRate(150*time.Millisecond))}
	filler := mpb.NopStyle()
	if cfg.Bar {
		filler = mpb.BarStyle()
	}
	left := []decor.Decorator{decor.Name("jobs "), decor.CountersNoUnit("%d/%d ")}
	right := []decor.Decorator{decor.Any(func(decor.Statistics) string {
		if n := pr.failed.Load(); n > 0 {
			return fmt.Sprintf(" %d failed", n)
		}
		return ""
	})}
	if cfg.Bar || cfg.ETA {
		right = append(right, decor.Name(" eta "), decor.AverageETA(decor.ET_STYLE_GO))
	}
	if cfg.Progress || cfg.Bar {
		right = append(right, decor.Name(" elapsed "), decor.Elapsed(decor.ET_STYLE_GO))
	}
	pr.bar = pr.p.New(0, filler, mpb.BarWidth(30), mpb.PrependDecorators(left...), mpb.AppendDecorators(right...), mpb.BarRemoveOnComplete())
	return pr
}

// sized is a terminal that has a size: one that says it has no columns (a
// serial line, some containers) is taken to have 80, as GNU parallel
// takes it, or the display would show nothing.
type sized struct{ *cupwriter.Writer }

func (s sized) GetTermSize() (width, height int, err error) {
	width, height, err = s.Writer.GetTermSize()
	if err != nil || width <= 0 || height <= 0 {
		return 80, 24, nil
	}
	return width, height, nil
}

// Write prints p above the display, so that messages do not garble it; or
// straight out, should the display have failed, so that nothing is lost.
func (pr *progress) Write(p []byte) (int, error) {
	if n, err := pr.p.Write(p); err == nil {
		return n, nil
	}
	return pr.out.Write(p)
}

// read counts a job read from the input, while their number is unknown.
func (pr *progress) read() {
	if pr != nil {
		pr.bar.SetTotal(pr.seen.Add(1), false)
	}
}

// setTotal sets the number of jobs, once it is known.
func (pr *progress) setTotal(n int) {
	if pr != nil {
		pr.seen.Store(int64(n))
		pr.bar.SetTotal(int64(n), false)
	}
}

// add counts a finished job.
func (pr *progress) add(failed bool) {
	if pr == nil {
		return
	}
	if failed {
		pr.failed.Add(1)
	}
	pr.bar.Increment()
}

// finish takes the display off the screen and stops its goroutine.
func (pr *progress) finish() {
	if pr != nil {
		pr.bar.Abort(true)
		pr.p.Wait()
	}
}
