package config

import (
	"fmt"
	"reflect"
	"strings"

	"mongobot/commands"
	"mongobot/secret"
)

// SchemaKey is one key of the config file as the decoder reads it: its path with list
// indices written [] ("connectors[].jit.max_for"), the Go type its value decodes into, and
// whether it is a credential, which the config keeps as a secret.String.
type SchemaKey struct {
	Path       string
	Type       reflect.Type
	Credential bool
}

// Block reports whether the key holds keys of its own (a mapping, or a list of mappings).
func (k SchemaKey) Block() bool { return structOf(k.Type) != nil }

// Schema is every key of the config file, found by walking the types the file decodes into
// (fileYAML and what it holds), in the order of their fields. It is the reference's list of
// keys, so that a key added to the types and not to the reference fails a test.
func Schema() []SchemaKey {
	var out []SchemaKey
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for _, f := range yamlFields(t) {
			p := f.name
			if path != "" {
				p = path + "." + f.name
			}
			out = append(out, SchemaKey{Path: p, Type: f.typ, Credential: f.credential})
			if st := structOf(f.typ); st != nil {
				if deref(f.typ).Kind() == reflect.Slice {
					p += "[]"
				}
				walk(st, p)
			}
		}
	}
	walk(reflect.TypeFor[fileYAML](), "")
	return out
}

type yamlField struct {
	name       string
	typ        reflect.Type
	credential bool
}

// yamlFields are the keys of struct t as the decoder reads them, in field order: inline
// structs contribute their keys, "-" fields are not read from YAML, and a key of the outer
// struct hides the same key of an inline one. The schema's walk (fieldsOf) and the reference
// both read the config's types through it. A credential is decoded as text by a field of a "twin" struct (connectorYAML,
// etcdYAML) into a secret.String field of the same name that the YAML does not read: that
// pairing, or the Secret type, is what marks a key as a credential.
func yamlFields(t reflect.Type) []yamlField {
	var out []yamlField
	seen := map[string]bool{}
	hidden := map[string]bool{} // Go names of secret.String fields read through a twin
	for i := range t.NumField() {
		f := t.Field(i)
		if name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == "" && strings.Contains(opts, "inline") {
			for j := range f.Type.NumField() {
				g := f.Type.Field(j)
				if g.Tag.Get("yaml") == "-" && g.Type == reflect.TypeFor[secret.String]() {
					hidden[g.Name] = true
				}
			}
		}
	}
	var inline []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case strings.Contains(opts, "inline"):
			inline = append(inline, f.Type)
		default:
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			seen[name] = true
			cred := hidden[f.Name] || deref(f.Type) == reflect.TypeFor[Secret]()
			out = append(out, yamlField{name, f.Type, cred})
		}
	}
	// Inline structs' keys come first in the file's reading order, as they are the main
	// struct; the outer struct's own keys (the twins) hide theirs.
	var in []yamlField
	for _, it := range inline {
		for _, f := range yamlFields(it) {
			if !seen[f.name] {
				seen[f.name] = true
				in = append(in, f)
			}
		}
	}
	return append(in, out...)
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// structOf is the struct whose keys a value of type t holds (itself, or its list's
// element), or nil for a value without keys of its own. Secret is a struct in Go and text in
// the file.
func structOf(t reflect.Type) reflect.Type {
	t = deref(t)
	if t.Kind() == reflect.Slice {
		t = deref(t.Elem())
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[Secret]() {
		return nil
	}
	return t
}

// typeName is how the reference names the type of a value.
func typeName(k SchemaKey) string {
	t := deref(k.Type)
	switch {
	case t == reflect.TypeFor[Duration]():
		return "duration (90s, 30m, 4h, 2d)"
	case k.Credential:
		return "text, a credential"
	}
	switch t.Kind() {
	case reflect.String:
		return "text"
	case reflect.Int:
		return "whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.Map:
		return "mapping of names to text"
	case reflect.Struct:
		return "mapping"
	case reflect.Slice:
		if structOf(t) != nil {
			return "list of mappings"
		}
		return "list of text"
	}
	return t.String()
}

// varRule says what the file may hold for a key, as to ${VAR}: every value may use it; a
// credential should (the file then holds none), and a Secret must (Parse refuses a literal).
func varRule(k SchemaKey) string {
	switch {
	case k.Path == "connectors[].connection_string":
		// The string may be written in the file as long as the password in it is not.
		return "required for a password in it (the whole string, or the password alone): a password written in the file is refused"
	case k.Credential:
		return "required: a value written in the file is refused"
	}
	return "allowed"
}

// boundsOf is the range of a key's value: a duration's from durationBounds (the same table
// Parse checks them against), any other's from the reference's own table.
func boundsOf(k SchemaKey, d keyDoc) string {
	if deref(k.Type) == reflect.TypeFor[Duration]() {
		b, ok := durationBounds[k.Path]
		if !ok {
			b = fallbackBounds
		}
		return fmt.Sprintf("%s to %s", commands.FormatDuration(b.min), commands.FormatDuration(b.max))
	}
	switch {
	case d.ints != nil && d.ints.max != 0:
		return fmt.Sprintf("%d to %d", d.ints.min, d.ints.max)
	case d.ints != nil:
		return fmt.Sprintf("at least %d", d.ints.min)
	case len(d.choices) > 0:
		return "one of " + strings.Join(d.choices, ", ")
	}
	return d.bounds
}

// Reference is docs/config.md: every key of Schema, with its type, default, bounds, whether
// ${VAR} is allowed, an example and what it means, one section per block of keys. Keys the
// reference's table does not describe are listed under a heading that says so (a test fails
// on them), never left out.
func Reference() string {
	docs := map[string]keyDoc{}
	for _, d := range keyDocs {
		docs[d.path] = d
	}
	schema := map[string]SchemaKey{}
	for _, k := range Schema() {
		schema[k.Path] = k
	}
	var b strings.Builder
	b.WriteString(referenceIntro)
	// Sections in the order of the table: a block's section opens where the table first
	// names the block, and holds its keys that are not blocks themselves.
	b.WriteString("## Contents\n\n- [Top-level keys](#top-level-keys)\n")
	for _, d := range keyDocs {
		if k, ok := schema[d.path]; ok && k.Block() {
			fmt.Fprintf(&b, "- [`%s`](#%s)\n", blockTitle(k), anchor(blockTitle(k)))
		}
	}
	b.WriteString("\n## Top-level keys\n\n")
	for _, d := range keyDocs {
		if k, ok := schema[d.path]; ok && !strings.Contains(d.path, ".") && !k.Block() {
			writeKey(&b, k, d)
		}
	}
	for _, d := range keyDocs {
		k, ok := schema[d.path]
		if !ok || !k.Block() {
			continue
		}
		title := blockTitle(k)
		fmt.Fprintf(&b, "## `%s`\n\n", title)
		fmt.Fprintf(&b, "Type: %s.\n\n%s\n\n", typeName(k), d.meaning)
		prefix := strings.TrimSuffix(title, "[]") + "."
		if strings.HasSuffix(title, "[]") {
			prefix = title + "."
		}
		for _, e := range keyDocs {
			c, ok := schema[e.path]
			if ok && !c.Block() && strings.HasPrefix(e.path, prefix) && !strings.Contains(e.path[len(prefix):], ".") {
				writeKey(&b, c, e)
			}
		}
	}
	var missing []string
	for _, k := range Schema() {
		if _, ok := docs[k.Path]; !ok {
			missing = append(missing, k.Path)
		}
	}
	if len(missing) > 0 {
		b.WriteString("## Not described yet\n\n")
		for _, p := range missing {
			fmt.Fprintf(&b, "- `%s` (%s)\n", p, typeName(schema[p]))
		}
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

// blockTitle is a block's path as its section names it: a list of mappings with its [].
func blockTitle(k SchemaKey) string {
	if deref(k.Type).Kind() == reflect.Slice {
		return k.Path + "[]"
	}
	return k.Path
}

// anchor is the fragment GitHub gives a heading made of one code span.
func anchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		}
	}
	return b.String()
}

