package run

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func collectBlocks(t *testing.T, in string, size int64, n int, start, end string) []string {
	t.Helper()
	var out []string
	for b, err := range blocks(strings.NewReader(in), size, false, &Pipe{Records: n, RecStart: start, RecEnd: end}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

func TestBlocks(t *testing.T) {
	for _, tc := range []struct {
		in         string
		size       int64
		n          int
		start, end string
		want       []string
	}{
		{"a\nb\nc\n", 1, 0, "", "\n", []string{"a\n", "b\n", "c\n"}},
		{"a\nb\nc\n", 3, 0, "", "\n", []string{"a\n", "b\n", "c\n"}},
		{"a\nb\nc\n", 4, 0, "", "\n", []string{"a\nb\n", "c\n"}},
		{"a\nlong\nb\n", 3, 0, "", "\n", []string{"a\n", "long\n", "b\n"}},
		{"a\nb\nc", 100, 2, "", "\n", []string{"a\nb\n", "c"}},
		{">1\nA\n>2\nB\n", 1, 0, ">", "", []string{">1\nA\n", ">2\nB\n"}},
		{">1\nA>x\n>2\nB\n", 1, 0, ">", "\n", []string{">1\nA>x\n", ">2\nB\n"}},
		{"", 1, 0, "", "\n", nil},
	} {
		if got := collectBlocks(t, tc.in, tc.size, tc.n, tc.start, tc.end); !slices.Equal(got, tc.want) {
			t.Errorf("blocks(%q, size %d, n %d, start %q, end %q) = %q, want %q", tc.in, tc.size, tc.n, tc.start, tc.end, got, tc.want)
		}
	}
}

// FuzzBlocks checks that --pipe loses, adds and reorders nothing, and cuts
// only after a record's end.
func FuzzBlocks(f *testing.F) {
	f.Add("a\nb\nc\n", int64(2), 0, "", "\n")
	f.Add(">x\nAC\n>y\nG", int64(1), 1, ">", "\n")
	f.Add("x--y--z", int64(1), 0, "", "--")
	f.Fuzz(func(t *testing.T, in string, size int64, n int, start, end string) {
		if size < 1 || size > 1<<20 || n < 0 || n > 1000 || (start == "" && end == "") {
			return
		}
		got := collectBlocks(t, in, size, n, start, end)
		if joined := strings.Join(got, ""); joined != in {
			t.Fatalf("blocks joined = %q, want the input %q", joined, in)
		}
		for i, b := range got[:max(len(got)-1, 0)] {
			if b == "" || (end != "" && !strings.HasSuffix(b, end)) {
				t.Fatalf("block %d = %q does not end a record with %q", i, b, end)
			}
			if start != "" && !bytes.HasPrefix([]byte(got[i+1]), []byte(start)) && end == "" {
				t.Fatalf("block %d = %q is not followed by a record start %q", i+1, got[i+1], start)
			}
		}
	})
}

// --group-by: lines with the same value in the column are one record,
// which no block splits.
func TestBlocksGroupBy(t *testing.T) {
	p := &Pipe{RecEnd: "\n", GroupBy: 1, GroupSep: regexp.MustCompile(" ")}
	var got []string
	for b, err := range blocks(strings.NewReader("a 1\na 2\nb 3\nb 4\nc 5\nc\n\n"), 10, false, p) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
	}
	want := []string{"a 1\na 2\n", "b 3\nb 4\n", "c 5\nc\n\n"} // "" is a group of its own, which fits
	if !slices.Equal(got, want) {
		t.Errorf("blocks = %q, want %q", got, want)
	}
}
