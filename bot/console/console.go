package console

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"mongobot/bot"
)

// Adapter is the terminal as the chat, like Hubot's shell adapter: lines typed (or piped) are
// slash commands and button presses, and what the bot says is printed as text from the same
// bot.Message model Slack gets. It implements bot.Chat. Work runs synchronously, one line at a time,
// so a piped script gives the same output every run.
type Adapter struct {
	out   *screen
	slash string
	// names maps user ids to display names, and back.
	names map[string]string
	ids   map[string]string
	// channels names channel ids for display.
	channels map[string]string

	mu    sync.Mutex
	user  string // the acting user's id
	style Style
	known []string // user ids the config names, suggested when there are no names
	// shown counts the messages printed with a number: numbers are what the person at the
	// terminal sees, from 1, in the order printed. A ref's TS is its number; a message that
	// has none (private, or folded into an earlier copy) gets a TS that is not a number.
	shown   int
	hidden  int
	buttons []consoleButton // every button shown, numbered from 1
	// same maps a printed message's content to its number while it is unchanged: the bot
	// sends a result to the thread and to the requester directly, and at one terminal that
	// is one person, who sees it once.
	same map[string]int
	// form, when set, is the form being asked: the next line answers its field (form.go).
	form *textForm
	// shownLines is what each numbered message shows now, by its number: an update prints
	// only the lines that changed, so a card read top to bottom is a conversation, not the
	// same card three times.
	shownLines map[string][]string
	// busy is set while a typed line is being worked on: updates wait in pending until its
	// work has finished and are then printed once, as they ended (a card that went
	// approved, running, done within one click says done once).
	busy bool
	// piped is set when lines are read from a script, not typed at a terminal: its transcript
	// shows each line after the prompt of who typed it, so a switch of user that worked need
	// not be said (the next line's prompt says it).
	piped   bool
	pending []bot.Ref
	latest  map[bot.Ref]bot.Message
	// heads is each numbered message's header as printed, for a redraw.
	heads map[string]string
	// prompt is the prompt shown last, which the typed line follows on its row.
	prompt string
}

type consoleButton struct {
	bot.Button
	ref     bot.Ref
	channel string
	owner   string // for a button on an ephemeral message: the only user who sees it
	home    bool   // on the owner's home (home)
}

// New writes to out; users maps ids to names ("U0ALICE": "alice"); the acting user
// is the first of them in name order unless SetUser is called. It writes plain text until
// SetStyle says the output is a terminal.
func New(out io.Writer, slash string, users, channels map[string]string) *Adapter {
	c := &Adapter{out: &screen{w: out}, slash: slash, names: users, ids: map[string]string{}, channels: channels, same: map[string]int{},
		shownLines: map[string][]string{}, latest: map[bot.Ref]bot.Message{}, heads: map[string]string{}}
	var names []string
	for id, n := range users {
		c.ids[n] = id
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > 0 {
		c.user = c.ids[names[0]]
	} else {
		c.user = "U0CONSOLE"
	}
	return c
}

var _ bot.Chat = (*Adapter)(nil)

// SetStyle says what the output may show besides text (see Style).
func (c *Adapter) SetStyle(s Style) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.style = s
}

// SetScreen says the output is a terminal of cols columns and rows rows, where an updated
// message may be redrawn in place (see screen). Leave it unset for anything else.
func (c *Adapter) SetScreen(cols, rows int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.cols, c.out.rows = cols, rows
}

// Prompt shows the prompt of the acting user, on a terminal, before a line is typed.
func (c *Adapter) Prompt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := "@" + clean(c.name(c.user)) + "> "
	io.WriteString(c.out.w, p)
	c.prompt = p
}

// SetKnown gives the user ids the config names (its approvers, its access list): with no
// names to go by, the console suggests them to act as.
func (c *Adapter) SetKnown(ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.known = append([]string(nil), ids...)
}

