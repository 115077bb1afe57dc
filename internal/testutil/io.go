package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Buffer is a bytes.Buffer that a process or a logger writes while the
// test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// CutJobs cuts the block file of the queue's jobs in the data folder dir
// in half, as a disk that lost writes might, while no server uses it.
func CutJobs(t testing.TB, dir string) {
	t.Helper()
	blocks, err := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", "HERD", "msgs", "*.blk"))
	if err != nil || len(blocks) != 1 {
		t.Fatalf("the queue's blocks of jobs in %s: %v, %v; want one", dir, blocks, err)
	}
	info, err := os.Stat(blocks[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(blocks[0], info.Size()/2); err != nil {
		t.Fatal(err)
	}
}
