package bot

import (
	"fmt"
	"strings"
)

// Message is what the bot says, independent of the chat platform: the Slack adapter renders
// it as Block Kit, the console as text.
type Message struct {
	// Text is the notification text, and the whole message when Blocks is empty.
	Text   string
	Blocks []Block
	// Thread, when set, posts the message as a reply in the thread of that message.
	Thread string
}

// Block is one part of a message: a paragraph, a set of labelled fields, a small grey
// context line, or a row of buttons. Exactly one of its fields is set.
type Block struct {
	Text    string
	Fields  []Field
	Context string
	Buttons []Button
}

// Field is a label and a value, shown side by side.
type Field struct {
	Label, Value string
}

// Button is a button. Action is what the bot does when it is pressed; Value its argument.
type Button struct {
	Text   string
	Action string
	Value  string
	// Style is "primary", "danger" or "".
	Style string
}

// Button actions.
const (
	ActApprove  = "approve"
	ActDeny     = "deny"
	ActRollback = "rollback"
	ActReveal   = "reveal"
)

// Button texts: part of the contract (SPEC).
const (
	TextApprove  = "Approve"
	TextDeny     = "Deny"
	TextRollback = "Roll back"
	TextReveal   = "Reveal password"
)

// Ref locates a posted message so that it can be updated.
type Ref struct {
	Channel string
	TS      string
}

// Plain renders m as text: for the console, for logs of what was said, and for tests.
// Buttons are numbered from first, in order, as [n Text].
func (m Message) Plain(first int) (string, []Button) {
	s, buttons := m.Markup(first)
	return unescape.Replace(s), buttons
}

func text(format string, a ...any) Message {
	return Message{Text: fmt.Sprintf(format, a...)}
}

// Markup is m as mrkdwn lines, its buttons numbered from first. Unlike Plain it leaves the
// entities alone: a text renderer undoes them after it has read the markup, so a typed
// "<@U0ALICE>" stays text instead of becoming a mention.
func (m Message) Markup(first int) (string, []Button) {
	var b strings.Builder
	var buttons []Button
	if len(m.Blocks) == 0 {
		b.WriteString(m.Text)
	}
	for _, bl := range m.Blocks {
		switch {
		case bl.Text != "":
			b.WriteString(bl.Text + "\n")
		case len(bl.Fields) > 0:
			for _, f := range bl.Fields {
				fmt.Fprintf(&b, "  %s: %s\n", f.Label, strings.ReplaceAll(f.Value, "\n", "\n    "))
			}
		case bl.Context != "":
			b.WriteString("  (" + bl.Context + ")\n")
		case len(bl.Buttons) > 0:
			var parts []string
			for _, bt := range bl.Buttons {
				parts = append(parts, fmt.Sprintf("[%d %s]", first+len(buttons), bt.Text))
				buttons = append(buttons, bt)
			}
			b.WriteString("  " + strings.Join(parts, " ") + "\n")
		}
	}
	return strings.TrimRight(b.String(), "\n"), buttons
}