// SwitchHelp says how to act as someone else, with the names or ids the console accepts.
func (c *Adapter) SwitchHelp() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ids) > 0 {
		var names []string
		for n := range c.ids {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Sprintf("`as <name>` acts as someone else: %s", strings.Join(names, ", "))
	}
	eg := "U0ALICE"
	s := "`as <Slack user id>` acts as someone else"
	if len(c.known) > 0 {
		eg = c.known[0]
		s += fmt.Sprintf(" (the config names %s)", strings.Join(c.known, ", "))
	}
	return s + fmt.Sprintf(", e.g. `as %s`. No names are known here (the console has no Slack directory), so people are their ids.", eg)
}

// User is who is typing, as shown: a name, or the id.
func (c *Adapter) User() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.name(c.user)
}

// SetUser changes who is typing, by name or id.
func (c *Adapter) SetUser(who string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, err := c.resolve(who)
	if err == nil {
		c.user = id
	}
	return err
}

// resolve is the user id of who, a name or an id. Call it with c.mu held.
func (c *Adapter) resolve(who string) (string, error) {
	who = strings.TrimPrefix(who, "@")
	if id, ok := c.ids[who]; ok {
		return id, nil
	}
	// Slack ids are upper case; a typed "u0alice" means U0ALICE, not someone new.
	if up := strings.ToUpper(who); slackID.MatchString(up) {
		who = up
	}
	if _, ok := c.names[who]; ok || (len(c.names) == 0 && slackID.MatchString(who)) {
		return who, nil
	}
	if len(c.names) == 0 {
		return "", fmt.Errorf("%q is not a Slack user id (U… or W…, letters and digits): with no names known, people are their ids", who)
	}
	var names []string
	for n := range c.ids {
		names = append(names, n)
	}
	sort.Strings(names)
	return "", fmt.Errorf("no user %q; the users are %s", who, strings.Join(names, ", "))
}

func (c *Adapter) name(id string) string {
	if n, ok := c.names[id]; ok {
		return n
	}
	return id
}

var slackID = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)

// renderer renders for this console's terminal and people. Call it with c.mu held.
func (c *Adapter) renderer() termRenderer {
	return termRenderer{style: c.style, user: c.name, channel: c.channelName}
}

func (c *Adapter) channelName(id string) string {
	if n, ok := c.channels[id]; ok {
		return n
	}
	return id
}

// where names a channel for a header: "#approvals", or "direct message to @dev".
func (c *Adapter) where(id string) string {
	if _, ok := c.channels[id]; !ok && strings.HasPrefix(id, "D") {
		return "direct message to @" + c.name(strings.TrimPrefix(id, "D"))
	}
	return "#" + c.channelName(id)
}

// header prints a message's header line; the text in it (names, ids) is cleaned too.
func (c *Adapter) header(format string, a ...any) {
	c.headerOf("", format, a...)
}

// headerOf is header for message ts, which a redraw may print again.
func (c *Adapter) headerOf(ts, format string, a ...any) {
	h := c.renderer().color(sgrCyan, clean(fmt.Sprintf(format, a...)))
	if ts != "" {
		c.heads[ts] = h
	}
	c.out.write(ts, h+"\n")
}

// show prints m and numbers its buttons. Call it with c.mu held.
func (c *Adapter) show(ref bot.Ref, m bot.Message, owner string) {
	lines := c.lines(ref, m, owner)
	c.out.write(ref.TS, body(lines))
	c.shownLines[ref.TS] = lines
}

// lines renders m as the lines it shows, numbering its buttons. Call it with c.mu held.
func (c *Adapter) lines(ref bot.Ref, m bot.Message, owner string) []string {
	r := c.renderer()
	var out []string
	add := func(markup string) { out = append(out, strings.Split(r.render(markup), "\n")...) }
	if len(m.Blocks) == 0 {
		add(m.Text)
	}
	for _, bl := range m.Blocks {
		switch {
		case bl.Text != "":
			add(strings.TrimRight(bl.Text, "\n"))
		case len(bl.Fields) > 0:
			out = append(out, c.fields(bl.Fields)...)
		case bl.Context != "":
			add("  (" + bl.Context + ")")
		case len(bl.Buttons) > 0:
			var parts []string
			for _, b := range bl.Buttons {
				c.buttons = append(c.buttons, consoleButton{Button: b, ref: ref, channel: ref.Channel, owner: owner})
				parts = append(parts, fmt.Sprintf("[%d %s]", len(c.buttons), b.Text))
			}
			add("  " + strings.Join(parts, " "))
		}
	}
	return out
}

