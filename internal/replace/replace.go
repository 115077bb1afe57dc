// Package replace parses GNU parallel's replacement strings in a command
// template and expands them for one job.
//
// The strings are {} (the whole input), {.} (without its extension), {/}
// (basename), {//} (dirname), {/.} (basename without extension), {#} (the
// job's sequence number), {%} (its job slot), and {n}, {n.}, {n/}, {n//},
// {n/.} for the n-th input of a job that has several ({-n} counts from the
// last). With a header (--header), {name} and its forms stand for the input
// of the source or column that the header names. Options.Plus adds GNU
// parallel's --plus strings: {+/} {+.} {+..} {+...} {..} {...} {/..} {/...},
// {##} (the number of jobs) and {0#} (the job's number padded to its
// width), {host} {sshlogin} {slot}, and the bash-like {:-str} {:n} {:n:m}
// {#re} {##re} {%re} {%%re} {/re/str} {/#re/str} {/%re/str} {//re/str}
// {^re} {^^re} {,re} {,,re}, with Go's regular expressions. Anything else
// in braces is kept as it is.
//
// Inputs are shell-quoted where they are substituted, so that an input is
// always data and never code; the job number and slot need no quoting.
package replace

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Template is a parsed command template.
type Template struct {
	parts   []part
	hasRef  bool        // the template has a replacement string; if not, inputs are appended
	words   []*Template // with ParseWords or ParseContext: the words
	context bool        // with ParseContext: a word with a replacement string is repeated per input
	total   int         // the number of jobs, for {##} and {0#}: see WithTotal
	err     error       // the first bad replacement string
	parse   func(Options) *Template
	opts    Options
}

type kind uint8

const (
	literal   kind = iota
	input          // {} {1} {-1} {name}, with a modifier
	seq            // {#}
	slot           // {%}
	total          // {##}
	paddedSeq      // {0#}
)

type part struct {
	kind kind
	text string              // literal; else the replacement string as written, between its braces
	pos  int                 // 0: all inputs; n > 0: the n-th; n < 0: the n-th from the end
	fn   func(string) string // the modifier, or nil
}

// Options change how a template is parsed.
type Options struct {
	// Input, if not empty, replaces {} as the string that stands for the
	// whole input (GNU parallel's -I).
	Input string
	// Plus adds GNU parallel's --plus replacement strings: {+/} {+.} {..}
	// {...} {/..} {/...} {+..} {+...}, {##} (the number of jobs), {0#}
	// (the job's number, zero-padded), {slot} {host} {sshlogin} (the job's
	// $PARALLEL_JOBSLOT, $PARALLEL_SSHHOST, $PARALLEL_SSHLOGIN), and those
	// after bash's ${...}:
	// {:-str} {:n} {:n:m} {#re} {##re} {%re} {%%re} {/re/str} {/#re/str}
	// {/%re/str} {//re/str} {^re} {^^re} {,re} {,,re}, with Go's regular
	// expressions.
	Plus bool
	// Names are the inputs' names, from --header: {name} is {n} of the
	// name at index n-1.
	Names []string
}

// Parse parses a command template.
func Parse(s string, opts Options) *Template {
	t := &Template{opts: opts, parse: func(o Options) *Template { return Parse(s, o) }}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{kind: literal, text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		if opts.Input != "" && strings.HasPrefix(s[i:], opts.Input) {
			flush()
			t.parts = append(t.parts, part{kind: input, text: opts.Input})
			t.hasRef = true
			i += len(opts.Input)
			continue
		}
		if s[i] == '{' {
			if end := strings.IndexByte(s[i:], '}'); end > 0 {
				p, ok, err := parseToken(s[i+1:i+end], opts)
				if err != nil && t.err == nil {
					t.err = err
				}
				if ok {
					flush()
					t.parts = append(t.parts, p)
					t.hasRef = true
					i += end + 1
					continue
				}
			}
		}
		lit.WriteByte(s[i])
		i++
	}
	flush()
	return t
}

// ParseWords parses a command given as words, each of which stays one word
// of the command line whatever it holds (GNU parallel's -q): each word is
// expanded with the inputs as they are, then quoted whole.
func ParseWords(words []string, opts Options) *Template {
	t := &Template{words: []*Template{}, opts: opts, parse: func(o Options) *Template { return ParseWords(words, o) }}
	for _, w := range words {
		t.add(Parse(w, opts))
	}
	return t
}

