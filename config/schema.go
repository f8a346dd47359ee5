package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// source is what Parse knows about where each value came from, so that a message can name
// the line of a mistake and never quote a value that came from the environment.
type source struct {
	// lines maps a field's path ("approvals.rules[0].quorum") to its line in the file.
	lines map[string]int
	// vars maps the path of a value that ${VAR} expansion filled to the variables it used.
	vars map[string][]string
	// values maps the same paths to the expanded text, to take it out of messages.
	values map[string]string
	// raw maps the same paths to their text as written, to tell which part the file itself
	// holds (a connection string's password, say).
	raw map[string]string
	// badValues are the mistakes walk found in values that the rest of the config can be
	// checked without.
	badValues []string
	// unset are the paths whose ${VAR} is not set.
	unset []string
}

// newSource starts the record of where each value came from.
func newSource() *source {
	return &source{lines: map[string]int{}, vars: map[string][]string{}, values: map[string]string{}, raw: map[string]string{}}
}

// at is path with its line, as messages name a field: "approvals.quorum (line 7)".
func (s *source) at(path string) string {
	if l, ok := s.lines[path]; ok {
		return fmt.Sprintf("%s (line %d)", path, l)
	}
	return path
}

// show is the value at path as a message may quote it: in quotes, or, when it came from the
// environment, only the names of the variables it came from (it may be a secret).
func (s *source) show(path, value string) string {
	if vs, ok := s.vars[path]; ok {
		return "the value of ${" + strings.Join(vs, "}, ${") + "}"
	}
	return strconv.Quote(value)
}

// leadingPath is the field a message starts with.
var leadingPath = regexp.MustCompile(`^[a-z_]+(?:\[[0-9]+\]|\.[a-z_]+)*`)

// annotate gives a message that starts with a field's path the field's line, and replaces any
// quoted expanded value under that field with the names of its variables. Messages built
// elsewhere (the approvals policy's) quote values they cannot know came from the environment.
func (s *source) annotate(msg string) string {
	p := leadingPath.FindString(msg)
	if p == "" {
		return msg
	}
	rest := msg[len(p):]
	for e, v := range s.values {
		if e == p || strings.HasPrefix(e, p+".") || strings.HasPrefix(e, p+"[") {
			rest = strings.ReplaceAll(rest, strconv.Quote(v), s.show(e, v))
		}
	}
	if strings.HasPrefix(rest, " (line ") {
		return p + rest
	}
	return s.at(p) + rest
}

// walk checks the YAML tree n against the Go type t that it will be decoded into, the way
// the decoder would but with messages for people: the path and line of every unknown key
// (with the closest known one), and of every value of the wrong kind. It records every
// field's line on the way. A tree walk passes decodes without error.
func (s *source) walk(n *yaml.Node, t reflect.Type, path string, errs *[]string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // an empty value leaves the field at its default
	}
	fail := func(format string, a ...any) {
		*errs = append(*errs, fmt.Sprintf("%s (line %d): ", displayPath(path), n.Line)+fmt.Sprintf(format, a...))
	}
	if t == reflect.TypeFor[Duration]() {
		if n.Kind != yaml.ScalarNode {
			fail("expected a duration like 30m, 4h or 2d, got %s", kind(n))
			return
		}
		if msg := durationProblem(path, strings.TrimSpace(n.Value), s.describe(path, n)); msg != "" {
			sep := ": "
			if strings.HasPrefix(msg, "must") { // a sentence about the field: no colon
				sep = " "
			}
			// The rest of the config does not depend on a duration, so it is decoded as unset
			// and checked too: every mistake is reported at once.
			s.badValues = append(s.badValues, fmt.Sprintf("%s (line %d)%s%s", path, n.Line, sep, msg))
			n.Tag, n.Value, n.Style = "!!null", "", 0
		}
		return
	}
	if t == reflect.TypeFor[Secret]() {
		if n.Kind != yaml.ScalarNode {
			fail("expected text (a ${VAR}), got %s", kind(n))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			fail("expected a mapping with the keys %s, got %s", strings.Join(keysOf(t), ", "), s.describe(path, n))
			return
		}
		s.walkMapping(n, t, path, errs, map[string]int{})
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			hint := ""
			if n.Kind == yaml.ScalarNode && !s.expanded(path) {
				hint = fmt.Sprintf(" (write [%s] for a list of one)", n.Value)
			}
			fail("expected a list, got %s%s", s.describe(path, n), hint)
			return
		}
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			s.lines[p] = c.Line
			s.walk(c, t.Elem(), p, errs)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			fail("expected text, got %s", kind(n))
		}
	case reflect.Int, reflect.Bool:
		want := map[reflect.Kind]string{reflect.Int: "a whole number", reflect.Bool: "true or false"}[t.Kind()]
		if n.Kind != yaml.ScalarNode {
			fail("expected %s, got %s", want, kind(n))
			return
		}
		// The decoder is the judge of what fits (0x10, 1_000, yes/no are YAML 1.1 matters).
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			fail("expected %s, got %s", want, s.describe(path, n))
		}
	}
}

