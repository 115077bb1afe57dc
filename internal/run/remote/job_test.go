package remote

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/goherd/herd/queue"
)

// A run's job numbers are kept as ranges, and read back whole.
func TestSeqRanges(t *testing.T) {
	var r [][2]int
	r = addSeqs(r, []int{1, 2, 3})
	r = addSeqs(r, []int{4, 7, 8})
	r = addSeqs(r, []int{10})
	if want := [][2]int{{1, 4}, {7, 8}, {10, 10}}; !slices.Equal(r, want) {
		t.Errorf("ranges %v, want %v", r, want)
	}
	if got, want := expand(r), []int{1, 2, 3, 4, 7, 8, 10}; !slices.Equal(got, want) {
		t.Errorf("expand = %v, want %v", got, want)
	}
}

// FuzzDecodeJob checks that any payload is a command job, which encodes
// back to itself, or a permanent error: a job that is no command job is
// not tried again.
func FuzzDecodeJob(f *testing.F) {
	f.Add([]byte(`{"run":"r","seq":1,"args":["a"],"line":"echo a","shell":"/bin/sh","attempts":1}`))
	f.Add([]byte(`{"line":"x","shell":"sh","stdin":"AAEC","timeout":1000}`))
	f.Add([]byte(`not json`))
	f.Add([]byte(`{"line":""}`))
	f.Add([]byte(`{"line":"x","shell":"sh","stdin":"","args":[]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		cj, err := decodeJob(payload)
		if err != nil {
			if _, ok := errors.AsType[*queue.PermanentError](err); !ok {
				t.Fatalf("decodeJob(%q): %v, not a permanent error", payload, err)
			}
			return
		}
		if cj.Line == "" || cj.Shell == "" {
			t.Fatalf("decodeJob(%q) = %+v: a job with no line or shell", payload, cj)
		}
		b, err := json.Marshal(cj)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeJob(b)
		if err != nil {
			t.Fatalf("%+v encoded as %s does not decode: %v", cj, b, err)
		}
		if b2, _ := json.Marshal(again); string(b2) != string(b) {
			t.Fatalf("%+v encoded as %s decodes as %+v, which encodes as %s", cj, b, again, b2)
		}
	})
}

func TestViewOfACommandJob(t *testing.T) {
	t.Parallel()
	res := func(r Result) []byte {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	payload, err := json.Marshal(Job{Run: "r1", Seq: 7, Line: "false"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		info    queue.Info
		failed  bool
		outcome string
	}{
		{queue.Info{State: queue.Running}, false, ""},
		{queue.Info{State: queue.Succeeded, Result: res(Result{Exit: 0})}, false, "exit 0"},
		{queue.Info{State: queue.Succeeded, Result: res(Result{Exit: 1})}, true, "exit 1"},
		{queue.Info{State: queue.Succeeded, Result: res(Result{Exit: -1, Signal: 9, Killed: true})}, true, "killed by signal 9"},
		{queue.Info{State: queue.Succeeded, Result: res(Result{Skipped: true})}, true, "not started: the run was stopped"},
		{queue.Info{State: queue.Dead, Errors: []string{"attempt 1: worker lost\nmore"}}, true, "attempt 1: worker lost"},
		{queue.Info{State: queue.Cancelled}, true, "cancelled"},
	} {
		c.info.ID, c.info.Payload, c.info.Worker = "r1.7", payload, "box-42-abcdef"
		v := View(&c.info)
		if v.Failed != c.failed || v.Outcome() != c.outcome || v.Seq != 7 || v.Worker != "box-42-abcdef" {
			t.Errorf("%s %s: failed %v, outcome %q, seq %d, worker %q; want failed %v, outcome %q", c.info.State, c.info.Result, v.Failed, v.Outcome(), v.Seq, v.Worker, c.failed, c.outcome)
		}
	}
}
