package replace

import (
	"os/exec"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	for _, tc := range []struct {
		tmpl   string
		opts   Options
		inputs []string
		want   string
	}{
		{"echo {}", Options{}, []string{"a"}, "echo a"},
		{"echo", Options{}, []string{"a", "b c"}, "echo a 'b c'"},
		{"echo {.}", Options{}, []string{"dir.d/file.tar.gz"}, "echo dir.d/file.tar"},
		{"echo {.}", Options{}, []string{".bashrc"}, "echo ''"}, // as GNU parallel has it
		{"echo {/}", Options{}, []string{"/a/b/c.txt"}, "echo c.txt"},
		{"echo {//}", Options{}, []string{"/a/b/c.txt"}, "echo /a/b"},
		{"echo {//}", Options{}, []string{"c.txt"}, "echo ."},
		{"echo {//}", Options{}, []string{"/c.txt"}, "echo /"},
		{"echo {/.}", Options{}, []string{"/a/b/c.txt"}, "echo c"},
		{"echo {#} {%}", Options{}, []string{"x"}, "echo 7 2"},
		{"cp {1} {2}", Options{}, []string{"a b", "c"}, "cp 'a b' c"},
		{"echo {2.} {1/} {3}", Options{}, []string{"d/x.y", "f.txt"}, "echo f x.y "}, // a missing position is nothing, as in GNU parallel
		{"echo {}", Options{}, []string{"a", "b"}, "echo a b"},
		{"echo X", Options{Input: "X"}, []string{"a"}, "echo a"},
		{"echo {} X", Options{Input: "X"}, []string{"a"}, "echo {} a"},
		{"awk '{print}' {}", Options{}, []string{"f"}, "awk '{print}' f"},
		{"echo {0} {x} {", Options{}, []string{"a"}, "echo {0} {x} { a"},
		{"echo {}", Options{}, []string{"x; rm -rf ~"}, `echo 'x; rm -rf ~'`},
		{"echo {}", Options{}, []string{"it's"}, `echo 'it'"'"'s'`},
		{"echo {}", Options{}, []string{"a=b"}, `echo 'a=b'`},
		{"echo {}", Options{}, []string{"+x/y.z-1_2"}, `echo +x/y.z-1_2`},
		{"echo {-1} {-2.} {-3}", Options{}, []string{"a.x", "b.y"}, "echo b.y a "},
		{"echo {name} {file/} {n}", Options{Names: []string{"name", "file"}}, []string{"x", "d/f"}, "echo x f {n}"},
		{"echo {a.}", Options{Names: []string{"a", "a."}}, []string{"1.x", "2"}, "echo 2"},
		{"echo {..} {#}", Options{}, []string{"a.b.c"}, "echo {..} 7"},
		{"echo {..} {#b} {##}", Options{Plus: true}, []string{"a.b.c"}, "echo a a.b.c 0"},
	} {
		got := Parse(tc.tmpl, tc.opts).Expand(tc.inputs, 7, 2, false)
		if got != tc.want {
			t.Errorf("Parse(%q, %+v).Expand(%q) = %q, want %q", tc.tmpl, tc.opts, tc.inputs, got, tc.want)
		}
	}
}

func TestRaw(t *testing.T) {
	got := Parse("echo {}", Options{}).Expand([]string{"a; b"}, 1, 1, true)
	if got != "echo a; b" {
		t.Errorf("raw Expand = %q, want %q", got, "echo a; b")
	}
}

// The shell sees a quoted input as one word with exactly its value, whatever
// it contains: never as code.
func TestQuoteWithRealShell(t *testing.T) {
	for _, in := range []string{
		"plain", "", " ", "a b", "x; touch pwned", "$(touch pwned)", "`touch pwned`", "'", `"`, `\`,
		"a\nb", "*", "~", "$HOME", "it's", "--", "-n", "\t", "!", "a'b'c'",
	} {
		cmd := "printf %s " + Quote(in)
		out, err := exec.Command("/bin/sh", "-c", cmd).Output()
		if err != nil || string(out) != in {
			t.Errorf("sh -c %q printed %q (%v), want %q", cmd, out, err, in)
		}
	}
}

// unquote undoes Quote for the forms it produces.
func unquote(s string) (string, bool) {
	if !strings.HasPrefix(s, "'") {
		return s, true
	}
	var b strings.Builder
	for s != "" {
		switch {
		case strings.HasPrefix(s, `"'"`):
			b.WriteByte('\'')
			s = s[3:]
		case s[0] == '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return "", false
			}
			b.WriteString(s[1 : 1+end])
			s = s[2+end:]
		default:
			return "", false
		}
	}
	return b.String(), true
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "a", "x; rm -rf ~", "it's", "''", `'\''`, `'"'"'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := Quote(s)
		got, ok := unquote(q)
		if !ok || got != s {
			t.Fatalf("unquote(Quote(%q)) = %q, %v", s, got, ok)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"echo {}", "{1} {2/.} {#} {%}", "{", "}{", "{{}}", "{9999999999999999999999}", "a{.}b"} {
		f.Add(s, "")
		f.Add(s, "X")
	}
	f.Fuzz(func(t *testing.T, tmpl, input string) {
		p := Parse(tmpl, Options{Input: input})
		again := Parse(p.String(), Options{})
		if input == "" && again.String() != p.String() {
			t.Fatalf("Parse(%q).String() = %q re-parses as %q", tmpl, p.String(), again.String())
		}
		out := p.Expand([]string{"in put"}, 1, 1, false)
		if !p.HasReplacement() && !strings.HasSuffix(out, " 'in put'") {
			t.Fatalf("Parse(%q) has no replacement string but Expand = %q does not end with the input", tmpl, out)
		}
	})
}

// -X repeats each word that holds a replacement string for every input.
func TestContext(t *testing.T) {
	tmpl := ParseContext("echo {} x{}y {#}", Options{})
	if got, want := tmpl.Expand([]string{"1", "a b"}, 3, 1, false), "echo 1 'a b' x1y x'a b'y 3"; got != want {
		t.Errorf("Expand = %q, want %q", got, want)
	}
}

// --header names the inputs after the template is parsed; a --plus string
// whose regular expression does not compile is an error, not literal text.
func TestNamesAndErrors(t *testing.T) {
	tmpl := Parse("echo {name} {}", Options{}).WithNames([]string{"name"})
	if got, want := tmpl.Expand([]string{"x"}, 1, 1, false), "echo x x"; got != want {
		t.Errorf("WithNames: Expand = %q, want %q", got, want)
	}
	if err := Parse("echo {#a(}", Options{Plus: true}).Err(); err == nil {
		t.Error("{#a(} with --plus: no error")
	}
	if err := ParseWords([]string{"echo", "{%%[}"}, Options{Plus: true}).Err(); err == nil {
		t.Error("{%%[} with --plus, in words: no error")
	}
}
