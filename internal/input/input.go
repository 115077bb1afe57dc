// Package input reads the inputs of herd run the way GNU parallel does:
// arguments after :::, lines of files after :::: or -a, or standard input;
// split on a delimiter, into columns, and into groups of n per job.
package input

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Source is one input source.
type Source struct {
	Args   []string // the values of a ::: source
	Path   string   // the file of a :::: source or -a; "-" is standard input
	Linked bool     // :::+ or ::::+ : paired with the source before, not combined
}

// Separators are the words that start input sources on a command line:
// ::: and :::: by default (GNU parallel's --arg-sep and --arg-file-sep
// change them). A source's separator followed by + links it to the one
// before.
type Separators struct {
	Args  string // values follow
	Files string // files follow
}

// DefaultSeparators are GNU parallel's.
var DefaultSeparators = Separators{Args: ":::", Files: "::::"}

func (sep Separators) is(s string) bool {
	return s == sep.Args || s == sep.Args+"+" || s == sep.Files || s == sep.Files+"+"
}

// Split separates a herd run command line into the command and the input
// sources given with :::, :::+, :::: and ::::+ (or the separators given).
// A ::: with no values is an empty source, as a glob that matched nothing
// gives: it makes no jobs.
func Split(args []string, seps Separators) (command []string, sources []Source, err error) {
	i := 0
	for i < len(args) && !seps.is(args[i]) {
		i++
	}
	command = args[:i]
	for i < len(args) {
		sep := args[i]
		i++
		start := i
		for i < len(args) && !seps.is(args[i]) {
			i++
		}
		vals := args[start:i:i]
		linked := sep == seps.Args+"+" || sep == seps.Files+"+"
		if linked && len(sources) == 0 {
			return nil, nil, fmt.Errorf("%s must follow another input source", sep)
		}
		switch sep {
		case seps.Args, seps.Args + "+":
			if vals == nil {
				vals = []string{} // values, none of them: not a file source
			}
			sources = append(sources, Source{Args: vals, Linked: linked})
		default:
			if len(vals) == 0 {
				return nil, nil, fmt.Errorf("%s needs a file name", sep)
			}
			for j, p := range vals {
				sources = append(sources, Source{Path: p, Linked: linked && j == 0})
			}
		}
	}
	return command, sources, nil
}

// Config says how to read the inputs.
type Config struct {
	Sources []Source  // none means Stdin
	Stdin   io.Reader // read for "-" and when there are no sources
	Delim   string    // record delimiter of files, stdin and ::: values; empty means newline
	ColSep  *regexp.Regexp
	// MaxArgs is how many records make one job (-n and -N). Zero means 1.
	MaxArgs int
	// Link pairs all sources value by value instead of combining them
	// (--link), repeating the shorter ones; sources linked with :::+ are
	// cut to the shortest instead, as GNU parallel does.
	Link bool
	// EOF, if set, ends each source at a value equal to it (-E).
	EOF string
	// Trim removes white space from each value, or each column with
	// ColSep: "l" on the left, "r" on the right, "lr" on both; "" or "n"
	// none (--trim).
	Trim string
	// Header takes the first value of each source as the names of its
	// values, or of its columns with ColSep (--header): see Reader.Header.
	Header bool
}

// Reader yields the inputs of each job.
type Reader struct {
	cfg     Config
	files   []io.ReadCloser // by source, nil for ::: sources
	readers []io.Reader     // the files, or with Header a reader past their first record
	names   []string        // with Header, once read
	headed  bool            // the headers were read
}

