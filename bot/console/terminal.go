package console

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Style is what the console's terminal may be sent besides text. The zero value, plain
// text, is right for a pipe or a file: a transcript must not fill with escape sequences.
type Style struct {
	// Bold shows *bold*, _italic_ and ~strike~ with ANSI attributes (a terminal only).
	Bold bool
	// Color colours headers, ✓ ✗ ⚠ and errors (a terminal only, and never with NO_COLOR:
	// https://no-color.org).
	Color bool
}

// ANSI select-graphic-rendition pairs; each "off" resets only its own attribute, so styles
// nest (bold inside a coloured line) without one ending the other.
const (
	sgrBold, sgrBoldOff     = "\x1b[1m", "\x1b[22m"
	sgrItalic, sgrItalicOff = "\x1b[3m", "\x1b[23m"
	sgrStrike, sgrStrikeOff = "\x1b[9m", "\x1b[29m"
	sgrRed, sgrGreen        = "\x1b[31m", "\x1b[32m"
	sgrYellow, sgrCyan      = "\x1b[33m", "\x1b[36m"
	sgrColorOff             = "\x1b[39m"
)

// emoji are the shortcodes the bot writes, as symbols a terminal shows, with their colour.
// Others are left as typed: a stranger ":foo:" reads fine as text.
var emoji = map[string]struct{ symbol, color string }{
	"white_check_mark":       {"✓", sgrGreen},
	"heavy_check_mark":       {"✓", sgrGreen},
	"x":                      {"✗", sgrRed},
	"no_entry":               {"⛔", sgrRed},
	"warning":                {"⚠", sgrYellow},
	"rotating_light":         {"🚨", sgrRed},
	"hourglass":              {"⏳", ""},
	"hourglass_flowing_sand": {"⏳", ""},
	"key":                    {"🔑", ""},
	"lock":                   {"🔒", ""},
	"unlock":                 {"🔓", ""},
	"calendar":               {"📅", ""},
	"double_vertical_bar":    {"⏸", sgrYellow},
	"information_source":     {"ℹ", ""},
}

// emphasis is the attribute each mrkdwn marker turns on, and off.
var emphasis = map[byte][2]string{'*': {sgrBold, sgrBoldOff}, '_': {sgrItalic, sgrItalicOff}, '~': {sgrStrike, sgrStrikeOff}}

var shortcode = regexp.MustCompile(`^:([a-z0-9_+-]+):`)

// termRenderer turns Slack mrkdwn into text for a terminal. Its input is mrkdwn as the bot
// builds it, where everything a person typed is entity-escaped (see esc): so a `<…>` is markup
// the bot made, and entities are undone last, as the text is written, never to be read as
// markup again. Every piece of text goes through clean, so no typed or server-sent byte can
// reach the terminal as a control sequence.
type termRenderer struct {
	style   Style
	user    func(id string) string // a user id as shown: a name, or the id
	channel func(id string) string // a channel id as shown, without "#"
}

func (r termRenderer) render(s string) string {
	var b strings.Builder
	r.inline(&b, s)
	return b.String()
}

// inline renders s, a run of mrkdwn, into b.
func (r termRenderer) inline(b *strings.Builder, s string) {
	prev := ' ' // the last source character: emphasis opens only after a non-word one
	for len(s) > 0 {
		switch c := s[0]; {
		case strings.HasPrefix(s, "```"):
			if end := strings.Index(s[3:], "```"); end >= 0 {
				b.WriteString(r.color(sgrCyan, r.text(s[3:3+end])))
				s, prev = s[6+end:], '`'
				continue
			}
		case c == '`':
			if end := strings.IndexAny(s[1:], "`\n"); end >= 0 && s[1+end] == '`' {
				// On a terminal with attributes a code span shows as itself, in colour or
				// bold; in plain text its backticks are what set it apart.
				switch in := r.text(s[1 : 1+end]); {
				case r.style.Color:
					b.WriteString(r.color(sgrCyan, in))
				case r.style.Bold:
					b.WriteString(r.attr(sgrBold, sgrBoldOff, in))
				default:
					b.WriteString("`" + in + "`")
				}
				s, prev = s[2+end:], '`'
				continue
			}
		case c == '<':
			if end := strings.IndexAny(s[1:], ">\n"); end >= 0 && s[1+end] == '>' {
				b.WriteString(r.angle(s[1 : 1+end]))
				s, prev = s[2+end:], '>'
				continue
			}
		case c == '*' || c == '_' || c == '~':
			if end := closer(s, prev); end > 0 {
				var in strings.Builder
				r.inline(&in, s[1:end])
				a := emphasis[c]
				b.WriteString(r.attr(a[0], a[1], in.String()))
				s, prev = s[end+1:], rune(c)
				continue
			}
		case c == ':':
			if m := shortcode.FindStringSubmatch(s); m != nil {
				if e, ok := emoji[m[1]]; ok {
					b.WriteString(r.color(e.color, e.symbol))
					s, prev = s[len(m[0]):], ':'
					continue
				}
			}
		case c == '&':
			if ent, lit, ok := entity(s); ok {
				b.WriteString(lit)
				s, prev = s[len(ent):], rune(lit[0])
				continue
			}
		}
		ch, n := utf8.DecodeRuneInString(s)
		b.WriteString(clean(s[:n]))
		s, prev = s[n:], ch
	}
}

