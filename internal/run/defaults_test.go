package run

import (
	"slices"
	"strings"
	"testing"
)

func TestShellWords(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  -k   --tag\t", []string{"-k", "--tag"}},
		{`--tagstring 'a b'`, []string{"--tagstring", "a b"}},
		{`--tagstring "a b" -j2`, []string{"--tagstring", "a b", "-j2"}},
		{`a\ b`, []string{"a b"}},
		{`'it\'s' "say \"hi\"" 'back\\slash' 'no\escape'`, []string{"it's", `say "hi"`, `back\slash`, `no\escape`}},
		{`x'y'"z"`, []string{"xyz"}},
		{`''`, []string{""}},
		{`$HOME ~ *`, []string{"$HOME", "~", "*"}}, // nothing is expanded
	} {
		got, err := ShellWords(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ShellWords(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`'open`, `"open`, `a "b`} {
		if got, err := ShellWords(bad); err == nil {
			t.Errorf("ShellWords(%q) = %q, want an error", bad, got)
		}
	}
}

// Any word survives being single-quoted the way a user would write it.
func FuzzShellWords(f *testing.F) {
	for _, s := range []string{"", "a b", "it's", `back\slash`, "tab\there", `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, word string) {
		quoted := "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(word) + "'"
		got, err := ShellWords("-x " + quoted + " -y")
		if err != nil || !slices.Equal(got, []string{"-x", word, "-y"}) {
			t.Fatalf("ShellWords(%q) = %q, %v", quoted, got, err)
		}
		ShellWords(word) // never panics, whatever the input
	})
}