// pairWidth is the widest line two fields are put on together, and fieldSep what is
// between them.
const (
	pairWidth = 80
	fieldSep  = " · "
)

// fields renders labelled fields as Slack lays them out, two to a row, where two short ones
// fit on one line; a long one, or one of several lines, has its own. Call it with c.mu held.
func (c *Adapter) fields(fs []bot.Field) []string {
	r, plain := c.renderer(), c.renderer()
	plain.style = Style{}
	one := func(f bot.Field) (string, int, bool) {
		markup := f.Label + ": " + f.Value
		text := plain.render(markup)
		return r.render(strings.ReplaceAll(markup, "\n", "\n    ")), utf8.RuneCountInString(text), strings.Contains(text, "\n")
	}
	var out []string
	for i := 0; i < len(fs); i++ {
		a, wa, multi := one(fs[i])
		if i+1 < len(fs) && !multi {
			if b, wb, multiB := one(fs[i+1]); !multiB && 2+wa+3+wb <= pairWidth {
				out = append(out, "  "+a+fieldSep+b)
				i++
				continue
			}
		}
		out = append(out, strings.Split("  "+a, "\n")...)
	}
	return out
}

// number gives the next message number, and the ref that carries it. Call it with c.mu held.
func (c *Adapter) number(channel string) bot.Ref {
	c.shown++
	return bot.Ref{Channel: channel, TS: strconv.Itoa(c.shown)}
}

// unnumbered is a ref for a message shown without a number. Call it with c.mu held.
func (c *Adapter) unnumbered(channel, kind string) bot.Ref {
	c.hidden++
	return bot.Ref{Channel: channel, TS: kind + strconv.Itoa(c.hidden)}
}

// content is what makes two messages the same to the eye, buttons (and what they do)
// included; where they are posted is not.
func content(m bot.Message) string {
	m.Thread = ""
	return fmt.Sprintf("%#v", m)
}

// forget drops message n from the messages a copy may be folded into: it changed.
func (c *Adapter) forget(ts string) {
	for k, n := range c.same {
		if strconv.Itoa(n) == ts {
			delete(c.same, k)
		}
	}
}

// Post implements bot.Chat.
func (c *Adapter) Post(_ context.Context, channel string, m bot.Message) (bot.Ref, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ref := c.number(channel)
	where := c.where(channel)
	if m.Thread != "" {
		where += ", in the thread of message " + m.Thread
	}
	c.headerOf(ref.TS, "── %s · message %s", where, ref.TS)
	c.show(ref, m, "")
	c.same[content(m)] = c.shown
	return ref, nil
}

// body is a message's lines as printed.
func body(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "  │ %s\n", l)
	}
	return b.String()
}

// changed is the lines of now that say something before did not, in order: what an update
// says. Fields paired on one line are compared one by one, so a field that only lost its
// neighbour is not said again.
func changed(before, now []string) []string {
	had := map[string]int{}
	for _, l := range before {
		for _, part := range strings.Split(l, fieldSep) {
			had[strings.TrimSpace(part)]++
		}
	}
	var out []string
	for _, l := range now {
		parts := strings.Split(l, fieldSep)
		fresh := false
		for _, part := range parts {
			if had[strings.TrimSpace(part)] == 0 {
				fresh = true
			}
		}
		if !fresh {
			for _, part := range parts {
				had[strings.TrimSpace(part)]--
			}
			continue
		}
		out = append(out, l)
	}
	return out
}

// Update implements bot.Chat. While a typed line is at work the update waits (see busy);
// otherwise, a timer's work between lines, it is printed at once.
func (c *Adapter) Update(_ context.Context, ref bot.Ref, m bot.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Buttons of the old version are gone.
	for i := range c.buttons {
		if c.buttons[i].ref == ref {
			c.buttons[i].Action = ""
		}
	}
	c.forget(ref.TS)
	if _, err := strconv.Atoi(ref.TS); err != nil || !c.busy {
		c.printUpdate(ref, m)
		return nil
	}
	if _, ok := c.latest[ref]; !ok {
		c.pending = append(c.pending, ref)
	}
	c.latest[ref] = m
	return nil
}

