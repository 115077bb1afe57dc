package input

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func jobs(t *testing.T, cfg Config) [][]string {
	t.Helper()
	r, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer r.Close()
	var out [][]string
	for j, err := range r.Jobs() {
		if err != nil {
			t.Fatalf("Jobs: %v", err)
		}
		out = append(out, j)
	}
	return out
}

func TestSplit(t *testing.T) {
	cmd, srcs, err := Split([]string{"echo", "{}", ":::", "a", "b", ":::+", "1", "2", "::::", "f1", "f2", "::::+", "g"}, DefaultSeparators)
	if err != nil {
		t.Fatal(err)
	}
	want := []Source{{Args: []string{"a", "b"}}, {Args: []string{"1", "2"}, Linked: true}, {Path: "f1"}, {Path: "f2"}, {Path: "g", Linked: true}}
	if !slices.Equal(cmd, []string{"echo", "{}"}) || fmt.Sprint(srcs) != fmt.Sprint(want) {
		t.Errorf("Split = %q, %+v; want %+v", cmd, srcs, want)
	}
	for _, bad := range [][]string{{"echo", "::::"}, {"echo", ":::+", "a"}} {
		if _, _, err := Split(bad, DefaultSeparators); err == nil {
			t.Errorf("Split(%q) = nil error", bad)
		}
	}
	// An empty ::: is a source with no values (a glob that matched
	// nothing), and other separators can be given.
	_, srcs, err = Split([]string{"echo", ",,", ",,,", "f", ",,+"}, Separators{Args: ",,", Files: ",,,"})
	if want := []Source{{Args: []string{}}, {Path: "f"}, {Args: []string{}, Linked: true}}; err != nil || fmt.Sprint(srcs) != fmt.Sprint(want) {
		t.Errorf("Split with separators ,, and ,,, = %+v, %v; want %+v", srcs, err, want)
	}
}

func TestCombinations(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("x\ny\n"), 0o644)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"product", Config{Sources: []Source{{Args: []string{"a", "b"}}, {Args: []string{"1", "2"}}}}, "[[a 1] [a 2] [b 1] [b 2]]"},
		{"linked", Config{Sources: []Source{{Args: []string{"a", "b"}}, {Args: []string{"1", "2"}, Linked: true}}}, "[[a 1] [b 2]]"},
		{"linked cuts longer", Config{Sources: []Source{{Args: []string{"a", "b", "c"}}, {Args: []string{"1", "2"}, Linked: true}}}, "[[a 1] [b 2]]"},
		{"empty values", Config{Sources: []Source{{Args: []string{}}}}, "[]"},
		{"eof", Config{Sources: []Source{{Args: []string{"a", "b", "c"}}}, EOF: "b"}, "[[a]]"},
		{"eof in a file", Config{Sources: []Source{{Path: f}}, EOF: "y"}, "[[x]]"},
		{"link repeats shorter", Config{Link: true, Sources: []Source{{Args: []string{"a", "b", "c"}}, {Args: []string{"1"}}}}, "[[a 1] [b 1] [c 1]]"},
		{"file", Config{Sources: []Source{{Path: f}, {Args: []string{"1"}}}}, "[[x 1] [y 1]]"},
		{"stdin", Config{Stdin: strings.NewReader("p\nq")}, "[[p] [q]]"},
		{"null", Config{Stdin: strings.NewReader("p q\x00r\n\x00"), Delim: "\x00"}, "[[p q] [r\n]]"},
		{"multi-byte delim", Config{Stdin: strings.NewReader("a--b--"), Delim: "--"}, "[[a] [b]]"},
		{"colsep", Config{Stdin: strings.NewReader("a,b\nc,d\n"), ColSep: regexp.MustCompile(",")}, "[[a b] [c d]]"},
		{"colsep trimmed", Config{Stdin: strings.NewReader(" a , b\t\n"), ColSep: regexp.MustCompile(","), Trim: "lr"}, "[[a b]]"},
		{"trim left", Config{Sources: []Source{{Args: []string{" x "}}}, Trim: "l"}, "[[x ]]"},
		{"max args", Config{Sources: []Source{{Args: []string{"a", "b", "c"}}}, MaxArgs: 2}, "[[a b] [c]]"},
		{"empty source with another", Config{Sources: []Source{{Args: []string{"a"}}, {Path: "-"}}, Stdin: strings.NewReader("")}, "[[a ]]"}, // one empty value, as in GNU parallel
		{"empty ::: with another", Config{Sources: []Source{{Args: []string{}}, {Args: []string{"a", "b"}}}}, "[[ a] [ b]]"},
	} {
		if got := fmt.Sprint(jobs(t, tc.cfg)); got != tc.want && !(tc.want == "[]" && got == "[]") {
			t.Errorf("%s: jobs = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestOpenMissingFile(t *testing.T) {
	_, err := Open(Config{Sources: []Source{{Args: []string{"a"}}, {Path: "/nonexistent/file"}}})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/file") {
		t.Errorf("Open(missing) = %v, want an error naming the file", err)
	}
}

func FuzzRecords(f *testing.F) {
	f.Add("a\nb\n", "\n")
	f.Add("a\x00b", "\x00")
	f.Add("", ",")
	f.Add("\n\n", "\n")
	f.Add("a--b-", "--")
	f.Fuzz(func(t *testing.T, data string, delim string) {
		if delim == "" {
			return
		}
		var recs []string
		for r, err := range Records(strings.NewReader(data), delim, "fuzz") {
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		// Joining the records with the delimiter gives back the input,
		// less the delimiter that ends the last record, if one does.
		joined := strings.Join(recs, delim)
		if joined != data && joined != strings.TrimSuffix(data, delim) {
			t.Fatalf("Records(%q, %q) = %q, joined %q", data, delim, recs, joined)
		}
	})
}

// --header: the first value of each source names its inputs, or its
// columns with --colsep, and makes no job.
func TestHeader(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "t.csv")
	if err := os.WriteFile(f, []byte("a, b\n1,2\n3,4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Sources: []Source{{Path: f}, {Args: []string{"c", "x"}}}, ColSep: regexp.MustCompile(","), Trim: "lr", Header: true}
	r, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	names, err := r.Header()
	if err != nil || !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("Header = %q, %v; want [a b c]", names, err)
	}
	if got := jobs(t, cfg); fmt.Sprint(got) != "[[1 2 x] [3 4 x]]" {
		t.Errorf("jobs = %q, want [[1 2 x] [3 4 x]]", got)
	}
}

// The delimiter splits the values of ::: too, as GNU parallel does,
// without changing the caller's sources.
func TestDelimiterSplitsArgs(t *testing.T) {
	srcs := []Source{{Args: []string{"a,b", "c,"}}, {Args: []string{"1"}}}
	got := jobs(t, Config{Sources: srcs, Delim: ","})
	if want := [][]string{{"a", "1"}, {"b", "1"}, {"c", "1"}, {"", "1"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("jobs = %q, want %q", got, want)
	}
	if !slices.Equal(srcs[0].Args, []string{"a,b", "c,"}) {
		t.Errorf("the caller's source changed: %q", srcs[0].Args)
	}
	// Without one given, the new line splits them.
	if got := jobs(t, Config{Sources: []Source{{Args: []string{"a\nb"}}}}); fmt.Sprint(got) != "[[a] [b]]" {
		t.Errorf("jobs = %q, want a and b", got)
	}
}
