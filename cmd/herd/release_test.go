package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The release script builds a static binary that says the version it was
// given, in an archive with the manual pages, and a SHA256SUMS that matches.
func TestReleaseScript(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	const version = "v0.0.0-releasetest"
	cmd := exec.Command("bash", "../../scripts/release", version, out)
	cmd.Env = append(os.Environ(), "TARGETS="+runtime.GOOS+"/"+runtime.GOARCH, "HOME="+realHome)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/release: %v\n%s", err, b)
	}
	name := fmt.Sprintf("herd_%s_%s_%s", version, runtime.GOOS, runtime.GOARCH)
	archive, err := os.ReadFile(filepath.Join(out, name+".tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(archive)
	if want := hex.EncodeToString(sum[:]) + "  " + name + ".tar.gz\n"; string(sums) != want {
		t.Errorf("SHA256SUMS = %q, want %q", sums, want)
	}

	dir := t.TempDir()
	files := untar(t, archive, dir)
	for _, f := range []string{"herd", "README.md", "man/herd.1", "man/herd-run.1"} {
		if !files[name+"/"+f] {
			t.Errorf("the archive has no %s/%s; it has %v", name, f, files)
		}
	}
	bin := filepath.Join(dir, name, "herd")
	b, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(string(b), "\n"); first != "herd "+version {
		t.Errorf("herd --version says %q first, want %q", first, "herd "+version)
	}
	if runtime.GOOS == "linux" {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the release binary is dynamically linked")
			}
		}
	}
}

// untar writes the files of a .tar.gz to dir and returns their names.
func untar(t *testing.T, archive []byte, dir string) map[string]bool {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names[strings.TrimSuffix(h.Name, "/")] = true
		path := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, os.FileMode(h.Mode)); err != nil {
				t.Fatal(err)
			}
		}
	}
}
