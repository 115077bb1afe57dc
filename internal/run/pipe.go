package run

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"iter"
)

// pipeJobs cuts standard input into blocks of whole records for --pipe,
// one job a block, each after the header's lines with --header.
func (cfg *Config) pipeJobs(stdin io.Reader) iter.Seq2[Job, error] {
	return func(yield func(Job, error) bool) {
		br := bufio.NewReader(stdin)
		var header []byte
		for range cfg.Pipe.Header {
			line, err := br.ReadBytes('\n')
			header = append(header, line...)
			if err == io.EOF {
				break
			}
			if err != nil {
				yield(Job{}, fmt.Errorf("reading standard input: %w", err))
				return
			}
		}
		seq := 0
		for block, err := range blocks(br, cfg.Pipe.Block, cfg.Pipe.Records, cfg.Pipe.RecStart, cfg.Pipe.RecEnd) {
			if err != nil {
				yield(Job{}, err)
				return
			}
			seq++
			if len(header) > 0 {
				block = append(header[:len(header):len(header)], block...)
			}
			if !yield(Job{Seq: seq, Line: cfg.Template.Expand(nil, seq, slotMarker, cfg.Raw), Stdin: block}, nil) {
				return
			}
		}
	}
}

// blocks yields blocks of whole records read from r: as many as fit in
// size bytes (one, if it alone is larger), or n records if n > 0.
func blocks(r io.Reader, size int64, n int, recStart, recEnd string) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64*1024), 1<<30)
		sc.Split(splitRecords([]byte(recStart), []byte(recEnd)))
		var block []byte
		records := 0
		for sc.Scan() {
			rec := sc.Bytes()
			if n == 0 && len(block) > 0 && int64(len(block)+len(rec)) > size {
				// As GNU parallel cuts: at the last record end before the
				// block size, so that a block exceeds it only when a
				// record alone does.
				if !yield(block, nil) {
					return
				}
				block = nil
			}
			block = append(block, rec...)
			records++
			if n > 0 && records == n {
				if !yield(block, nil) {
					return
				}
				block, records = nil, 0
			}
		}
		if err := sc.Err(); err != nil {
			yield(nil, fmt.Errorf("reading standard input: %w", err))
			return
		}
		if len(block) > 0 {
			yield(block, nil)
		}
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
