package bot

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
)

// Console is the terminal as the chat, like Hubot's shell adapter: lines typed (or piped) are
// slash commands and button presses, and what the bot says is printed as text from the same
// Message model Slack gets. It implements Chat. Work runs synchronously, one line at a time,
// so a piped script gives the same output every run.
type Console struct {
	out   io.Writer
	slash string
	// names maps user ids to display names, and back.
	names map[string]string
	ids   map[string]string
	// channels names channel ids for display.
	channels map[string]string

	mu      sync.Mutex
	user    string // the acting user's id
	ts      int
	buttons []consoleButton // every button shown, numbered from 1
	msgs    map[string]Message
}

type consoleButton struct {
	Button
	ref     Ref
	channel string
	owner   string // for a button on an ephemeral message: the only user who sees it
}

// NewConsole writes to out; users maps ids to names ("U0ALICE": "alice"); the acting user
// is the first of them in name order unless SetUser is called.
func NewConsole(out io.Writer, slash string, users, channels map[string]string) *Console {
	c := &Console{out: out, slash: slash, names: users, ids: map[string]string{}, channels: channels, msgs: map[string]Message{}}
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

var _ Chat = (*Console)(nil)

// SetUser changes who is typing, by name or id.
func (c *Console) SetUser(who string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	who = strings.TrimPrefix(who, "@")
	if id, ok := c.ids[who]; ok {
		c.user = id
		return nil
	}
	if _, ok := c.names[who]; ok || (len(c.names) == 0 && slackID.MatchString(who)) {
		c.user = who
		return nil
	}
	var names []string
	for n := range c.ids {
		names = append(names, n)
	}
	sort.Strings(names)
	return fmt.Errorf("no user %q; the users are %s", who, strings.Join(names, ", "))
}

func (c *Console) name(id string) string {
	if n, ok := c.names[id]; ok {
		return n
	}
	return id
}

var (
	slackID = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	mention = regexp.MustCompile(`<@([A-Z0-9]+)>`)
	chanRef = regexp.MustCompile(`<#([A-Z0-9]+)>`)
)

// readable turns Slack markup into text for a terminal.
func (c *Console) readable(s string) string {
	s = mention.ReplaceAllStringFunc(s, func(m string) string { return "@" + c.name(mention.FindStringSubmatch(m)[1]) })
	s = chanRef.ReplaceAllStringFunc(s, func(m string) string { return "#" + c.channelName(chanRef.FindStringSubmatch(m)[1]) })
	return s
}

func (c *Console) channelName(id string) string {
	if n, ok := c.channels[id]; ok {
		return n
	}
	return id
}

// where names a channel for a header: "#approvals", or "direct message to @dev".
func (c *Console) where(id string) string {
	if _, ok := c.channels[id]; !ok && strings.HasPrefix(id, "D") {
		return "direct message to @" + c.name(strings.TrimPrefix(id, "D"))
	}
	return "#" + c.channelName(id)
}

// show prints m under a header and numbers its buttons.
func (c *Console) show(header string, ref Ref, m Message, owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	body, buttons := m.Plain(len(c.buttons) + 1)
	for _, b := range buttons {
		c.buttons = append(c.buttons, consoleButton{Button: b, ref: ref, channel: ref.Channel, owner: owner})
	}
	fmt.Fprintf(c.out, "%s\n", header)
	for _, l := range strings.Split(c.readable(body), "\n") {
		fmt.Fprintf(c.out, "  │ %s\n", l)
	}
}

func (c *Console) nextRef(channel string) Ref {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ts++
	return Ref{Channel: channel, TS: strconv.Itoa(c.ts)}
}

// Post implements Chat.
func (c *Console) Post(_ context.Context, channel string, m Message) (Ref, error) {
	ref := c.nextRef(channel)
	where := c.where(channel)
	if m.Thread != "" {
		where += ", in the thread of message " + m.Thread
	}
	c.mu.Lock()
	c.msgs[ref.TS] = m
	c.mu.Unlock()
	c.show(fmt.Sprintf("── %s · message %s", where, ref.TS), ref, m, "")
	return ref, nil
}

// Update implements Chat.
func (c *Console) Update(_ context.Context, ref Ref, m Message) error {
	c.mu.Lock()
	// Buttons of the old version are gone.
	for i := range c.buttons {
		if c.buttons[i].ref == ref {
			c.buttons[i].Action = ""
		}
	}
	c.msgs[ref.TS] = m
	c.mu.Unlock()
	c.show(fmt.Sprintf("── %s · message %s, updated", c.where(ref.Channel), ref.TS), ref, m, "")
	return nil
}

// Ephemeral implements Chat.
func (c *Console) Ephemeral(_ context.Context, channel, user string, m Message) error {
	ref := c.nextRef(channel)
	c.show(fmt.Sprintf("── %s · private, only @%s sees this", c.where(channel), c.name(user)), ref, m, user)
	return nil
}

// DM implements Chat.
func (c *Console) DM(ctx context.Context, user string, m Message) (Ref, error) {
	ref := c.nextRef("D" + user)
	c.mu.Lock()
	c.msgs[ref.TS] = m
	c.mu.Unlock()
	c.show(fmt.Sprintf("── direct message to @%s (private) · message %s", c.name(user), ref.TS), ref, m, user)
	return ref, nil
}

// Run reads lines from in until it ends (or "quit") and acts on them with h:
//
//	/mongo …            a slash command, typed by the acting user
//	as <user>           act as another user
//	press <n|text>      press button n, or the latest button with that text
//	help                this list
//
// prompt, when not nil, is called before each line is read (for a terminal).
func (c *Console) Run(ctx context.Context, in io.Reader, h Handler, prompt func(user string)) error {
	sc := bufio.NewScanner(in)
	for {
		if prompt != nil {
			prompt(c.name(c.current()))
		}
		if !sc.Scan() {
			return sc.Err()
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if prompt == nil {
			fmt.Fprintf(c.out, "\n@%s> %s\n", c.name(c.current()), line)
		}
		if err := c.do(ctx, line, h); err != nil {
			if err == io.EOF {
				return nil
			}
			fmt.Fprintf(c.out, "  ! %v\n", err)
		}
		quiet(ctx, h)
	}
}

// quiet waits, when h can say so, until what the last line started has finished (an action
// runs beside the click that approved it): a console shows each line's whole outcome before
// it reads the next, as a person at a terminal expects.
func quiet(ctx context.Context, h Handler) {
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

func (c *Console) current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.user
}

func (c *Console) do(ctx context.Context, line string, h Handler) error {
	word, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	switch {
	case word == c.slash || word == "/mongo":
		h.HandleCommand(ctx, Invocation{User: c.current(), Channel: "C0CONSOLE", Text: rest})
	case word == "as":
		if err := c.SetUser(rest); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "  (now acting as @%s)\n", c.name(c.current()))
	case word == "press":
		b, err := c.find(rest)
		if err != nil {
			return err
		}
		h.HandleClick(ctx, Click{User: c.current(), Channel: b.channel, Message: b.ref, Action: b.Action, Value: b.Value})
	case word == "quit" || word == "exit":
		return io.EOF
	case word == "help":
		fmt.Fprintf(c.out, "  %s <verb> …   a slash command (%s help lists the verbs)\n  as <user>        act as another user\n  press <n|text>   press a button by number or by its text\n  quit\n", c.slash, c.slash)
	default:
		return fmt.Errorf("type %s <verb>, as <user>, press <n>, help or quit", c.slash)
	}
	return nil
}

// find is button n, or the latest live button with that text the acting user can see.
func (c *Console) find(arg string) (consoleButton, error) {
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
