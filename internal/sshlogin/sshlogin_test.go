package sshlogin

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "logins")
	if err := os.WriteFile(file, []byte("# hosts\n4/c\n\nuser@d:2222\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logins, err := Parse([]string{"2/a,b", ":", "ssh -J jump,,jump2 e", "a"}, []string{file})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range logins {
		got = append(got, fmt.Sprintf("%d %q %s %s %v %s %s", l.Jobs, l.SSH, orQuoted(l.Dest), orQuoted(l.Port), l.Local, l.Host, l.Name()))
	}
	want := []string{
		`2 [] a "" false a a`, // the second a is the same host: the first wins
		`0 [] b "" false b b`,
		`0 [] "" "" true : :`,
		`0 ["ssh" "-J" "jump,jump2"] e "" false e ssh -J jump,jump2 e`,
		`4 [] c "" false c c`,
		`0 [] user@d 2222 false d user@d:2222`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Parse:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, bad := range []string{"@group/a", "user:pw@a", "0/a", "a:port", "a;b", "ssh :", ""} {
		if _, err := Parse([]string{bad}, nil); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
}

func TestUname(t *testing.T) {
	for _, tc := range [][3]string{{"linux", "amd64", "Linux x86_64"}, {"linux", "arm64", "Linux aarch64"}, {"darwin", "arm64", "Darwin arm64"}} {
		if got := unameOf(tc[0], tc[1]); got != tc[2] {
			t.Errorf("unameOf(%s, %s) = %q, want %q", tc[0], tc[1], got, tc[2])
		}
	}
}

func orQuoted(s string) string {
	if s == "" {
		return `""`
	}
	return s
}