// Open opens every file source, so that a missing or unreadable file is
// reported before any job starts.
func Open(cfg Config) (*Reader, error) {
	if cfg.Delim == "" {
		cfg.Delim = "\n"
	}
	if cfg.MaxArgs <= 0 {
		cfg.MaxArgs = 1
	}
	if len(cfg.Sources) == 0 {
		cfg.Sources = []Source{{Path: "-"}}
	}
	// The delimiter splits the values of ::: too, as GNU parallel does:
	// ::: a,b with -d , is two values, and so is a value with a new line
	// in it without -d.
	cfg.Sources = slices.Clone(cfg.Sources)
	for i, s := range cfg.Sources {
		if s.Args != nil {
			split := make([]string, 0, len(s.Args)) // not nil: still a ::: source
			for _, a := range s.Args {
				if strings.Contains(a, cfg.Delim) {
					split = append(split, strings.Split(a, cfg.Delim)...)
				} else {
					split = append(split, a) // the usual case: no slice of its own
				}
			}
			cfg.Sources[i].Args = split
		}
	}
	r := &Reader{cfg: cfg, files: make([]io.ReadCloser, len(cfg.Sources)), readers: make([]io.Reader, len(cfg.Sources))}
	stdinUsed := false
	for i, s := range cfg.Sources {
		switch {
		case s.Args != nil:
		case s.Path == "-":
			if stdinUsed {
				r.Close()
				return nil, errors.New("standard input is given as an input source twice")
			}
			stdinUsed = true
			r.files[i] = io.NopCloser(cfg.Stdin)
		default:
			f, err := os.Open(s.Path)
			if err != nil {
				r.Close()
				return nil, fmt.Errorf("input file: %w", err)
			}
			r.files[i] = f
		}
		r.readers[i] = r.files[i]
	}
	return r, nil
}

// Header reads the first value of each source, which with Config.Header
// names its values (or with ColSep, its columns), and returns the names in
// the order of the inputs of a job: {1} is named by the first. Without
// Config.Header, it returns nothing.
func (r *Reader) Header() ([]string, error) {
	if !r.cfg.Header || r.headed {
		return r.names, nil
	}
	r.headed = true
	for i, s := range r.cfg.Sources {
		var head string
		if s.Args != nil {
			if len(s.Args) > 0 {
				head = s.Args[0]
			}
		} else {
			var err error
			br := bufio.NewReader(r.files[i]) // the values follow what it read ahead
			r.readers[i] = br
			if head, err = firstRecord(br, r.cfg.Delim, s.Path); err != nil {
				return nil, err
			}
		}
		names := []string{head}
		if r.cfg.ColSep != nil {
			names = r.cfg.ColSep.Split(head, -1)
		}
		for _, n := range names {
			r.names = append(r.names, trim(n, r.cfg.Trim))
		}
	}
	return r.names, nil
}

// firstRecord reads the first record of br, up to delim.
func firstRecord(br *bufio.Reader, delim, name string) (string, error) {
	var b []byte
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			return string(b), nil
		}
		if err != nil {
			if name == "-" {
				name = "standard input"
			}
			return "", fmt.Errorf("reading %s: %w", name, err)
		}
		b = append(b, c)
		if bytes.HasSuffix(b, []byte(delim)) {
			return string(b[:len(b)-len(delim)]), nil
		}
	}
}

