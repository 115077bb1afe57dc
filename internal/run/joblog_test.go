package run

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/goherd/herd/internal/command"
)

func TestMatches(t *testing.T) {
	marker := "-9223372036854775808"
	for _, tc := range []struct {
		logged, now string
		want        bool
	}{
		{"echo a", "echo a", true},
		{"echo a", "echo b", false},
		{"echo 3 a", "echo " + marker + " a", true},
		{"echo x a", "echo " + marker + " a", false},
		{"echo a b", "echo a\tb", true},
		{`echo 'it'\''s'`, `echo 'it'"'"'s'`, true}, // logged by an earlier herd
	} {
		if got := matches(tc.logged, tc.now, marker); got != tc.want {
			t.Errorf("matches(%q, %q) = %v, want %v", tc.logged, tc.now, got, tc.want)
		}
	}
}

// FuzzJoblog checks that a row herd writes reads back as written, and
// that reading any file either fails with an error or gives rows with
// job numbers, each once in the order.
func FuzzJoblog(f *testing.F) {
	f.Add(3, 0, 0, "echo a", "1\t:\t1.0\t1.0\t0\t0\t0\t0\techo\n")
	f.Add(7, 1, 9, "printf 'a\\tb\\n'", "Seq\tHost\n")
	f.Add(2, 0, 0, "echo a\r", "")
	f.Add(1, -1, 0, "x\ny", "2\t:\t0\t0\t0\t0\t1\t0\ta\tb\tc\n2\t:\t0\t0\t0\t0\t0\t0\ta\n")
	f.Fuzz(func(t *testing.T, seq, exit, signal int, line, file string) {
		dir := t.TempDir()
		if seq >= 1 {
			path := filepath.Join(dir, "written.tsv")
			l, err := openJoblog(path, false)
			if err != nil {
				t.Fatal(err)
			}
			res := command.Result{Start: time.Unix(1e9, 0), Exit: exit, Signal: signal}
			if err := l.write(seq, "", res, 0, 0, line); err != nil {
				t.Fatal(err)
			}
			l.Close()
			rows, order, err := ReadJoblog(path)
			want := LogRow{Seq: seq, Exit: exit, Signal: signal, Command: logCommand(line)}
			if signal != 0 {
				want.Exit = 0 // GNU parallel's: a job that died of a signal has exit value 0
			}
			if err != nil || len(order) != 1 || rows[seq] != want {
				t.Fatalf("read back %v %v (%v), want %+v", rows, order, err, want)
			}
		}
		path := filepath.Join(dir, "any.tsv")
		if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
		rows, order, err := ReadJoblog(path)
		if err != nil {
			return
		}
		if len(order) != len(rows) {
			t.Fatalf("%d rows, %d in the order", len(rows), len(order))
		}
		for _, seq := range order {
			if r, ok := rows[seq]; !ok || r.Seq != seq || seq < 1 {
				t.Fatalf("job %d in the order, row %+v", seq, r)
			}
		}
	})
}
