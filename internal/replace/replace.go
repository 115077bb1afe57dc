// Package replace parses GNU parallel's replacement strings in a command
// template and expands them for one job.
//
// The strings are {} (the whole input), {.} (without its extension), {/}
// (basename), {//} (dirname), {/.} (basename without extension), {#} (the
// job's sequence number), {%} (its job slot), and {n}, {n.}, {n/}, {n//},
// {n/.} for the n-th input of a job that has several. Anything else in
// braces is kept as it is.
//
// Inputs are shell-quoted where they are substituted, so that an input is
// always data and never code; the job number and slot need no quoting.
package replace

import (
	"path"
	"strconv"
	"strings"
)

// Template is a parsed command template.
type Template struct {
	parts   []part
	hasRef  bool        // the template has a replacement string; if not, inputs are appended
	words   []*Template // with ParseWords or ParseContext: the words
	context bool        // with ParseContext: a word with a replacement string is repeated per input
}

type kind uint8

const (
	literal  kind = iota
	whole         // {} {1}
	noExt         // {.}
	base          // {/}
	dir           // {//}
	baseNoEx      // {/.}
	seq           // {#}
	slot          // {%}
)

type part struct {
	kind kind
	text string // literal
	pos  int    // 0: all inputs; n: the n-th
}

// Options change how a template is parsed.
type Options struct {
	// Input, if not empty, replaces {} as the string that stands for the
	// whole input (GNU parallel's -I).
	Input string
}

// Parse parses a command template.
func Parse(s string, opts Options) *Template {
	t := &Template{}
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
			t.parts = append(t.parts, part{kind: whole})
			t.hasRef = true
			i += len(opts.Input)
			continue
		}
		if s[i] == '{' {
			if end := strings.IndexByte(s[i:], '}'); end > 0 {
				if p, ok := parseToken(s[i+1:i+end], opts.Input == ""); ok {
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
	t := &Template{words: []*Template{}}
	for _, w := range words {
		wt := Parse(w, opts)
		t.words = append(t.words, wt)
		t.hasRef = t.hasRef || wt.hasRef
	}
	return t
}

// ParseContext parses a command for GNU parallel's -X (context replace):
// each word of s that holds a replacement string for the input ({} and
// its forms) is repeated for each input, expanded with that input alone
// (x{}y with inputs 1 2 gives x1y x2y); the other words stay as they are.
func ParseContext(s string, opts Options) *Template {
	t := &Template{words: []*Template{}, context: true}
	for w := range strings.FieldsSeq(s) {
		wt := Parse(w, opts)
		t.words = append(t.words, wt)
		t.hasRef = t.hasRef || wt.hasRef
	}
	return t
}

// wholeRefs counts the replacement strings of the parts that stand for
// every input.
func (t *Template) wholeRefs() int {
	n := 0
	for _, p := range t.parts {
		if p.kind != literal && p.kind != seq && p.kind != slot && p.pos == 0 {
			n++
		}
	}
	return n
}

// parseToken parses what stands between braces.
func parseToken(tok string, bare bool) (part, bool) {
	switch tok {
	case "#":
		return part{kind: seq}, true
	case "%":
		return part{kind: slot}, true
	}
	digits := 0
	for digits < len(tok) && tok[digits] >= '0' && tok[digits] <= '9' {
		digits++
	}
	pos := 0
	if digits > 0 {
		n, err := strconv.Atoi(tok[:digits])
		if err != nil || n < 1 {
			return part{}, false
		}
		pos = n
	} else if !bare && tok == "" {
		return part{}, false // -I renamed {}
	}
	var k kind
	switch tok[digits:] {
	case "":
		k = whole
	case ".":
		k = noExt
	case "/":
		k = base
	case "//":
		k = dir
	case "/.":
		k = baseNoEx
	default:
		return part{}, false
	}
	return part{kind: k, pos: pos}, true
}

// HasReplacement reports whether the template has a replacement string.
// When it has none, [Template.Expand] appends the inputs, as GNU parallel
// does.
func (t *Template) HasReplacement() bool { return t.hasRef }

// MaxPos is the highest n of the {n} strings in the template, 0 if none.
func (t *Template) MaxPos() int {
	m := 0
	for _, p := range t.parts {
		m = max(m, p.pos)
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
		default:
			if p.pos == 0 {
				for i, in := range inputs {
					if i > 0 {
						b.WriteByte(' ')
					}
					b.WriteString(quote(transform(p.kind, in)))
				}
			} else if p.pos <= len(inputs) {
				b.WriteString(quote(transform(p.kind, inputs[p.pos-1])))
			} // a position past the inputs (a missing column) is nothing, as in GNU parallel
		}
	}
}

// transform applies one replacement string's modifier to an input.
func transform(k kind, s string) string {
	switch k {
	case noExt:
		return trimExt(s)
	case base:
		return basename(s)
	case dir:
		if i := strings.LastIndexByte(s, '/'); i >= 0 {
			if i == 0 {
				return "/"
			}
			return s[:i]
		}
		return "."
	case baseNoEx:
		return trimExt(basename(s))
	}
	return s
}

func basename(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// trimExt removes the extension of the last path element, as {.} does:
// "dir.d/file.tar.gz" becomes "dir.d/file.tar", and ".bashrc" stays.
func trimExt(s string) string {
	ext := path.Ext(basename(s))
	if ext == "" || ext == basename(s) {
		return s
	}
	return s[:len(s)-len(ext)]
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
		switch p.kind {
		case literal:
			b.WriteString(p.text)
		case seq:
			b.WriteString("{#}")
		case slot:
			b.WriteString("{%}")
		default:
			b.WriteByte('{')
			if p.pos > 0 {
				b.WriteString(strconv.Itoa(p.pos))
			}
			b.WriteString([...]string{whole: "", noExt: ".", base: "/", dir: "//", baseNoEx: "/."}[p.kind])
			b.WriteByte('}')
		}
	}
	return b.String()
}
