// Package sshlogin reads GNU parallel's sshlogins (-S, --sshloginfile) and
// starts herd work on each of their hosts through ssh, with a reverse
// tunnel to a queue on this machine, so that no port is opened to the
// network.
package sshlogin

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// A Login is one host to run jobs on.
type Login struct {
	Jobs  int      // N/ before it: jobs at once there; 0 means herd work's default (its CPUs)
	SSH   []string // the ssh command given in the login, if any
	Dest  string   // [user@]host, as ssh takes it
	Port  string   // the port given with :port, if any
	Local bool     // ":": this machine, with no ssh
	Host  string   // the host alone (":" for this machine): $PARALLEL_SSHHOST
	Text  string   // as written, for messages
}

// Name is the login as written, less its N/: $PARALLEL_SSHLOGIN.
func (l Login) Name() string {
	if n, rest, ok := strings.Cut(l.Text, "/"); ok && l.Jobs > 0 && n == strconv.Itoa(l.Jobs) {
		return rest
	}
	return l.Text
}

// Parse reads sshlogins as GNU parallel takes them: each -S value holds
// logins separated by commas (",," or "\," for a comma in one) or
// newlines; ".." and "-" read the sshlogin files ~/.parallel/sshloginfile
// and standard input. Each login is [N/][ssh command ][user@]host[:port],
// or ":" for this machine.
func Parse(values []string, files []string) ([]Login, error) {
	var texts []string
	for _, v := range values {
		v = strings.NewReplacer(`\,`, "\x00", ",,", "\x00").Replace(v)
		for _, s := range regexp.MustCompile(",|\n").Split(v, -1) {
			s = strings.TrimSpace(strings.ReplaceAll(s, "\x00", ","))
			switch s {
			case "":
			case "..", "-":
				files = append(files, s)
			default:
				texts = append(texts, s)
			}
		}
	}
	for _, f := range files {
		lines, err := readFile(f)
		if err != nil {
			return nil, err
		}
		texts = append(texts, lines...)
	}
	var logins []Login
	seen := map[string]bool{}
	for _, t := range texts {
		l, err := parseOne(t)
		if err != nil {
			return nil, err
		}
		if key := fmt.Sprint(l.SSH, l.Dest, l.Port, l.Local); !seen[key] {
			seen[key] = true
			logins = append(logins, l)
		}
	}
	if len(logins) == 0 {
		return nil, errors.New("-S: no sshlogin given")
	}
	return logins, nil
}

// readFile reads an sshlogin file: a login a line, # comments and blank
// lines skipped. ".." is ~/.parallel/sshloginfile, "-" standard input.
func readFile(name string) ([]string, error) {
	var f *os.File
	switch name {
	case "-":
		f = os.Stdin
	case "..":
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("--sshloginfile ..: %w", err)
		}
		name = filepath.Join(home, ".parallel", "sshloginfile")
		fallthrough
	default:
		var err error
		if f, err = os.Open(name); err != nil {
			return nil, fmt.Errorf("--sshloginfile: %w", err)
		}
		defer f.Close()
	}
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--sshloginfile %s: %w", name, err)
	}
	return lines, nil
}

// parseOne parses a login: [N/][ssh command ][user@]host[:port], or ":".
func parseOne(s string) (Login, error) {
	l := Login{Text: s}
	if strings.HasPrefix(s, "@") {
		return l, fmt.Errorf("-S %s: host groups (@group) are not supported: name the hosts", s)
	}
	if n, rest, ok := strings.Cut(s, "/"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		var err error
		if l.Jobs, err = strconv.Atoi(n); err != nil || l.Jobs < 1 {
			return l, fmt.Errorf("-S %s: want a number of jobs, 1 or more, before the /", s)
		}
		s = rest
	}
	if i := strings.LastIndexByte(s, ' '); i >= 0 {
		l.SSH, s = strings.Fields(s[:i]), s[i+1:]
	}
	if s == ":" {
		if l.SSH != nil {
			return l, fmt.Errorf("-S %s: the local machine (:) takes no ssh command", l.Text)
		}
		l.Local, l.Host = true, ":"
		return l, nil
	}
	user, host, hasUser := strings.Cut(s, "@")
	if !hasUser {
		user, host = "", s
	}
	if strings.Contains(user, ":") {
		return l, fmt.Errorf("-S %s: passwords in sshlogins are not supported: use a key (ssh-agent)", l.Text)
	}
	if h, port, ok := strings.Cut(host, ":"); ok && !strings.Contains(port, ":") {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return l, fmt.Errorf("-S %s: %q is not a port", l.Text, port)
		}
		host, l.Port = h, port
	}
	host = strings.Trim(host, "[]") // [2001:db8::1]
	if host == "" || (hasUser && user == "") || strings.ContainsAny(host, " \t'\"\\;&|<>()$`") {
		return l, fmt.Errorf("-S %s: want [N/][user@]host[:port], or : for this machine", l.Text)
	}
	l.Dest, l.Host = host, host
	if hasUser {
		l.Dest = user + "@" + host
	}
	return l, nil
}
