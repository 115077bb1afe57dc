package run

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/goherd/herd/internal/command"
)

func TestParseJobs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 4}, {"3", 3}, {"0", 1000}, {"50%", 2}, {"10%", 1}, {"+2", 6}, {"-1", 3}, {"-10", 1}, {"150%", 6},
	} {
		if got, err := ParseJobs(tc.in, 4); err != nil || got != tc.want {
			t.Errorf("ParseJobs(%q, 4) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"x", "-", "+", "1.5", "-x", "0%", "%", "-3%"} {
		if _, err := ParseJobs(bad, 4); err == nil {
			t.Errorf("ParseJobs(%q) = nil error", bad)
		}
	}
}

func TestParseHalt(t *testing.T) {
	for in, want := range map[string]Halt{
		"":               {},
		"never":          {},
		"1":              {On: "fail", Count: 1},
		"2":              {Now: true, On: "fail", Count: 1},
		"now,fail=3":     {Now: true, On: "fail", Count: 3},
		"soon,success=1": {On: "success", Count: 1},
		"now,done=20%":   {Now: true, On: "done", Percent: 20},
	} {
		if want.On != "" {
			want.Text = in // for its messages
		}
		if got, err := ParseHalt(in); err != nil || got != want {
			t.Errorf("ParseHalt(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"later,fail=1", "now", "now,fail", "now,fail=0", "now,oops=1", "soon,fail=101%", "3"} {
		if _, err := ParseHalt(bad); err == nil {
			t.Errorf("ParseHalt(%q) = nil error", bad)
		}
	}
}

func TestParseSecondsAndSize(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "2": 2 * time.Second, "0.5": 500 * time.Millisecond, "1m30s": 90 * time.Second} {
		if got, err := ParseSeconds("--x", in); err != nil || got != want {
			t.Errorf("ParseSeconds(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "soon", "1e99"} {
		if _, err := ParseSeconds("--x", bad); err == nil {
			t.Errorf("ParseSeconds(%q) = nil error", bad)
		}
	}
	for in, want := range map[string]int64{"1": 1, "10K": 10 << 10, "10k": 10000, "1M": 1 << 20, "1m": 1e6, "2G": 2 << 30, "2g": 2e9, "1.5K": 1536} {
		if got, err := ParseSize("--block", in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "k", "0", "-1M", "lots", "2P"} {
		if _, err := ParseSize("--block", bad); err == nil {
			t.Errorf("ParseSize(%q) = nil error", bad)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`,`: ",", `\n`: "\n", `\t`: "\t", `\0`: "\x00", `\x41\\`: "A\\", `a\qb`: `a\qb`} {
		if got, err := Unescape(in); err != nil || got != want {
			t.Errorf("Unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`\x`, `\x4`, `\xzz`} {
		if _, err := Unescape(bad); err == nil {
			t.Errorf("Unescape(%q) = nil error", bad)
		}
	}
}

func TestParseTermSeq(t *testing.T) {
	got, err := ParseTermSeq("TERM,200,SIGINT,0,9,25")
	want := []command.Term{{Signal: syscall.SIGTERM, Wait: 200 * time.Millisecond}, {Signal: syscall.SIGINT}, {Signal: syscall.SIGKILL, Wait: 25 * time.Millisecond}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("parseTermSeq = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "TERM", "TERM,x", "NOPE,10", "TERM,-1", "0,10"} {
		if _, err := ParseTermSeq(bad); err == nil {
			t.Errorf("ParseTermSeq(%q) = nil error", bad)
		}
	}
}

// herd run's arguments become the run's configuration, with no process
// started: each case parses a command line and checks what it sets.
