package console

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"
)

// screen is where the console writes. On a terminal whose size is known (SetScreen) it also
// remembers what it printed lately and on which rows, so that an updated message can be
// redrawn where it stands: the cursor goes back up to it, the screen is cleared from there,
// and the message is printed as it is now, followed by what came after it. A message that
// has scrolled out of sight, or any output that is not a terminal, gets the changed lines
// printed below instead (a transcript must stay plain text).
type screen struct {
	w          io.Writer
	cols, rows int // 0: no redrawing
	row        int // rows printed so far
	chunks     []chunk
}

// chunk is one thing printed: a message (ts set), or any other output, with the row it
// began on. typed chunks were echoed by the terminal, not written: they are written again
// only when a redraw passes over them.
type chunk struct {
	ts    string
	text  string
	row   int
	typed bool
}

var sgr = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// height is the rows text takes on the screen, long lines wrapping at s.cols.
func (s *screen) height(text string) int {
	n := 0
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		w := utf8.RuneCountInString(sgr.ReplaceAllString(l, ""))
		n += max(1, (w+s.cols-1)/s.cols)
	}
	return n
}

// write prints text, part of message ts ("" for none); text ends with a newline.
func (s *screen) write(ts, text string) {
	io.WriteString(s.w, text)
	s.record(ts, text, false)
}

// typed records a line the terminal echoed, prompt included.
func (s *screen) typed(text string) { s.record("", text, true) }

func (s *screen) record(ts, text string, typed bool) {
	if s.cols <= 0 || s.rows <= 0 {
		return
	}
	if n := len(s.chunks); n > 0 && ts != "" && s.chunks[n-1].ts == ts {
		s.chunks[n-1].text += text // a message's lines follow its header
	} else {
		s.chunks = append(s.chunks, chunk{ts: ts, text: text, row: s.row, typed: typed})
	}
	s.row += s.height(text)
	// What has scrolled out of sight can no longer be redrawn: forget it.
	for len(s.chunks) > 1 && s.chunks[1].row <= s.row-s.rows {
		s.chunks = s.chunks[1:]
	}
}

// redraw prints message ts anew as text where it stands, and what followed it below, and
// reports whether it could (ts is still in sight).
func (s *screen) redraw(ts, text string) bool {
	if s.cols <= 0 || s.rows <= 0 {
		return false
	}
	i := -1
	for j, c := range s.chunks {
		if c.ts == ts {
			i = j
		}
	}
	if i < 0 || s.row-s.chunks[i].row >= s.rows {
		return false
	}
	after := s.chunks[i+1:]
	up := s.row - s.chunks[i].row
	s.row = s.chunks[i].row
	s.chunks = s.chunks[:i]
	fmt.Fprintf(s.w, "\r\x1b[%dA\x1b[J", up)
	s.write(ts, text)
	for _, c := range after {
		io.WriteString(s.w, c.text)
		s.record(c.ts, c.text, c.typed)
	}
	return true
}