// Flush prints the updates that waited for the typed line's work to end, each once, as it
// is now. Run calls it after each line.
func (c *Adapter) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flush()
}

func (c *Adapter) flush() {
	for _, ref := range c.pending {
		c.printUpdate(ref, c.latest[ref])
	}
	c.pending = nil
	clear(c.latest)
}

// printUpdate shows the new version of message ref: in full when it was never shown with a
// number, else only its lines that changed. Call it with c.mu held.
func (c *Adapter) printUpdate(ref bot.Ref, m bot.Message) {
	owner := ""
	if strings.HasPrefix(ref.Channel, "D") {
		owner = strings.TrimPrefix(ref.Channel, "D")
	}
	before, shown := c.shownLines[ref.TS]
	if _, err := strconv.Atoi(ref.TS); err != nil || !shown {
		// A message shown folded (or not at all) is shown in full now that it differs.
		if err != nil {
			ref = c.number(ref.Channel)
		}
		c.headerOf(ref.TS, "── %s · message %s, updated", c.where(ref.Channel), ref.TS)
		c.show(ref, m, owner)
		return
	}
	now := c.lines(ref, m, owner)
	c.shownLines[ref.TS] = now
	diff := changed(before, now)
	if len(diff) == 0 && len(now) == len(before) {
		return
	}
	// On a terminal the message is redrawn where it stands, while it is in sight.
	if h, ok := c.heads[ref.TS]; ok && c.out.redraw(ref.TS, h+"\n"+body(now)) {
		return
	}
	if len(diff) == 0 {
		return
	}
	c.header("── %s · message %s, updated", c.where(ref.Channel), ref.TS)
	c.out.write("", body(diff))
}

// Ephemeral implements bot.Chat.
func (c *Adapter) Ephemeral(_ context.Context, channel, user string, m bot.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Slack cannot update or thread under an ephemeral message, so it needs no number.
	ref := c.unnumbered(channel, "e")
	c.header("── %s · private, only @%s sees this", c.where(channel), c.name(user))
	c.show(ref, m, user)
	return nil
}

// DM implements bot.Chat.
func (c *Adapter) DM(_ context.Context, user string, m bot.Message) (bot.Ref, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.same[content(m)]; ok {
		ref := c.unnumbered("D"+user, "d")
		c.header("── direct message to @%s (private): the same as message %d above", c.name(user), n)
		return ref, nil
	}
	ref := c.number("D" + user)
	c.headerOf(ref.TS, "── direct message to @%s (private) · message %s", c.name(user), ref.TS)
	c.show(ref, m, user)
	return ref, nil
}

// Run reads lines from in until it ends (or "quit") and acts on them with h:
//
//	/mongo …            a slash command, typed by the acting user
//	as <user>           act as another user (a name, or an id when no names are known)
//	press <n|text>      press button n, or the latest button with that text
//	help                this list
//
// prompt, when not nil, is called before each line is read (for a terminal); it should
// print with Prompt, so that a redraw knows the rows the typed lines took.
func (c *Adapter) Run(ctx context.Context, in io.Reader, h bot.Handler, prompt func(user string)) error {
	c.mu.Lock()
	c.piped = prompt == nil
	c.mu.Unlock()
	sc := bufio.NewScanner(in)
	for {
		if prompt != nil {
			prompt(c.name(c.current()))
		}
		if !sc.Scan() {
			return sc.Err()
		}
		if prompt != nil {
			c.mu.Lock()
			c.out.typed(c.prompt + clean(sc.Text()) + "\n")
			c.prompt = ""
			c.mu.Unlock()
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if prompt == nil && !c.quietSwitch(line) {
			// A form's answers follow its questions without a gap: one exchange.
			gap := "\n"
			if c.asking() {
				gap = ""
			}
			c.say("%s@%s> %s", gap, c.name(c.current()), line)
		}
		c.setBusy(true)
		err := c.do(ctx, line, h)
		if err != nil && err != io.EOF {
			c.mu.Lock()
			c.out.write("", "  "+c.renderer().color(sgrRed, "! "+clean(err.Error()))+"\n")
			c.mu.Unlock()
		}
		quiet(ctx, h)
		c.setBusy(false)
		if err == io.EOF {
			return nil
		}
	}
}

// quiet waits, when h can say so, until what the last line started has finished (an action
// runs beside the click that approved it): a console shows each line's whole outcome before
// it reads the next, as a person at a terminal expects.
func quiet(ctx context.Context, h bot.Handler) {
	b, ok := h.(interface{ Busy() int64 })
	if !ok {
		return
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for b.Busy() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// say prints a line of the console's own, cleaned: it may hold what was typed (an echoed
// line, a name that is no one's), which must not reach the terminal as control sequences.
func (c *Adapter) say(format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.write("", clean(fmt.Sprintf(format, a...))+"\n")
}

// quietSwitch reports whether line is a switch of user that a transcript need not show: one
// that works, read from a script. A failing one is echoed with its error.
func (c *Adapter) quietSwitch(line string) bool {
	word, rest, _ := strings.Cut(line, " ")
	if word != "as" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.resolve(strings.TrimSpace(rest))
	return c.form == nil && err == nil
}

func (c *Adapter) asking() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.form != nil
}

func (c *Adapter) isPiped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.piped
}

// setBusy marks a typed line's work as started or ended; at its end, the updates that
// waited are printed.
func (c *Adapter) setBusy(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = on
	if !on {
		c.flush()
	}
}

func (c *Adapter) current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.user
}

