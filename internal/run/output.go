package run

import (
	"bytes"
	"io"
	"sync"
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

// keptLines is -k with --line-buffer, as GNU parallel has it: the lines of
// the oldest job not yet done are printed as they come; the others' wait
// until theirs is the oldest, then come out at once.
type keptLines struct {
	mu   sync.Mutex
	jobs map[int]*keptJob
	seqs []int // the jobs fed and not done, in order: the first is live
}

type keptJob struct {
	out, err       *lineWriter // set when the job starts
	bufOut, bufErr bytes.Buffer
	done           bool
}

// fed notes a job, in the order the jobs are fed.
func (k *keptLines) fed(seq int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.jobs == nil {
		k.jobs = map[int]*keptJob{}
	}
	k.jobs[seq] = &keptJob{}
	k.seqs = append(k.seqs, seq)
}

// writers returns where an attempt of the job writes.
func (k *keptLines) writers(seq int, out, err *lineWriter) (stdout, stderr io.Writer) {
	k.mu.Lock()
	j := k.jobs[seq]
	j.out, j.err = out, err
	k.mu.Unlock()
	write := func(lw *lineWriter, buf *bytes.Buffer) io.Writer {
		return writerFunc(func(p []byte) (int, error) {
			k.mu.Lock()
			defer k.mu.Unlock()
			if k.seqs[0] == seq {
				return lw.Write(p)
			}
			return buf.Write(p)
		})
	}
	return write(out, &j.bufOut), write(err, &j.bufErr)
}

// advance prints what the jobs that became the oldest wrote, and drops the
// oldest while it is done. Called with k.mu held.
func (k *keptLines) advance() {
	for len(k.seqs) > 0 {
		j := k.jobs[k.seqs[0]]
		if j.out != nil {
			j.out.Write(j.bufOut.Bytes())
			j.err.Write(j.bufErr.Bytes())
			j.bufOut.Reset()
			j.bufErr.Reset()
		}
		if !j.done {
			return
		}
		if j.out != nil {
			j.out.flush()
			j.err.flush()
		}
		delete(k.jobs, k.seqs[0])
		k.seqs = k.seqs[1:]
	}
}

// finish notes that a job fed has ended, or will not run.
func (k *keptLines) finish(seq int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if j := k.jobs[seq]; j != nil {
		j.done = true
		k.advance()
	}
}