// walkMapping checks the keys of a mapping against the fields of struct t; seen holds the keys
// already met, with their lines, across merged ("<<") mappings.
func (s *source) walkMapping(n *yaml.Node, t reflect.Type, path string, errs *[]string, seen map[string]int) {
	fields := fieldsOf(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		if k.ShortTag() == "!!merge" {
			// "<<: *defaults" takes the keys of another mapping (or of a list of them).
			if v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			ms := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				ms = v.Content
			}
			for _, m := range ms {
				if m.Kind == yaml.AliasNode && m.Alias != nil {
					m = m.Alias
				}
				if m.Kind == yaml.MappingNode {
					s.walkMapping(m, t, path, errs, seen)
				}
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			*errs = append(*errs, fmt.Sprintf("%s (line %d): a key must be a plain name, not %s", displayPath(path), k.Line, kind(k)))
			continue
		}
		ft, ok := fields[k.Value]
		if !ok {
			*errs = append(*errs, fmt.Sprintf("%s (line %d): unknown key%s", p, k.Line, suggest(k.Value, keysOf(t))))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			*errs = append(*errs, fmt.Sprintf("%s (line %d): given twice (first at line %d)", p, k.Line, first))
			continue
		}
		seen[k.Value] = k.Line
		s.lines[p] = k.Line
		s.walk(v, ft, p, errs)
	}
}

// fieldsOf maps the YAML keys of struct t to their types, the way the decoder reads the
// tags (yamlFields' rules).
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for _, f := range yamlFields(t) {
		m[f.name] = f.typ
	}
	return m
}

// keysOf is the YAML keys of struct t in the order of its fields, for messages.
func keysOf(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case strings.Contains(opts, "inline"):
			for _, k := range keysOf(f.Type) {
				if !slices.Contains(out, k) {
					out = append(out, k)
				}
			}
		default:
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

// suggest is the end of an unknown-key message: the closest known key when it is close
// enough to be a slip of the fingers, or else the keys that are allowed here.
func suggest(key string, known []string) string {
	best, bestD := "", 0
	for _, k := range known {
		d := distance(strings.ToLower(key), k)
		if best == "" || d < bestD {
			best, bestD = k, d
		}
	}
	// Two edits is as far as a typo goes; on short keys, less than half the key, so that
	// "foo" does not become "log".
	if best != "" && bestD <= 2 && 2*bestD < len(best) {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	known = slices.Clone(known)
	slices.Sort(known)
	return "; the keys here are " + strings.Join(known, ", ")
}

// distance is the edit distance between a and b counting an insertion, a deletion, a
// substitution or a swap of two neighbours as one edit (optimal string alignment): the swap
// is the commonest typo ("usres").
func distance(a, b string) int {
	x, y := []rune(a), []rune(b)
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}

// written is the text at path as the file has it: before ${VAR} expansion, or value.
func (s *source) written(path, value string) string {
	if r, ok := s.raw[path]; ok {
		return r
	}
	return value
}

func (s *source) expanded(path string) bool { _, ok := s.vars[path]; return ok }

// describe is what a wrong value is, for "expected X, got Y": a scalar quoted unless it came
// from the environment.
func (s *source) describe(path string, n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		return kind(n)
	}
	return s.show(path, short(n.Value))
}

// short keeps a quoted value to a readable length.
func short(v string) string {
	if r := []rune(v); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return v
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping (key: value)"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a value"
}

func displayPath(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

var lineOf = regexp.MustCompile(`^[^ ]* \(line ([0-9]+)\)`)

// byLine puts messages in the order of the file, those naming no line last, so that a
// reader fixes them from the top.
func byLine(msgs []string) []string {
	line := func(m string) int {
		if sm := lineOf.FindStringSubmatch(m); sm != nil {
			n, _ := strconv.Atoi(sm[1])
			return n
		}
		return int(^uint(0) >> 1)
	}
	slices.SortStableFunc(msgs, func(a, b string) int { return line(a) - line(b) })
	return msgs
}