// closer is the index of the marker that closes the emphasis opened by s[0], or -1. As in
// Slack, the opener follows a non-word character and precedes a non-space; the closer
// follows a non-space, ends the word, and is on the same line: so snake_case and 2*3*4 stay
// as they are.
func closer(s string, prev rune) int {
	mark := s[0]
	if isWord(prev) || len(s) < 3 || s[1] == ' ' || s[1] == '\n' || s[1] == mark {
		return -1
	}
	for i := 2; i < len(s); i++ {
		switch s[i] {
		case '\n':
			return -1
		case mark:
			if s[i-1] == ' ' {
				continue
			}
			if i+1 < len(s) {
				next, _ := utf8.DecodeRuneInString(s[i+1:])
				if isWord(next) {
					continue
				}
			}
			return i
		}
	}
	return -1
}

func isWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// entity is the entity at the start of s, among the three esc makes, and its character.
func entity(s string) (ent, lit string, ok bool) {
	for _, e := range [][2]string{{"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}} {
		if strings.HasPrefix(s, e[0]) {
			return e[0], e[1], true
		}
	}
	return "", "", false
}

// angle renders the inside of a <…>: a mention, a channel, a special mention or a link.
func (r termRenderer) angle(s string) string {
	target, label, _ := strings.Cut(s, "|")
	switch {
	case strings.HasPrefix(target, "@"):
		id := target[1:]
		if n := r.user(id); n != id || label == "" {
			return "@" + r.text(n)
		}
		return "@" + r.text(strings.TrimPrefix(label, "@"))
	case strings.HasPrefix(target, "#"):
		id := target[1:]
		if n := r.channel(id); n != id || label == "" {
			return "#" + r.text(n)
		}
		return "#" + r.text(label)
	case strings.HasPrefix(target, "!"):
		// <!here>, <!channel>, <!subteam^S0DBAS|@dbas>, <!date^…|fallback>: the label when
		// there is one, else the name after "!" as an @-mention. A terminal notifies nobody.
		if label != "" {
			return r.text(label)
		}
		name, _, _ := strings.Cut(target[1:], "^")
		return "@" + r.text(name)
	}
	url := r.text(target)
	if label == "" || label == target {
		return url
	}
	if "mailto:"+label == target {
		return r.text(label)
	}
	return r.text(label) + " (" + url + ")"
}

// text is a piece of mrkdwn taken as literal text: entities undone, controls made visible.
func (r termRenderer) text(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		if ent, lit, ok := entity(s); ok {
			b.WriteString(lit)
			s = s[len(ent):]
			continue
		}
		_, n := utf8.DecodeRuneInString(s)
		b.WriteString(clean(s[:n]))
		s = s[n:]
	}
	return b.String()
}

func (r termRenderer) attr(on, off, s string) string {
	if !r.style.Bold || s == "" {
		return s
	}
	return on + s + off
}

func (r termRenderer) color(c, s string) string {
	if !r.style.Color || c == "" || s == "" {
		return s
	}
	return c + s + sgrColorOff
}

// clean makes s safe to write to a terminal: control characters (C0 but newline and tab, DEL,
// C1, which includes the 8-bit CSI), bytes that are not UTF-8, and the bidirectional
// overrides that reorder what a line seems to say are written as visible escapes (\x1b,
// \u202e) instead of being obeyed by the terminal.
func clean(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || isBidi(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// isBidi is whether r changes the direction of the text after it ("Trojan Source").
func isBidi(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}