// ParseContext parses a command for GNU parallel's -X (context replace):
// each word of s that holds a replacement string for the input ({} and
// its forms) is repeated for each input, expanded with that input alone
// (x{}y with inputs 1 2 gives x1y x2y); the other words stay as they are.
func ParseContext(s string, opts Options) *Template {
	t := &Template{words: []*Template{}, context: true, opts: opts, parse: func(o Options) *Template { return ParseContext(s, o) }}
	for w := range strings.FieldsSeq(s) {
		t.add(Parse(w, opts))
	}
	return t
}

// add adds a word.
func (t *Template) add(w *Template) {
	t.words = append(t.words, w)
	t.hasRef = t.hasRef || w.hasRef
	if t.err == nil {
		t.err = w.err
	}
}

// Err returns the first replacement string of the template that is not
// valid, such as a --plus string with a bad regular expression.
func (t *Template) Err() error { return t.err }

// WithNames returns the template parsed again with names for the inputs
// (--header), so that {name} stands for the input of that name.
func (t *Template) WithNames(names []string) *Template {
	o := t.opts
	o.Names = names
	nt := t.parse(o)
	nt.total = t.total
	return nt
}

// NeedsTotal reports whether the template has {##} or {0#}: the number of
// jobs, which WithTotal gives it.
func (t *Template) NeedsTotal() bool {
	for _, p := range t.parts {
		if p.kind == total || p.kind == paddedSeq {
			return true
		}
	}
	return slices.ContainsFunc(t.words, (*Template).NeedsTotal)
}

// WithTotal returns the template with n as the number of jobs.
func (t *Template) WithTotal(n int) *Template {
	nt := *t
	nt.total = n
	if t.words != nil {
		nt.words = make([]*Template, len(t.words))
		for i, w := range t.words {
			nt.words[i] = w.WithTotal(n)
		}
	}
	return &nt
}

// wholeRefs counts the replacement strings of the parts that stand for
// every input.
func (t *Template) wholeRefs() int {
	n := 0
	for _, p := range t.parts {
		if p.kind == input && p.pos == 0 {
			n++
		}
	}
	return n
}

// modifiers are GNU parallel's replacement strings after the position, or
// the braces: {.} {/} {//} {/.}; plusModifiers are those of --plus.
var modifiers = map[string]func(string) string{
	"":   nil,
	".":  sub(`\.[^/.]*$`, ""),
	"/":  basename,
	"//": dirname,
	"/.": chain(basename, sub(`\.[^/.]*$`, "")),
}

var plusModifiers = map[string]func(string) string{
	"+/":   orEmpty(`^(.*)/[^/]*$`),
	"+.":   orEmpty(`^.*\.(.*)$`),
	"+..":  orEmpty(`^.*\.([^/.]*\.[^/.]*)$`),
	"+...": orEmpty(`^.*\.([^/.]*\.[^/.]*\.[^/.]*)$`),
	"..":   sub(`\.[^/.]*\.[^/.]*$`, ""),
	"...":  sub(`\.[^/.]*\.[^/.]*\.[^/.]*$`, ""),
	"/..":  chain(basename, sub(`\.[^/.]*\.[^/.]*$`, "")),
	"/...": chain(basename, sub(`\.[^/.]*\.[^/.]*\.[^/.]*$`, "")),
}

// sub returns a function that replaces the first match of re in a string
// with repl.
func sub(re, repl string) func(string) string {
	return rewrite(regexp.MustCompile(re), constant(repl), false)
}

// orEmpty returns a function that gives the first group of re's match, or
// nothing if s does not match.
func orEmpty(re string) func(string) string {
	rx := regexp.MustCompile(re)
	return func(s string) string {
		if m := rx.FindStringSubmatch(s); m != nil {
			return m[1]
		}
		return ""
	}
}

func chain(f, g func(string) string) func(string) string {
	return func(s string) string { return g(f(s)) }
}

// plusVars are --plus's shorthands for variables that each job has.
var plusVars = map[string]string{"slot": "PARALLEL_JOBSLOT", "host": "PARALLEL_SSHHOST", "sshlogin": "PARALLEL_SSHLOGIN"}

