package run

import (
	"bytes"
	"io"
)

// locked returns a writer that writes to what w returns at the time, one
// write at a time with the run's other output.
func (r *Runner) locked(w func() io.Writer) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		r.outMu.Lock()
		defer r.outMu.Unlock()
		return w().Write(p)
	})
}

// writeTagged writes b with tag before every line.
func writeTagged(w io.Writer, b []byte, tag string) {
	(&tagWriter{w: w, tag: tag}).Write(b)
}

// lineWriter passes on a job's output a whole line at a time.
type lineWriter struct {
	r   *Runner
	w   io.Writer
	tag string
	buf []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
		l.r.outMu.Lock()
		writeTagged(l.w, l.buf[:i+1], l.tag)
		l.r.outMu.Unlock()
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
	}
	return len(p), nil
}

func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		l.r.outMu.Lock()
		writeTagged(l.w, l.buf, l.tag)
		l.r.outMu.Unlock()
		l.buf = nil
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// counter counts the bytes written to it.
type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
