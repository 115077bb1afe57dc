package run

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/goherd/herd/internal/input"
	"github.com/goherd/herd/internal/replace"
)

// Results says where --results and --files put each job's output, which
// is then not printed. Only one of Dir, Name and Table is set, or none
// with Files alone.
type Results struct {
	// Dir holds GNU parallel's tree: for each input of a job, its source's
	// number (or --header name) and its value as folders, then the files
	// stdout, stderr and seq.
	Dir string
	// Name, expanded for each job, names its stdout file; NAME.err and
	// NAME.seq are the others. A name ending in / is a Dir.
	Name *replace.Template
	// Table is a file with a row for each job: its job log columns, its
	// inputs V1, V2 ..., its output and error output. Its name ends in
	// .csv, .tsv or .json (one JSON object a line).
	Table string
	// Files prints the name of each job's stdout file instead (--files):
	// without Dir, Name or Table, a temporary file's.
	Files bool

	// names are the inputs' names from --header, set before the first
	// job when they are read.
	names []string
}

// resultWriter writes the results of a run's jobs, one at a time.
type resultWriter struct {
	cfg   *Results
	per   int // inputs per record: one per source; 0 if columns make them
	recs  int // records per job (-N)
	table *os.File
	csv   *csv.Writer
	json  *json.Encoder
	head  bool // the CSV or TSV table has its header row
}

func newResultWriter(cfg *Results, in input.Config) (*resultWriter, error) {
	w := &resultWriter{cfg: cfg, recs: max(in.MaxArgs, 1)}
	if in.ColSep == nil {
		w.per = max(len(in.Sources), 1)
	}
	if cfg.Table == "" {
		return w, nil
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Table), 0o755); err != nil {
		return nil, fmt.Errorf("--results: %w", err)
	}
	f, err := os.Create(cfg.Table)
	if err != nil {
		return nil, fmt.Errorf("--results: %w", err)
	}
	w.table = f
	switch filepath.Ext(cfg.Table) {
	case ".json":
		w.json = json.NewEncoder(f)
	case ".tsv":
		w.csv = csv.NewWriter(f)
		w.csv.Comma = '\t'
	default:
		w.csv = csv.NewWriter(f)
	}
	return w, nil
}

// write stores a job's output, and with --files prints where.
func (w *resultWriter) write(o *Outcome, r *Runner) error {
	if w.table != nil {
		return w.row(o)
	}
	var stdout, stderr, seq string
	switch {
	case w.cfg.Dir != "":
		stdout, stderr, seq = w.tree(w.cfg.Dir, o.Job.Args)
	case w.cfg.Name != nil:
		name := w.cfg.Name.Expand(o.Job.Args, o.Job.Seq, o.Slot, true)
		if strings.HasSuffix(name, "/") {
			stdout, stderr, seq = w.tree(name, o.Job.Args)
		} else {
			stdout, stderr, seq = name, name+".err", name+".seq"
		}
	default: // --files alone: stdout to a file of its own, stderr printed
		f, err := os.CreateTemp("", "par*.par")
		if err != nil {
			return err
		}
		err = cmp.Or(o.Stdout.writeTo(f, ""), f.Close())
		r.outMu.Lock()
		defer r.outMu.Unlock()
		fmt.Fprintln(r.stdout, f.Name())
		return cmp.Or(err, o.Stderr.writeTo(r.stderr, ""))
	}
	if err := os.MkdirAll(filepath.Dir(stdout), 0o755); err != nil {
		return err
	}
	if err := writeSpool(stdout, &o.Stdout); err != nil {
		return err
	}
	if err := writeSpool(stderr, &o.Stderr); err != nil {
		return err
	}
	if err := os.WriteFile(seq, []byte(strconv.Itoa(o.Job.Seq)), 0o644); err != nil {
		return err
	}
	if w.cfg.Files {
		r.outMu.Lock()
		defer r.outMu.Unlock()
		fmt.Fprintln(r.stdout, stdout)
	}
	return nil
}