func (c *Adapter) do(ctx context.Context, line string, h bot.Handler) error {
	word, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	f, forms := h.(Forms)
	switch {
	case c.form != nil && forms:
		c.answer(ctx, f, line)
	case (word == c.slash || word == "/mongo") && rest == "" && forms:
		c.startForm(ctx, f)
	case word == "home" && forms:
		c.showHome(ctx, f)
	case word == c.slash || word == "/mongo":
		h.HandleCommand(ctx, bot.Invocation{User: c.current(), Channel: "C0CONSOLE", Text: rest})
	case word == "as":
		if err := c.SetUser(rest); err != nil {
			return err
		}
		if !c.isPiped() {
			c.say("  (now acting as @%s)", c.name(c.current()))
		}
	case word == "press":
		b, err := c.find(rest)
		if err != nil {
			return err
		}
		if b.Action == bot.ActOpenForm && forms {
			c.startForm(ctx, f)
			return nil
		}
		msg := b.ref
		if b.home {
			msg = bot.Ref{}
		}
		h.HandleClick(ctx, bot.Click{User: c.current(), Channel: b.channel, Message: msg, Home: b.home, Action: b.Action, Value: b.Value})
	case word == "quit" || word == "exit":
		return io.EOF
	case word == "help":
		who := "<name>"
		if len(c.names) == 0 {
			who = "<user id>"
		}
		c.say("  %s <verb> …   a slash command (%s help lists the verbs)\n  %s alone       the request form, asked field by field\n  home             your requests, approvals, access and passwords\n  as %-13s act as another user\n  press <n|text>   press a button by number or by its text\n  quit\n  You are @%s. %s",
			c.slash, c.slash, c.slash, who, c.name(c.current()), c.SwitchHelp())
	default:
		return fmt.Errorf("type %s <verb>, as <user>, press <n>, help or quit", c.slash)
	}
	return nil
}

// find is button n, or the latest live button with that text the acting user can see.
func (c *Adapter) find(arg string) (consoleButton, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	visible := func(b consoleButton) bool { return b.owner == "" || b.owner == c.user }
	if n, err := strconv.Atoi(arg); err == nil {
		if n < 1 || n > len(c.buttons) {
			return consoleButton{}, fmt.Errorf("there is no button %d", n)
		}
		b := c.buttons[n-1]
		if b.Action == "" {
			return consoleButton{}, fmt.Errorf("button %d is gone: its message was updated", n)
		}
		if !visible(b) {
			return consoleButton{}, fmt.Errorf("button %d is on a private message to someone else", n)
		}
		return b, nil
	}
	for i := len(c.buttons) - 1; i >= 0; i-- {
		b := c.buttons[i]
		if b.Action != "" && strings.EqualFold(b.Text, arg) && visible(b) {
			return b, nil
		}
	}
	return consoleButton{}, fmt.Errorf("no %q button that @%s can see", arg, c.name(c.user))
}
