package run

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"iter"
	"os"
)

// pipeJobs cuts standard input, or with --pipepart each file, into blocks
// of whole records, one job a block, each after the header's lines with
// --header.
func (cfg *Config) pipeJobs(stdin io.Reader) iter.Seq2[Job, error] {
	p := cfg.Pipe
	return func(yield func(Job, error) bool) {
		seq := 0
		each := func(r io.Reader, name string, size int64, after bool) bool {
			var header []byte
			if p.Header > 0 {
				br := bufio.NewReader(r) // the blocks follow what it read ahead
				var err error
				if header, err = headerLines(br, p.Header); err != nil {
					return yield(Job{}, fmt.Errorf("reading %s: %w", name, err))
				}
				r = br
			}
			p := p
			if p.GroupName != "" {
				var err error
				if p, err = p.groupNamed(header); err != nil {
					return yield(Job{}, err)
				}
			}
			for block, err := range blocks(r, size, after, p) {
				if err != nil {
					return yield(Job{}, fmt.Errorf("reading %s: %w", name, err))
				}
				seq++
				if len(header) > 0 {
					block = append(header[:len(header):len(header)], block...)
				}
				var args []string
				if cfg.Pass != "" {
					args = []string{PathText} // {} is the file's name
				}
				if !yield(Job{Seq: seq, Line: cfg.Template.Expand(args, seq, slotMarker, cfg.Raw), Stdin: block}, nil) {
					return false
				}
			}
			return true
		}
		if p.Part == nil {
			each(stdin, "standard input", p.Block, false)
			return
		}
		for _, path := range p.Part {
			f, err := os.Open(path)
			if err != nil {
				yield(Job{}, fmt.Errorf("--pipepart: %w", err))
				return
			}
			size := p.Block
			if p.Parts > 0 {
				st, err := f.Stat()
				if err != nil {
					f.Close()
					yield(Job{}, fmt.Errorf("--pipepart: %w", err))
					return
				}
				parts := int64(p.Parts * cfg.Jobs)
				size = max((st.Size()+parts-1)/parts, 1)
			}
			ok := each(f, path, size, true)
			f.Close()
			if !ok {
				return
			}
		}
	}
}

// groupNamed returns p with the number of the --group-by column that the
// first line of the header names.
func (p *Pipe) groupNamed(header []byte) (*Pipe, error) {
	first, _, _ := bytes.Cut(header, []byte("\n"))
	for i, name := range p.GroupSep.Split(string(first), -1) {
		if name == p.GroupName {
			named := *p
			named.GroupBy = i + 1
			return &named, nil
		}
	}
	return nil, fmt.Errorf("--group-by %s: the header (%q) has no such column", p.GroupName, first)
}

// headerLines reads the first n lines of br.
func headerLines(br *bufio.Reader, n int) ([]byte, error) {
	var header []byte
	for range n {
		line, err := br.ReadBytes('\n')
		header = append(header, line...)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return header, nil
}

// blocks yields blocks of whole records read from r: n records if p.Records
// is n > 0, else as many as fit in size bytes (one, if it alone is larger),
// or with after, as many as reach size.
func blocks(r io.Reader, size int64, after bool, p *Pipe) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		var block []byte
		n := 0 // records in block
		for rec, err := range records(r, size, p) {
			if err != nil {
				yield(nil, err)
				return
			}
			if p.Records == 0 && !after && len(block) > 0 && int64(len(block)+len(rec)) > size {
				// As GNU parallel cuts: at the last record end before the
				// block size, so that a block exceeds it only when a
				// record alone does.
				if !yield(block, nil) {
					return
				}
				block = nil
			}
			block = append(block, rec...)
			n++
			if (p.Records > 0 && n == p.Records) || (p.Records == 0 && after && int64(len(block)) > size) {
				if !yield(block, nil) {
					return
				}
				block, n = nil, 0
			}
		}
		if len(block) > 0 {
			yield(block, nil)
		}
	}
}

// records yields the records of r, each with its terminator; with
// p.GroupBy, the lines with the same value in that column as one record.
// With neither a record start nor end, a record is a byte, yielded in runs
// of size bytes (or p.Records), which cut into blocks alike.
func records(r io.Reader, size int64, p *Pipe) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64*1024), 1<<30)
		if p.RecStart == "" && p.RecEnd == "" {
			n := int(size)
			if p.Records > 0 {
				n = 1 // -N counts bytes
			}
			sc.Split(fixed(n))
		} else {
			sc.Split(splitRecords([]byte(p.RecStart), []byte(p.RecEnd)))
		}
		var group, key []byte
		for sc.Scan() {
			rec := sc.Bytes()
			if p.GroupBy > 0 {
				k := column(bytes.TrimSuffix(rec, []byte(p.RecEnd)), p)
				if group != nil && !bytes.Equal(k, key) {
					if !yield(group, nil) {
						return
					}
					group = nil
				}
				key = append(key[:0], k...)
				group = append(group, rec...)
				continue
			}
			if !yield(rec, nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			yield(nil, err)
			return
		}
		if group != nil {
			yield(group, nil)
		}
	}
}

// column returns the value of a record's --group-by column, or nothing.
func column(rec []byte, p *Pipe) []byte {
	cols := p.GroupSep.FindAllIndex(rec, p.GroupBy)
	start := 0
	for i, c := range cols {
		if i == p.GroupBy-1 {
			return rec[start:c[0]]
		}
		start = c[1]
	}
	if len(cols) == p.GroupBy-1 {
		return rec[start:]
	}
	return nil
}

// fixed splits input into records of n bytes.
func fixed(n int) bufio.SplitFunc {
	return func(data []byte, atEOF bool) (int, []byte, error) {
		if len(data) >= n || (atEOF && len(data) > 0) {
			k := min(n, len(data))
			return k, data[:k], nil
		}
		return 0, nil, nil
	}
}

// splitRecords splits input into records, each with its terminator: after
// every end, before every start, or, given both, between an end and a start.
func splitRecords(start, end []byte) bufio.SplitFunc {
	return func(data []byte, atEOF bool) (int, []byte, error) {
		if cut, ok := recordEnd(data, start, end, atEOF); ok {
			return cut, data[:cut], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	}
}

// recordEnd finds where the first record in data ends, if data holds it
// whole.
func recordEnd(data, start, end []byte, atEOF bool) (int, bool) {
	if len(end) == 0 {
		if len(data) == 0 {
			return 0, false
		}
		i := bytes.Index(data[1:], start)
		return i + 1, i >= 0
	}
	for from := 0; ; {
		i := bytes.Index(data[from:], end)
		if i < 0 {
			return 0, false
		}
		cut := from + i + len(end)
		if len(start) == 0 || bytes.HasPrefix(data[cut:], start) {
			return cut, true
		}
		if !atEOF && len(data)-cut < len(start) {
			return 0, false // too little read to tell whether a record starts here
		}
		from = cut
	}
}