func writeKey(b *strings.Builder, k SchemaKey, d keyDoc) {
	fmt.Fprintf(b, "### `%s`\n\n", k.Path)
	def := d.def
	if def == "" {
		def = "none"
	}
	bounds := boundsOf(k, d)
	if bounds == "" {
		bounds = "none"
	}
	fmt.Fprintf(b, "- Type: %s\n- Default: %s\n- Bounds: %s\n- `${VAR}`: %s\n", typeName(k), def, bounds, varRule(k))
	name := k.Path[strings.LastIndex(k.Path, ".")+1:]
	fmt.Fprintf(b, "- Example: `%s: %s`\n\n%s\n\n", name, d.example, d.meaning)
}

const referenceIntro = `# Config reference

<!-- Generated by config.Reference from the config's Go types and the table in
config/reference_docs.go. Do not edit: run UPDATE_GOLDEN=1 go test ./config -run TestReference. -->

The bot reads one YAML file: ` + "`BOT_CONFIG`" + `, default ` + "`bot.yaml`" + `. This page lists every key it
reads, generated from the types the file is decoded into, so a key missing here is a failing
test. [examples/bot.yaml](../examples/bot.yaml) uses every key, and a test loads it.

How to read an entry:

- The path names lists with ` + "`[]`" + `: ` + "`connectors[].jit.max_for`" + ` is the ` + "`max_for`" + ` key of the
  ` + "`jit`" + ` mapping of any connector in the ` + "`connectors`" + ` list.
- **Default** is what an absent key (or an empty value) means.
- **Bounds** are checked when the file is loaded; a value outside them stops the bot at start,
  and ` + "`mongobot check`" + ` prints the key's path and line.
- **${VAR}**: any value may be written ` + "`${NAME}`" + `, taken from the environment when the file is
  loaded (several in one value, or with text around them, are allowed). A variable that is not
  set is a mistake naming the key. Messages about a value that came from the environment name
  the variable, never the value. Credentials must come this way (or from a file, where a key
  has a ` + "`_file`" + ` form): one written in the file, a password inside a connection string
  included, is refused, so that backups, diffs and screenshares of the file hold none.
- An unknown key is a mistake (with the closest known key suggested), not ignored.
- Durations are a whole number and a unit: ` + "`90s`" + `, ` + "`30m`" + `, ` + "`4h`" + `, ` + "`2d`" + `.
- Slack ids, not names: channels ` + "`C…`" + ` (or ` + "`G…`" + `), people ` + "`U…`" + ` (or ` + "`W…`" + `), user groups ` + "`S…`" + `.

`
