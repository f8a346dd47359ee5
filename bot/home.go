package bot

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"mongobot/approvals"
	"mongobot/commands"
	"mongobot/store"
)

// Home is what one person sees of their own business with the bot, independent of the chat
// platform (Slack's App Home): their pending requests, the requests waiting for their
// approval, their temporary grants and access with the time left, their schedules, and the
// passwords waiting for them. Its buttons are the cards' buttons, judged the same way.
type Home struct {
	Blocks []Block
}

// More button actions, for the home tab.
const (
	ActOpenForm  = "open_form"  // opens the request form (the adapter does it: it needs the platform's trigger)
	ActCancel    = "cancel"     // withdraws a pending request: its id and token
	ActAccessEnd = "access_end" // ends an access early: its request's id and token
)

// Home-tab limits: Slack takes 100 blocks in a view. Each list shows its first 8 entries
// (the count says how many there are): five full lists, two blocks an entry, and their
// titles fit.
const (
	maxHomeBlocks = 100
	homeListed    = 8
)

// HomeHolder is what a chat platform needs to show a person their home: the Slack adapter
// implements it (views.publish); the console prints the home when asked.
type HomeHolder interface {
	PublishHome(ctx context.Context, user string, h Home) error
}

// Home builds user's home as it is now, from the journal and the policy in force.
func (b *Bot) Home(ctx context.Context, user string) Home {
	var bl []Block
	add := func(x ...Block) {
		for _, y := range x {
			if len(bl) < maxHomeBlocks {
				bl = append(bl, y)
			}
		}
	}
	add(Block{Text: "*MongoDB requests*: ask for a change, or for access of your own for a while. Everything is approved as the policy says, journaled, and can be rolled back."},
		Block{Buttons: []Button{{Text: "New request", Action: ActOpenForm, Style: "primary"}}})
	who, gerr := b.who(ctx, user)
	if _, err := b.mayRequest(ctx, user); err != nil {
		add(Block{Context: "You may not use this bot: " + err.Error() + "."})
		b.homeSeen(user)
		return Home{Blocks: bl}
	}
	pending, _, err := b.store.Requests(0, 1<<20, approvals.Pending)
	if err != nil {
		add(Block{Context: "The journal could not be read just now: " + err.Error()})
		return Home{Blocks: bl}
	}
	var mine, theirs []store.Request
	for _, r := range pending {
		if r.Requester == user {
			mine = append(mine, r)
			continue
		}
		eff := b.policyFor(r.Action, r.Connector, r.Args)
		voted := slices.ContainsFunc(r.Votes, func(v store.Vote) bool { return v.User == user })
		if eff.Approvers.Has(who) && !voted {
			theirs = append(theirs, r)
		}
	}
	section := func(title string, n int, empty string) {
		if n == 0 {
			add(Block{Text: "*" + title + "*"}, Block{Context: empty})
			return
		}
		add(Block{Text: fmt.Sprintf("*%s* (%d)", title, n)})
	}
	section("Your pending requests", len(mine), "None.")
	for _, r := range firstN(mine, homeListed) {
		add(Block{Text: fmt.Sprintf("#%d %s: waiting for approval, expires %s", r.ID, summary(r.Action, r.Connector, r.Args), clock(r.ExpiresAt))},
			Block{Buttons: []Button{{Text: "Cancel", Action: ActCancel, Value: buttonValue(r.ID, r.Token)}}})
	}
	title := "Waiting for your approval"
	if gerr != nil {
		title += " (your user groups could not be read: requests for them are not listed)"
	}
	section(title, len(theirs), "Nothing.")
	for _, r := range firstN(theirs, homeListed) {
		line := fmt.Sprintf("#%d %s, asked by <@%s>", r.ID, summary(r.Action, r.Connector, r.Args), r.Requester)
		if r.Reason != "" {
			line += ": " + esc(r.Reason)
		}
		add(Block{Text: line}, Block{Buttons: []Button{
			{Text: TextApprove, Action: ActApprove, Value: buttonValue(r.ID, r.Token), Style: "primary"},
			{Text: TextDeny, Action: ActDeny, Value: buttonValue(r.ID, r.Token), Style: "danger"}}})
	}
	temp, _ := b.store.Temporary()
	temp = slices.DeleteFunc(temp, func(e store.Entry) bool { return e.Requester != user })
	section("Your temporary grants and access", len(temp), "None.")
	for _, e := range firstN(temp, homeListed) {
		left := e.UndoAt.Sub(b.now()).Round(time.Minute)
		when := fmt.Sprintf("ends %s (%s left)", clock(e.UndoAt), commands.FormatDuration(max(left, time.Minute)))
		if left <= 0 {
			when = fmt.Sprintf("was due to end %s: the bot is still ending it", clock(e.UndoAt))
		}
		add(Block{Text: fmt.Sprintf("#%d %s: %s", e.RequestID, summary(e.Action, e.Connector, e.Args), when)})
		if e.Action == commands.Access {
			if r, err := b.store.Request(e.RequestID); err == nil {
				add(Block{Buttons: []Button{{Text: "End now", Action: ActAccessEnd, Value: buttonValue(r.ID, r.Token), Style: "danger"}}})
			}
		}
	}
	scs, _ := b.store.Schedules()
	scs = slices.DeleteFunc(scs, func(sc store.Schedule) bool { return sc.Owner != user || sc.State == store.ScheduleRemoved })
	section("Your schedules", len(scs), "None.")
	for _, sc := range firstN(scs, homeListed) {
		add(Block{Text: fmt.Sprintf("#%d rotate-password `%s` on %s, `%s`", sc.ID, code(sc.User+"@"+sc.DB), esc(sc.Connector), code(sc.Spec))})
	}
	offers, _ := b.store.OfferedTo(user)
	section("Passwords waiting for you", len(offers), "None.")
	for _, o := range firstN(offers, homeListed) {
		add(Block{Text: fmt.Sprintf("`%s`: reveal it once, until %s", code(o.Label), clock(o.ExpiresAt))},
			Block{Buttons: []Button{{Text: TextReveal, Action: ActReveal, Value: o.ID, Style: "primary"}}})
	}
	b.homeSeen(user)
	return Home{Blocks: bl}
}

