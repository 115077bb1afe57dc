package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The manual pages in doc/man are generated from the commands' help; they
// must say what --help says.
func TestManPagesUpToDate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var stderr bytes.Buffer
	if status := execute(context.Background(), []string{"man", dir}, nil, nil, new(bytes.Buffer), &stderr); status != 0 {
		t.Fatalf("herd man: status %d: %s", status, stderr.String())
	}
	const committed = "../../doc/man"
	want, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadDir(committed)
	if err != nil {
		t.Fatal(err)
	}
	names := func(es []os.DirEntry) []string {
		var n []string
		for _, e := range es {
			n = append(n, e.Name())
		}
		return n
	}
	if !slices.Equal(names(want), names(have)) {
		t.Fatalf("doc/man has %v, herd man writes %v; run: go run ./cmd/herd man doc/man", names(have), names(want))
	}
	for _, e := range want {
		fresh, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		old, _ := os.ReadFile(filepath.Join(committed, e.Name()))
		if !bytes.Equal(fresh, old) {
			t.Errorf("doc/man/%s is stale; run: go run ./cmd/herd man doc/man", e.Name())
		}
	}
}
