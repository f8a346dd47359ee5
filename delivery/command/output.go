package command

import (
	"bytes"
	"regexp"
	"strings"
	"unicode"

	"mongobot/secret"
)

const (
	keepBytes = 4 << 10 // how much of the program's output is kept, from the end
	keepLines = 5       // how many of the last lines reach the error
	lineRunes = 300     // how long each of them may be
)

// ansi matches terminal colour and cursor sequences, which would show as "[31m" in Slack
// once their escape character is removed.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// tail keeps the last keepBytes of what the program writes on standard output and error.
// os/exec calls Write from one goroutine at a time when Stdout and Stderr are the same
// writer, so it needs no lock.
type tail struct {
	buf []byte
	cut bool // bytes before buf were dropped
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - keepBytes; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.cut = true
	}
	return len(p), nil
}

// summary returns the last few lines of output, fit for an error shown in Slack: the password
// (as is, and as it appears inside the JSON the program was given) replaced by REDACTED, and
// control characters removed.
func (t *tail) summary(password secret.String) string {
	b := t.buf
	if i := bytes.IndexByte(b, '\n'); t.cut && i >= 0 {
		b = b[i+1:] // a line cut at its start might hold the end of a password Scrub cannot match
	} else if t.cut {
		return ""
	}
	quoted, _ := encode(password.Reveal()) // a string always encodes: "…"\n
	escaped := secret.New(string(quoted[1 : len(quoted)-2]))
	text := secret.Scrub(strings.ToValidUTF8(string(b), "?"), password, escaped)

	var lines []string
	for _, line := range strings.Split(ansi.ReplaceAllString(text, ""), "\n") {
		line = strings.TrimSpace(strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return -1
			}
			return r
		}, line))
		if line == "" {
			continue
		}
		if r := []rune(line); len(r) > lineRunes {
			line = string(r[:lineRunes]) + "…"
		}
		lines = append(lines, line)
	}
	if len(lines) > keepLines {
		lines = lines[len(lines)-keepLines:]
	}
	return strings.Join(lines, " | ")
}
