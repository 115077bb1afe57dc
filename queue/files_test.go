package queue_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/goherd/herd/queue"
)

// A file put in the queue comes back byte for byte, however big, until it
// is deleted.
func TestFiles(t *testing.T) {
	t.Parallel()
	c := open(t, queue.Config{Dir: t.TempDir()})
	big := make([]byte, 3<<20+17) // several chunks of the object store
	rand.Read(big)
	for name, data := range map[string][]byte{"run.1.t0": big, "empty": nil, "a/b c": []byte("x\n")} {
		if err := c.PutFile(t.Context(), name, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := c.GetFile(t.Context(), name, &got); err != nil || !bytes.Equal(got.Bytes(), data) {
			t.Errorf("GetFile(%q) = %d bytes, %v; want the %d put", name, got.Len(), err, len(data))
		}
		if err := c.DeleteFile(t.Context(), name); err != nil {
			t.Fatal(err)
		}
		if err := c.GetFile(t.Context(), name, &got); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("GetFile(%q) after DeleteFile: %v, want ErrNotFound", name, err)
		}
	}
	if err := c.DeleteFile(t.Context(), "never"); err != nil {
		t.Errorf("DeleteFile of a file that is not there: %v", err)
	}
}
