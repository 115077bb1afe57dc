package run

import (
	"bytes"
	"io"
	"os"
)

// spoolMemory is how much of a job's output is kept in memory before the
// rest goes to a temporary file.
const spoolMemory = 4 << 20

// Spool holds a job's grouped output until it is printed: in memory while
// it is small, then in an unlinked temporary file, so that a job writing
// gigabytes neither exhausts memory nor loses output.
type Spool struct {
	mem  bytes.Buffer
	file *os.File
	err  error // the first error spilling to the file
}

func (s *Spool) Write(p []byte) (int, error) {
	if s.file == nil && s.mem.Len()+len(p) <= spoolMemory {
		return s.mem.Write(p)
	}
	if s.file == nil && s.err == nil {
		f, err := os.CreateTemp("", "herd-output-*")
		if err != nil {
			s.err = err
			return 0, err
		}
		os.Remove(f.Name()) // gone from the directory; it lives while open
		s.file = f
	}
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.file.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// writeTo copies the output to w, each line prefixed with tag.
func (s *Spool) writeTo(w io.Writer, tag string) error {
	tw := &tagWriter{w: w, tag: tag}
	tw.Write(s.mem.Bytes())
	if s.file == nil {
		return s.err
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(tw, s.file); err != nil {
		return err
	}
	return s.err
}

// tagWriter writes to w with tag at the start of every line.
type tagWriter struct {
	w       io.Writer
	tag     string
	midLine bool
}

func (t *tagWriter) Write(p []byte) (int, error) {
	if t.tag == "" || len(p) == 0 {
		return t.w.Write(p)
	}
	n := len(p)
	var out bytes.Buffer
	for len(p) > 0 {
		if !t.midLine {
			out.WriteString(t.tag)
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			out.Write(p)
			t.midLine = true
			break
		}
		out.Write(p[:i+1])
		p = p[i+1:]
		t.midLine = false
	}
	if _, err := t.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return n, nil
}

// reset empties the spool for another attempt of the job.
func (s *Spool) reset() {
	s.mem.Reset()
	s.close()
	s.err = nil
}

// close releases the temporary file, if any.
func (s *Spool) close() {
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
}
