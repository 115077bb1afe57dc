package run

import (
	"bytes"
	"strings"
	"testing"
)

func TestSpoolSpillsToDiskAndKeepsEverything(t *testing.T) {
	var s Spool
	defer s.close()
	line := strings.Repeat("x", 99) + "\n"
	var want bytes.Buffer
	for i := 0; want.Len() < spoolMemory+3*len(line); i++ {
		// Writes that straddle lines, as a pipe delivers them.
		chunk := line[i%7:] + line[:i%7]
		s.Write([]byte(chunk))
		want.WriteString(chunk)
	}
	if s.file == nil {
		t.Fatalf("%d bytes stayed in memory, want the spool on disk past %d", want.Len(), spoolMemory)
	}
	var got bytes.Buffer
	if err := s.writeTo(&got, "T\t"); err != nil {
		t.Fatal(err)
	}
	wantTagged := "T\t" + strings.ReplaceAll(want.String(), "\n", "\nT\t")
	if strings.HasSuffix(want.String(), "\n") {
		wantTagged = strings.TrimSuffix(wantTagged, "T\t") // no tag before a line that never comes
	}
	if got.String() != wantTagged {
		t.Errorf("spooled output differs from what was written (%d bytes, want %d)", got.Len(), len(wantTagged))
	}
	s.reset()
	if s.file != nil || s.mem.Len() != 0 {
		t.Errorf("reset left %d bytes and file %v", s.mem.Len(), s.file)
	}
}

func TestTagWriter(t *testing.T) {
	var b bytes.Buffer
	tw := &tagWriter{w: &b, tag: "> "}
	for _, p := range []string{"a", "b\nc", "\n", "", "d\n\ne"} {
		tw.Write([]byte(p))
	}
	if want := "> ab\n> c\n> d\n> \n> e"; b.String() != want {
		t.Errorf("tagged = %q, want %q", b.String(), want)
	}
}