// parseToken parses what stands between braces. It reports false for
// anything that is no replacement string, which stays in the command as it
// is, and an error for a --plus string that cannot be one.
func parseToken(tok string, opts Options) (part, bool, error) {
	switch {
	case tok == "#":
		return part{kind: seq, text: tok}, true, nil
	case tok == "%":
		return part{kind: slot, text: tok}, true, nil
	case opts.Plus && tok == "##":
		return part{kind: total, text: tok}, true, nil
	case opts.Plus && tok == "0#":
		return part{kind: paddedSeq, text: tok}, true, nil
	case opts.Plus && plusVars[tok] != "" && !slices.Contains(opts.Names, tok):
		// The job's shell reads them, as GNU parallel has it.
		return part{kind: literal, text: "${" + plusVars[tok] + "}"}, true, nil
	}
	// A position: n, -n, or a name of --header.
	i := 0
	if i < len(tok) && tok[i] == '-' {
		i++
	}
	digits := i
	for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
		i++
	}
	pos := 0
	switch {
	case i > digits:
		n, err := strconv.Atoi(tok[:i])
		if err != nil || n == 0 {
			return part{}, false, nil
		}
		pos = n
	case opts.Input != "" && tok == "":
		return part{}, false, nil // -I renamed {}
	default:
		i = 0
		if pos = named(tok, opts.Names); pos > 0 {
			i = len(opts.Names[pos-1])
		}
	}
	if i == 0 {
		// A name's own modifier: the longest name that leaves one.
		for n, name := range opts.Names {
			if name != "" && strings.HasPrefix(tok, name) && len(name) > i {
				if _, ok, _ := modifier(tok[len(name):], opts.Plus); ok {
					pos, i = n+1, len(name)
				}
			}
		}
	}
	fn, ok, err := modifier(tok[i:], opts.Plus)
	if !ok || err != nil {
		return part{}, false, err
	}
	return part{kind: input, text: tok, pos: pos, fn: fn}, true, nil
}

// named returns the position of the input named tok, or 0.
func named(tok string, names []string) int {
	if n := slices.Index(names, tok); n >= 0 && tok != "" {
		return n + 1
	}
	return 0
}

// modifier returns the function of a replacement string's modifier: what
// follows the position, or the whole of what is between the braces.
func modifier(mod string, plus bool) (func(string) string, bool, error) {
	if fn, ok := modifiers[mod]; ok {
		return fn, true, nil
	}
	if !plus {
		return nil, false, nil
	}
	if fn, ok := plusModifiers[mod]; ok {
		return fn, true, nil
	}
	return bashModifier(mod)
}

// bashModifier parses the --plus strings made after bash's ${var...}.
func bashModifier(mod string) (func(string) string, bool, error) {
	if def, ok := strings.CutPrefix(mod, ":-"); ok && def != "" {
		return func(s string) string {
			if s == "" || s == "0" { // as Perl's ||= has it
				return def
			}
			return s
		}, true, nil
	}
	if rest, ok := strings.CutPrefix(mod, ":"); ok {
		from, n, hasN := strings.Cut(rest, ":")
		a, err1 := strconv.Atoi(from)
		b, err2 := strconv.Atoi(n)
		if err1 == nil && a >= 0 && (!hasN || err2 == nil && b >= 0) {
			return func(s string) string {
				s = s[min(a, len(s)):]
				if hasN {
					s = s[:min(b, len(s))]
				}
				return s
			}, true, nil
		}
		return nil, false, nil
	}
	// The forms with a regular expression, longest prefix first: where
	// the expression must match, as bash and GNU parallel have it, and
	// what becomes of each match (or of the first only).
	forms := []struct {
		prefix, anchored string
		repl, all        bool // re/str; every match
		change           func(match, repl string) string
	}{
		{"##", `^(?:%s)`, false, false, drop},
		{"#", `^(?U:%s)`, false, false, drop}, // the shortest
		{"%%", `(?:%s)$`, false, false, drop},
		{"%", `^(.*)(?U:%s)$`, false, false, nil}, // the shortest: after as much as can come before it
		{"/#", `^(?:%s)`, true, true, put},
		{"/%", `(?:%s)$`, true, true, put},
		{"//", `(?:%s)`, true, true, put},
		{"/", `(?:%s)`, true, false, put},
		{"^^", `(?:%s)`, false, true, upper},
		{"^", `^(?:%s)`, false, false, upper},
		{",,", `(?:%s)`, false, true, lower},
		{",", `^(?:%s)`, false, false, lower},
	}
	for _, f := range forms {
		re, ok := strings.CutPrefix(mod, f.prefix)
		if !ok || re == "" {
			continue
		}
		var repl string
		if f.repl {
			if re, repl, ok = strings.Cut(re, "/"); !ok || re == "" {
				continue
			}
		}
		rx, err := regexp.Compile("(?s)" + fmt.Sprintf(f.anchored, re))
		if err != nil {
			return nil, false, fmt.Errorf("{%s}: %v", mod, err)
		}
		if f.change == nil {
			return func(s string) string { return rx.ReplaceAllString(s, "$1") }, true, nil
		}
		return rewrite(rx, func(m string) string { return f.change(m, repl) }, f.all), true, nil
	}
	return nil, false, nil
}

func drop(string, string) string            { return "" }
func put(_, repl string) string             { return repl }
func upper(match, _ string) string          { return strings.ToUpper(match) }
func lower(match, _ string) string          { return strings.ToLower(match) }
func constant(s string) func(string) string { return func(string) string { return s } }

