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