// Close closes the files.
func (r *Reader) Close() error {
	var errs []error
	for _, f := range r.files {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// Jobs yields the inputs of each job in order: one value per source (or per
// column with ColSep), times MaxArgs. Combining sources reads every source
// but the first into memory; a single or linked sources are streamed.
func (r *Reader) Jobs() iter.Seq2[[]string, error] {
	return func(yield func([]string, error) bool) {
		if _, err := r.Header(); err != nil {
			yield(nil, err)
			return
		}
		var group []string
		n := 0
		for vals, err := range r.combined() {
			if err != nil {
				yield(nil, err)
				return
			}
			if r.cfg.ColSep != nil {
				var cols []string
				for _, v := range vals {
					cols = append(cols, r.cfg.ColSep.Split(v, -1)...)
				}
				vals = cols
			}
			if r.cfg.Trim != "" && r.cfg.Trim != "n" {
				for i, v := range vals {
					vals[i] = trim(v, r.cfg.Trim)
				}
			}
			group = append(group, vals...)
			if n++; n == r.cfg.MaxArgs {
				if !yield(group, nil) {
					return
				}
				group, n = nil, 0
			}
		}
		if n > 0 {
			yield(group, nil)
		}
	}
}

// combined yields one value from each source per step: the cartesian
// product of groups of linked sources, the first varying slowest.
func (r *Reader) combined() iter.Seq2[[]string, error] {
	// Sources linked to the one before form one group, zipped.
	var groups [][]int
	for i, s := range r.cfg.Sources {
		if i > 0 && (s.Linked || r.cfg.Link) {
			groups[len(groups)-1] = append(groups[len(groups)-1], i)
		} else {
			groups = append(groups, []int{i})
		}
	}
	return func(yield func([]string, error) bool) {
		// Every group but the first is read whole, to be repeated.
		rest := make([][][]string, len(groups)-1)
		for gi, g := range groups[1:] {
			var err error
			if rest[gi], err = collect(r.zip(g)); err != nil {
				yield(nil, err)
				return
			}
			if len(rest[gi]) == 0 {
				return // an empty source: no combinations
			}
		}
		for first, err := range r.zip(groups[0]) {
			if err != nil {
				yield(nil, err)
				return
			}
			if !product(first, rest, yield) {
				return
			}
		}
	}
}

// trim removes white space from the left of s (how has an l), the right
// (an r), or both.
func trim(s, how string) string {
	if strings.Contains(how, "l") {
		s = strings.TrimLeft(s, " \t\n\r\v\f")
	}
	if strings.Contains(how, "r") {
		s = strings.TrimRight(s, " \t\n\r\v\f")
	}
	return s
}

// product yields prefix followed by every combination of rest.
func product(prefix []string, rest [][][]string, yield func([]string, error) bool) bool {
	if len(rest) == 0 {
		return yield(append([]string(nil), prefix...), nil)
	}
	for _, tuple := range rest[0] {
		if !product(append(prefix, tuple...), rest[1:], yield) {
			return false
		}
	}
	return true
}

// zip yields the values of the given sources side by side: as many as the
// shortest has, or, with --link, as many as the longest has, the shorter
// ones repeated from their start, as GNU parallel does.
func (r *Reader) zip(sources []int) iter.Seq2[[]string, error] {
	return func(yield func([]string, error) bool) {
		if len(sources) == 1 {
			for v, err := range r.values(sources[0]) {
				if !yield([]string{v}, err) || err != nil {
					return
				}
			}
			return
		}
		all := make([][]string, len(sources))
		longest, shortest := 0, -1
		for i, s := range sources {
			var err error
			if all[i], err = collect(r.values(s)); err != nil {
				yield(nil, err)
				return
			}
			if len(all[i]) == 0 {
				return
			}
			longest = max(longest, len(all[i]))
			if shortest < 0 || len(all[i]) < shortest {
				shortest = len(all[i])
			}
		}
		n := shortest
		if r.cfg.Link {
			n = longest
		}
		for k := range n {
			tuple := make([]string, len(all))
			for i := range all {
				tuple[i] = all[i][k%len(all[i])]
			}
			if !yield(tuple, nil) {
				return
			}
		}
	}
}

// collect reads seq whole, stopping at its first error.
func collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var all []T
	for v, err := range seq {
		if err != nil {
			return nil, err
		}
		all = append(all, v)
	}
	return all, nil
}

// values yields the values of one source, up to the -E string.
func (r *Reader) values(i int) iter.Seq2[string, error] {
	s := r.cfg.Sources[i]
	var all iter.Seq2[string, error]
	if s.Args != nil {
		vals := s.Args
		if r.cfg.Header && len(vals) > 0 {
			vals = vals[1:] // the name
		}
		all = func(yield func(string, error) bool) {
			for _, a := range vals {
				if !yield(a, nil) {
					return
				}
			}
		}
	} else {
		all = Records(r.readers[i], r.cfg.Delim, s.Path)
	}
	return func(yield func(string, error) bool) {
		n := 0
		for v, err := range all {
			if (err == nil && r.cfg.EOF != "" && v == r.cfg.EOF) || !yield(v, err) || err != nil {
				return
			}
			n++
		}
		if n == 0 && len(r.cfg.Sources) > 1 {
			// As GNU parallel has it, a source with no values (a glob
			// that matched nothing, an empty file) combined with others
			// is one empty value; alone, it makes no jobs.
			yield("", nil)
		}
	}
}

// Records yields the records of rd, split at delim, without the delimiter.
// A last record without a delimiter is yielded too; an empty input has no
// records.
func Records(rd io.Reader, delim string, name string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		sep := []byte(delim)
		sc := bufio.NewScanner(rd)
		sc.Buffer(make([]byte, 64*1024), 1<<30)
		sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
			if i := bytes.Index(data, sep); i >= 0 {
				return i + len(sep), data[:i], nil
			}
			if atEOF && len(data) > 0 {
				return len(data), data, nil
			}
			return 0, nil, nil
		})
		for sc.Scan() {
			if !yield(sc.Text(), nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			if name == "-" {
				name = "standard input"
			}
			yield("", fmt.Errorf("reading %s: %w", name, err))
		}
	}
}