// tree returns the files of a job in GNU parallel's tree under dir: a
// folder for each input's source (its number, or its --header name), and
// in it a folder for the input, escaped: \ as \\, / as \_, tab as \t, NUL
// as \0, and .. as \.\. so that no input leads out of the tree.
func (w *resultWriter) tree(dir string, args []string) (stdout, stderr, seq string) {
	parts := []string{dir}
	per := w.per
	if per == 0 {
		per = max(len(args)/w.recs, 1)
	}
	for rec := range slices.Chunk(args, per) {
		idx := make([]int, len(rec))
		for i := range idx {
			idx[i] = i
		}
		if len(w.cfg.names) > 0 { // GNU parallel sorts by name then
			slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(w.name(a), w.name(b)) })
		}
		for _, i := range idx {
			v := strings.NewReplacer(`\`, `\\`, "/", `\_`, "\t", `\t`, "\x00", `\0`).Replace(rec[i])
			if v == ".." {
				v = `\.\.`
			}
			if len(v) > 255 {
				v = v[:255]
			}
			parts = append(parts, w.name(i), v)
		}
	}
	d := filepath.Join(parts...)
	return filepath.Join(d, "stdout"), filepath.Join(d, "stderr"), filepath.Join(d, "seq")
}

// name is the folder of the i-th input of a record: its --header name, or
// its number.
func (w *resultWriter) name(i int) string {
	if i < len(w.cfg.names) && w.cfg.names[i] != "" {
		return w.cfg.names[i]
	}
	return strconv.Itoa(i + 1)
}

// writeSpool writes a job's output to a file.
func writeSpool(path string, s *Spool) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return cmp.Or(s.writeTo(f, ""), f.Close())
}

// row writes a job's row of the table.
func (w *resultWriter) row(o *Outcome) error {
	var stdout, stderr bytes.Buffer
	if err := cmp.Or(o.Stdout.writeTo(&stdout, ""), o.Stderr.writeTo(&stderr, "")); err != nil {
		return err
	}
	exit := o.Result.Exit
	if o.Result.Signal != 0 && !o.Result.Killed {
		exit = 0 // as the job log has it
	}
	host := cmp.Or(o.Host, ":")
	start, runtime := float64(o.Result.Start.UnixMilli())/1000, o.Result.Duration.Seconds()
	if w.json != nil {
		return w.json.Encode(struct {
			Seq        int
			Host       string
			Starttime  float64
			JobRuntime float64
			Send       int
			Receive    int64
			Exitval    int
			Signal     int
			Command    string
			V          []string
			Stdout     string
			Stderr     string
		}{o.Job.Seq, host, start, runtime, len(o.Job.Stdin), o.Received, exit, o.Result.Signal, o.Line, o.Job.Args, stdout.String(), stderr.String()})
	}
	if !w.head {
		w.head = true
		head := []string{"Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval", "Signal", "Command"}
		for i := range o.Job.Args {
			head = append(head, "V"+strconv.Itoa(i+1))
		}
		if err := w.csv.Write(append(head, "Stdout", "Stderr")); err != nil {
			return err
		}
	}
	rec := []string{strconv.Itoa(o.Job.Seq), host, fmt.Sprintf("%.3f", start), fmt.Sprintf("%.3f", runtime),
		strconv.Itoa(len(o.Job.Stdin)), strconv.FormatInt(o.Received, 10), strconv.Itoa(exit), strconv.Itoa(o.Result.Signal), o.Line}
	rec = append(append(rec, o.Job.Args...), stdout.String(), stderr.String())
	if err := w.csv.Write(rec); err != nil {
		return err
	}
	w.csv.Flush()
	return w.csv.Error()
}

// close closes the table, if any.
func (w *resultWriter) close() error {
	if w.table == nil {
		return nil
	}
	return w.table.Close()
}
