package queueadmin

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/goherd/herd/internal/run/remote"
	"github.com/goherd/herd/queue"
)

// herd queue inspect shows a command job's outcome as text, not as the
// JSON (and base64) it is stored in.
func TestInspectCommandJob(t *testing.T) {
	t.Parallel()
	res, err := json.Marshal(remote.Result{Line: "echo hi; echo oops >&2", Host: "box", Exit: 1, Stdout: []byte("hi\nthere\n"), Stderr: []byte("oops\n")})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	started := time.Date(2026, 11, 29, 12, 0, 1, 0, time.Local)
	WriteInfo(&out, &queue.Info{ID: "cron.x.20261129T120000Z", Kind: remote.Kind, State: queue.Succeeded, Result: res, Worker: "box-42-abcdef", StartedAt: started}, false)
	for _, want := range []string{
		"last try:  started 2026-11-29 12:00:01 on worker box-42-abcdef\n",
		"command:   echo hi; echo oops >&2\n",
		"host:      box\n",
		"exit:      1\n",
		"stdout:    hi\n           there\n",
		"stderr:    oops\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	WriteInfo(&out, &queue.Info{ID: "other", Kind: "email", Result: []byte(`{"sent":true}`)}, false)
	if !strings.Contains(out.String(), `result:    {"sent":true}`) {
		t.Errorf("a job of another kind:\n%s", out.String())
	}
}
