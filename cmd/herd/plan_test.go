package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseJobs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 4}, {"3", 3}, {"0", 1000}, {"50%", 2}, {"10%", 1}, {"+2", 6}, {"-1", 3}, {"-10", 1}, {"150%", 6},
	} {
		if got, err := parseJobs(tc.in, 4); err != nil || got != tc.want {
			t.Errorf("parseJobs(%q, 4) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"x", "-", "+", "1.5", "-x", "0%", "%", "-3%"} {
		if _, err := parseJobs(bad, 4); err == nil {
			t.Errorf("parseJobs(%q) = nil error", bad)
		}
	}
}

func TestParseHalt(t *testing.T) {
	for in, want := range map[string]halt{
		"":               {},
		"never":          {},
		"1":              {on: "fail", count: 1},
		"2":              {now: true, on: "fail", count: 1},
		"now,fail=3":     {now: true, on: "fail", count: 3},
		"soon,success=1": {on: "success", count: 1},
		"now,done=20%":   {now: true, on: "done", percent: 20},
	} {
		if got, err := parseHalt(in); err != nil || got != want {
			t.Errorf("parseHalt(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"later,fail=1", "now", "now,fail", "now,fail=0", "now,oops=1", "soon,fail=101%", "3"} {
		if _, err := parseHalt(bad); err == nil {
			t.Errorf("parseHalt(%q) = nil error", bad)
		}
	}
}

func TestParseSecondsAndSize(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "2": 2 * time.Second, "0.5": 500 * time.Millisecond, "1m30s": 90 * time.Second} {
		if got, err := parseSeconds("--x", in); err != nil || got != want {
			t.Errorf("parseSeconds(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "soon", "1e99"} {
		if _, err := parseSeconds("--x", bad); err == nil {
			t.Errorf("parseSeconds(%q) = nil error", bad)
		}
	}
	for in, want := range map[string]int64{"1": 1, "10k": 10 << 10, "1M": 1 << 20, "2g": 2 << 30, "1.5K": 1536} {
		if got, err := parseSize("--block", in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "k", "0", "-1M", "lots", "2P"} {
		if _, err := parseSize("--block", bad); err == nil {
			t.Errorf("parseSize(%q) = nil error", bad)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`,`: ",", `\n`: "\n", `\t`: "\t", `\0`: "\x00", `\x41\\`: "A\\", `a\qb`: `a\qb`} {
		if got, err := unescape(in); err != nil || got != want {
			t.Errorf("unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`\x`, `\x4`, `\xzz`} {
		if _, err := unescape(bad); err == nil {
			t.Errorf("unescape(%q) = nil error", bad)
		}
	}
}

func TestMedianTracker(t *testing.T) {
	var m medianTracker
	for i, d := range []time.Duration{5, 1, 9, 3, 7} {
		m.add(d)
		sorted := []time.Duration{5, 1, 9, 3, 7}[:i+1]
		slices.Sort(sorted)
		if want := sorted[i/2]; m.median() != want {
			t.Errorf("after %d adds, median = %v, want %v", i+1, m.median(), want)
		}
	}
}

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
	} {
		if got := matches(tc.logged, tc.now, marker); got != tc.want {
			t.Errorf("matches(%q, %q) = %v, want %v", tc.logged, tc.now, got, tc.want)
		}
	}
}

func collectBlocks(t *testing.T, in string, size int64, n int, start, end string) []string {
	t.Helper()
	var out []string
	for b, err := range blocks(strings.NewReader(in), size, n, start, end) {
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
		{"a\nb\nc\n", 3, 0, "", "\n", []string{"a\nb\n", "c\n"}},
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
