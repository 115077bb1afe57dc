package run

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --results FILE.csv, .tsv and .json: a row for each job, with its job log
// columns, its inputs, and its output; nothing printed.
func TestResultsTable(t *testing.T) {
	for _, ext := range []string{".csv", ".tsv", ".json"} {
		cfg := testConfig("a", "b,c\nd")
		cfg.Input.Delim = "\x00" // -0: a value with a new line in it is one input
		path := filepath.Join(t.TempDir(), "sub", "r"+ext)
		cfg.Results = &Results{Table: path}
		status, stdout, stderr := runFake(t, cfg, &fake{exit: func(seq int) int { return seq - 1 }}, nil)
		if status != 1 || stdout != "" {
			t.Errorf("%s: status %d, output %q (%s); want 1 and nothing printed", ext, status, stdout, stderr)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var rows [][]string
		if ext == ".json" {
			for line := range strings.Lines(string(b)) {
				var row struct {
					Seq     int
					Exitval int
					V       []string
					Stdout  string
				}
				if err := json.Unmarshal([]byte(line), &row); err != nil {
					t.Fatalf("%s: %v in %q", ext, err, line)
				}
				rows = append(rows, []string{row.V[0], row.Stdout})
			}
		} else {
			r := csv.NewReader(strings.NewReader(string(b)))
			if ext == ".tsv" {
				r.Comma = '\t'
			}
			all, err := r.ReadAll()
			if err != nil || len(all) != 3 || strings.Join(all[0], " ") != "Seq Host Starttime JobRuntime Send Receive Exitval Signal Command V1 Stdout Stderr" {
				t.Fatalf("%s: %q, %v", ext, all, err)
			}
			for _, row := range all[1:] {
				rows = append(rows, []string{row[9], row[10]})
			}
		}
		// The fake reports the jobs in reverse order.
		if len(rows) != 2 || rows[0][0] != "b,c\nd" || rows[0][1] != "out 2\n" || rows[1][0] != "a" {
			t.Errorf("%s: rows %q", ext, rows)
		}
	}
}

// An input cannot lead out of the --results tree.
func TestResultsTreeStaysInside(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig("..", "../..", "/etc")
	cfg.Results = &Results{Dir: filepath.Join(dir, "out")}
	if status, _, stderr := runFake(t, cfg, &fake{exit: func(int) int { return 0 }}, nil); status != 0 {
		t.Fatalf("status %d: %s", status, stderr)
	}
	var found []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "stdout" {
			rel, _ := filepath.Rel(dir, path)
			found = append(found, rel)
		}
		return err
	})
	want := []string{`out/1/..\_../stdout`, `out/1/\.\./stdout`, `out/1/\_etc/stdout`}
	if strings.Join(found, " ") != strings.Join(want, " ") {
		t.Errorf("stdout files %q, want %q", found, want)
	}
}