func firstN[T any](xs []T, n int) []T {
	if len(xs) > n {
		return xs[:n]
	}
	return xs
}

// homes remembers who has looked at their home, so that a change is shown to them without
// their asking again, and coalesces the refreshes of one person.
type homes struct {
	mu      sync.Mutex
	seen    map[string]bool
	pending map[string]bool
	// publishing holds, per person, a lock held from reading their home to publishing it:
	// two views of one home computed at once could otherwise be published out of order,
	// the older last, and a password waiting for them would not show.
	publishing map[string]*sync.Mutex
}

// publishLock is user's publishing lock.
func (h *homes) publishLock(user string) *sync.Mutex {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.publishing == nil {
		h.publishing = map[string]*sync.Mutex{}
	}
	m, ok := h.publishing[user]
	if !ok {
		m = &sync.Mutex{}
		h.publishing[user] = m
	}
	return m
}

func (b *Bot) homeSeen(user string) {
	b.homes.mu.Lock()
	defer b.homes.mu.Unlock()
	if b.homes.seen == nil {
		b.homes.seen = map[string]bool{}
	}
	b.homes.seen[user] = true
}

// refreshHomes republishes the homes of the people concerned by request r who have looked
// at theirs: its requester and its approvers. It does not wait.
func (b *Bot) refreshHomes(ctx context.Context, r store.Request) {
	b.homes.mu.Lock()
	var seen []string
	for u := range b.homes.seen {
		seen = append(seen, u)
	}
	b.homes.mu.Unlock()
	if len(seen) == 0 {
		return
	}
	eff := b.policyFor(r.Action, r.Connector, r.Args)
	for _, u := range seen {
		if u == r.Requester {
			b.refreshHome(ctx, u)
			continue
		}
		if who, err := b.who(ctx, u); err == nil && eff.Approvers.Has(who) {
			b.refreshHome(ctx, u)
		}
	}
}

// refreshHome republishes user's home if they have looked at it, without waiting. One
// refresh per person runs at a time; changes arriving meanwhile are folded into the next.
func (b *Bot) refreshHome(ctx context.Context, user string) {
	hh, ok := b.chat.(HomeHolder)
	if !ok {
		return
	}
	b.homes.mu.Lock()
	if !b.homes.seen[user] || b.homes.pending[user] {
		b.homes.mu.Unlock()
		return
	}
	if b.homes.pending == nil {
		b.homes.pending = map[string]bool{}
	}
	b.homes.pending[user] = true
	b.homes.mu.Unlock()
	b.spawn("home refresh", func() {
		m := b.homes.publishLock(user)
		m.Lock()
		defer m.Unlock()
		// From here on a change needs another refresh: this one may have read too early.
		b.homes.mu.Lock()
		delete(b.homes.pending, user)
		b.homes.mu.Unlock()
		ctx := context.WithoutCancel(ctx)
		if err := hh.PublishHome(ctx, user, b.Home(ctx, user)); err != nil {
			b.log.Warn("publish home", "user", user, "err", err)
		}
	})
}

// HomeOpened publishes user's home: they have just looked at it.
func (b *Bot) HomeOpened(ctx context.Context, user string) {
	if !b.begin() {
		return
	}
	defer b.done()
	defer b.recoverFor(ctx, "", user, "home")
	hh, ok := b.chat.(HomeHolder)
	if !ok {
		return
	}
	m := b.homes.publishLock(user)
	m.Lock()
	defer m.Unlock()
	if err := hh.PublishHome(ctx, user, b.Home(ctx, user)); err != nil {
		b.log.Warn("publish home", "user", user, "err", err)
	}
}
