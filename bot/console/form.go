package console

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"mongobot/bot"
)

// Forms is what the console needs from the engine to ask a form and show a home; *bot.Bot
// has it. A Handler without it gets no form: /mongo alone shows the help.
type Forms interface {
	RequestForm(ctx context.Context, user string, values map[string]string) bot.Form
	FormOptions(ctx context.Context, user string, values map[string]string, field, query string) []bot.Option
	SubmitForm(ctx context.Context, s bot.FormSubmission) map[string]string
	Home(ctx context.Context, user string) bot.Home
}

var _ Forms = (*bot.Bot)(nil)

// textForm is a form being asked field by field: each line typed answers the field asked.
type textForm struct {
	user    string
	values  map[string]string
	done    map[string]bool // fields answered, "-" (skipped) included
	field   bot.FormField   // the field asked now
	choices []bot.Option    // what a number picks for it
}

// maxChoices is how many matches of a search the console lists.
const maxChoices = 10

// startForm begins the request form for the acting user.
func (c *Adapter) startForm(ctx context.Context, f Forms) {
	c.form = &textForm{user: c.current(), values: map[string]string{}, done: map[string]bool{}}
	c.say("  (the request form: answer each field; `-` skips an optional one, `cancel` gives up)")
	c.askNext(ctx, f)
}

// askNext asks the first field not answered yet, or submits the form when none is left.
func (c *Adapter) askNext(ctx context.Context, f Forms) {
	tf := c.form
	form := f.RequestForm(ctx, tf.user, tf.values)
	if len(form.Fields) == 0 {
		c.form = nil
		c.say("  ! %s", form.Note)
		return
	}
	for _, fl := range form.Fields {
		if !tf.done[fl.ID] {
			tf.field, tf.choices = fl, fl.Options
			c.ask(fl)
			return
		}
	}
	errs := f.SubmitForm(ctx, bot.FormSubmission{User: tf.user, Channel: "C0CONSOLE", Values: tf.values})
	if len(errs) == 0 {
		c.form = nil
		c.say("  (submitted)")
		return
	}
	ids := make([]string, 0, len(errs))
	again := false // an error on a field that can be asked again
	for id := range errs {
		ids = append(ids, id)
		again = again || slices.ContainsFunc(form.Fields, func(fl bot.FormField) bool { return fl.ID == id })
	}
	slices.Sort(ids)
	if !again {
		c.form = nil
		for _, id := range ids {
			c.say("  ! %s", errs[id])
		}
		c.say("  (nothing was requested)")
		return
	}
	for _, id := range ids {
		c.say("  ! %s: %s", id, errs[id])
		delete(tf.done, id)
		delete(tf.values, id)
	}
	c.askNext(ctx, f)
}

// ask prints the question for fl.
func (c *Adapter) ask(fl bot.FormField) {
	q := "  ? " + fl.Label
	if fl.Optional {
		q += " (optional)"
	}
	if fl.Hint != "" {
		q += " — " + fl.Hint
	}
	switch fl.Kind {
	case bot.FieldChoice:
		q += "\n    " + numbered(fl.Options)
	case bot.FieldSearch:
		q += "\n    type part of it to search"
	case bot.FieldFlag:
		q += " [yes/no]"
	}
	c.say("%s", q)
}

func numbered(os []bot.Option) string {
	var parts []string
	for i, o := range os {
		parts = append(parts, fmt.Sprintf("%d %s", i+1, o.Label))
	}
	return strings.Join(parts, " · ")
}

// answer takes line as the answer to the field asked.
func (c *Adapter) answer(ctx context.Context, f Forms, line string) {
	tf := c.form
	fl := tf.field
	if line == "cancel" {
		c.form = nil
		c.say("  (form cancelled; nothing was requested)")
		return
	}
	if line == "-" {
		if !fl.Optional {
			c.say("  ! %s is needed", fl.Label)
			return
		}
		tf.done[fl.ID] = true
		delete(tf.values, fl.ID)
		c.askNext(ctx, f)
		return
	}
	value := line
	if n, err := strconv.Atoi(line); err == nil && n >= 1 && n <= len(tf.choices) {
		value = tf.choices[n-1].Value
	} else {
		switch fl.Kind {
		case bot.FieldChoice:
			if !slices.ContainsFunc(fl.Options, func(o bot.Option) bool { return o.Value == line }) {
				c.say("  ! pick a number from 1 to %d", len(fl.Options))
				return
			}
		case bot.FieldSearch:
			found := f.FormOptions(ctx, tf.user, tf.values, fl.ID, line)
			exact := slices.ContainsFunc(found, func(o bot.Option) bool { return o.Value == line })
			switch {
			case exact:
			case len(found) == 1:
				value = found[0].Value
			case len(found) == 0:
				c.say("  ! nothing matches %q; try again", line)
				return
			default:
				tf.choices = found[:min(len(found), maxChoices)]
				c.say("    %s%s", numbered(tf.choices), map[bool]string{true: " · …", false: ""}[len(found) > maxChoices])
				return
			}
		case bot.FieldFlag:
			switch strings.ToLower(line) {
			case "yes", "y", "true":
				value = "true"
			case "no", "n", "false":
				value = ""
			default:
				c.say("  ! answer yes or no")
				return
			}
		}
	}
	tf.done[fl.ID] = true
	if value != "" {
		tf.values[fl.ID] = value
	}
	c.askNext(ctx, f)
}

// showHome prints the acting user's home, its buttons numbered for press.
func (c *Adapter) showHome(ctx context.Context, f Forms) {
	h := f.Home(ctx, c.current())
	c.mu.Lock()
	defer c.mu.Unlock()
	ref := c.unnumbered("", "home")
	c.header("── your home · private, only @%s sees this", c.name(c.user))
	// An empty section is one line at a terminal: "Your schedules: none."
	var lines []string
	for _, l := range c.lines(ref, bot.Message{Blocks: h.Blocks}, c.user) {
		if n := len(lines); n > 0 && (l == "  (None.)" || l == "  (Nothing.)") {
			lines[n-1] += ": " + strings.ToLower(strings.Trim(l, " ()"))
			continue
		}
		lines = append(lines, l)
	}
	c.out.write("", body(lines))
	for i := range c.buttons {
		if c.buttons[i].ref == ref {
			c.buttons[i].home = true
		}
	}
}