// rewrite returns a function that changes the first match of rx in a
// string, or every one.
func rewrite(rx *regexp.Regexp, change func(string) string, all bool) func(string) string {
	return func(s string) string {
		if all {
			return rx.ReplaceAllStringFunc(s, change)
		}
		loc := rx.FindStringIndex(s)
		if loc == nil {
			return s
		}
		return s[:loc[0]] + change(s[loc[0]:loc[1]]) + s[loc[1]:]
	}
}

// HasReplacement reports whether the template has a replacement string.
// When it has none, [Template.Expand] appends the inputs, as GNU parallel
// does.
func (t *Template) HasReplacement() bool { return t.hasRef }

// MaxPos is the highest n of the {n} strings in the template, 0 if none.
func (t *Template) MaxPos() int {
	m := 0
	for _, p := range t.parts {
		m = max(m, p.pos) // {-n} counts from the end: it asks for no more inputs
	}
	for _, w := range t.words {
		m = max(m, w.MaxPos())
	}
	return m
}

// Expand returns the command line for a job with the given inputs,
// sequence number and slot. With raw set, inputs are substituted as they
// are, unquoted, so the shell interprets them as code.
func (t *Template) Expand(inputs []string, seqNum, slotNum int, raw bool) string {
	var b strings.Builder
	quote := Quote
	if raw {
		quote = func(s string) string { return s }
	}
	switch {
	case t.context:
		sep := ""
		for _, w := range t.words {
			if w.wholeRefs() == 0 {
				b.WriteString(sep)
				w.expand(&b, nil, seqNum, slotNum, quote)
				sep = " "
				continue
			}
			for _, in := range inputs {
				b.WriteString(sep)
				w.expand(&b, []string{in}, seqNum, slotNum, quote)
				sep = " "
			}
		}
	case t.words != nil:
		for i, w := range t.words {
			if i > 0 {
				b.WriteByte(' ')
			}
			var word strings.Builder
			w.expand(&word, inputs, seqNum, slotNum, func(s string) string { return s })
			b.WriteString(Quote(word.String()))
		}
	default:
		t.expand(&b, inputs, seqNum, slotNum, quote)
	}
	if !t.hasRef {
		for _, in := range inputs {
			b.WriteByte(' ')
			b.WriteString(quote(in))
		}
	}
	return b.String()
}

// expand writes the template's parts with the inputs, each quoted with
// quote.
func (t *Template) expand(b *strings.Builder, inputs []string, seqNum, slotNum int, quote func(string) string) {
	for _, p := range t.parts {
		switch p.kind {
		case literal:
			b.WriteString(p.text)
		case seq:
			b.WriteString(strconv.Itoa(seqNum))
		case slot:
			b.WriteString(strconv.Itoa(slotNum))
		case total:
			b.WriteString(strconv.Itoa(t.total))
		case paddedSeq:
			fmt.Fprintf(b, "%0*d", len(strconv.Itoa(t.total)), seqNum)
		default:
			if p.pos == 0 {
				for i, in := range inputs {
					if i > 0 {
						b.WriteByte(' ')
					}
					b.WriteString(quote(p.apply(in)))
				}
				continue
			}
			i := p.pos - 1
			if p.pos < 0 {
				i = len(inputs) + p.pos
			}
			if i >= 0 && i < len(inputs) {
				b.WriteString(quote(p.apply(inputs[i])))
			} // a position past the inputs (a missing column) is nothing, as in GNU parallel
		}
	}
}

// apply applies the part's modifier to an input.
func (p part) apply(s string) string {
	if p.fn == nil {
		return s
	}
	return p.fn(s)
}

func basename(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func dirname(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		if i == 0 {
			return "/"
		}
		return s[:i]
	}
	return "."
}

// Quote quotes s for a POSIX shell so that it is one word with exactly the
// value s. Strings of only safe characters are left as they are.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_./+", c) >= 0) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	// GNU parallel's quoting, so that --dry-run and the job log read the
	// same: a quote ends the quoted run, comes double-quoted, and another
	// run starts.
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// String returns the template as written, with {} for the whole input.
func (t *Template) String() string {
	if t.words != nil {
		words := make([]string, len(t.words))
		for i, w := range t.words {
			words[i] = w.String()
		}
		return strings.Join(words, " ")
	}
	var b strings.Builder
	for _, p := range t.parts {
		switch {
		case p.kind == literal:
			b.WriteString(p.text)
		case p.text == t.opts.Input && t.opts.Input != "":
			b.WriteString("{}")
		default:
			b.WriteString("{" + p.text + "}")
		}
	}
	return b.String()
}
