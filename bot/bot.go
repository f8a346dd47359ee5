package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"mongobot/approvals"
	"mongobot/commands"
	"mongobot/connector"
	"mongobot/store"
)

// Config is the bot's part of the configuration.
type Config struct {
	// Slash is the slash command, "/mongo" by default.
	Slash string
	// Channel is the approvals channel: cards and results are posted there.
	Channel string
	Policy  approvals.Policy
	// Connectors by name.
	Connectors map[string]Mongo
	// RevealTTL is how long a new password waits for its owner (default 1h).
	RevealTTL time.Duration
	// ActionTimeout bounds one action on MongoDB (default 2m).
	ActionTimeout time.Duration
	// Schedules is how scheduled rotations run.
	Schedules ScheduleConfig
	// Metrics counts commands, decisions and actions (default: none).
	Metrics Metrics
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// Bot is the conversation engine. Its methods are safe for concurrent use.
type Bot struct {
	cfg   Config
	store *store.Store
	chat  Chat
	dir   Directory
	log   *slog.Logger
	now   func() time.Time

	scfg ScheduleConfig

	mu       sync.Mutex
	closed   bool
	working  sync.WaitGroup
	tm       *timers
	inflight map[uint64]bool // journal entries claimed by this process (see claim)
	cards    sync.Map        // request id -> *sync.Mutex serializing its card's updates
	noticed  map[uint64]bool // entries already reported as not checkable yet
}

// claim marks journal entry id as being worked on by this process (its action running, or
// its outcome being checked) until release is called; false when it already is. It keeps a
// reconciliation from racing the action it checks, or another reconciliation.
func (b *Bot) claim(id uint64) (release func(), ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inflight[id] {
		return nil, false
	}
	b.inflight[id] = true
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.inflight, id)
	}, true
}

// firstNotice reports whether entry id has not been reported as uncheckable before.
func (b *Bot) firstNotice(id uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	first := !b.noticed[id]
	b.noticed[id] = true
	return first
}

// New makes a bot. dir may be nil when no user groups are configured.
func New(cfg Config, st *store.Store, chat Chat, dir Directory) *Bot {
	if cfg.Slash == "" {
		cfg.Slash = "/mongo"
	}
	if cfg.RevealTTL <= 0 {
		cfg.RevealTTL = time.Hour
	}
	if cfg.ActionTimeout <= 0 {
		cfg.ActionTimeout = 2 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	return &Bot{cfg: cfg, store: st, chat: chat, dir: dir, log: cfg.Log, now: cfg.Now, scfg: cfg.Schedules.withDefaults(cfg.Channel),
		tm: newTimers(), inflight: map[uint64]bool{}, noticed: map[uint64]bool{}}
}

// Invocation is one slash command as the chat platform delivered it.
type Invocation struct {
	User    string
	Channel string
	Text    string
	// Key identifies the delivery (Slack's trigger or envelope id): a second delivery with
	// the same key is ignored.
	Key string
}

// Click is one button press.
type Click struct {
	User    string
	Channel string
	// Message is the message the button is on.
	Message Ref
	Action  string
	Value   string
	Key     string
}

const dedupeTTL = 24 * time.Hour

// begin registers one unit of work, so that Shutdown can wait for it; false once shutting down.
func (b *Bot) begin() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.working.Add(1)
	return true
}

// Shutdown stops taking work and waits for what is in flight, at most until ctx ends.
func (b *Bot) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.working.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bot: work still in flight at shutdown: %w", ctx.Err())
	}
}

// first reports whether key has not been seen; a store failure counts as first (processing
// twice is prevented further down by compare-and-set; dropping work is worse).
func (b *Bot) first(key string) bool {
	if key == "" {
		return true
	}
	ok, err := b.store.Seen(key, dedupeTTL)
	if err != nil {
		b.log.Error("dedupe", "key", key, "err", err)
		return true
	}
	return ok
}

// enter admits one delivery: false (and the work is not done) when the bot is shutting down,
// which the user is told, or when key was delivered before. On true, call b.working.Done.
func (b *Bot) enter(ctx context.Context, channel, user, key string) bool {
	if !b.begin() {
		b.private(ctx, channel, user, text("The bot is shutting down; try again in a minute."))
		return false
	}
	if !b.first(key) {
		b.working.Done()
		b.log.Info("duplicate delivery ignored", "key", key)
		return false
	}
	return true
}

// HandleCommand does what a slash command asks. It never returns an error: every outcome is
// a message to someone.
func (b *Bot) HandleCommand(ctx context.Context, in Invocation) {
	if !b.enter(ctx, in.Channel, in.User, in.Key) {
		return
	}
	defer b.working.Done()
	cmd, err := commands.Parse(in.Text)
	if err != nil {
		b.cfg.Metrics.Command("invalid")
		var pe *commands.Error
		if errors.As(err, &pe) {
			b.private(ctx, in.Channel, in.User, text("%s", pe.Usage(b.cfg.Slash)))
		}
		return
	}
	b.log.Info("command", "user", in.User, "verb", cmd.Verb, "connector", cmd.Connector)
	b.cfg.Metrics.Command(cmd.Verb)
	who := b.who(ctx, in.User)
	if cmd.Verb != commands.Help {
		if err := b.cfg.Policy.MayRequest(who); err != nil {
			b.private(ctx, in.Channel, in.User, text("Sorry, %v.", err))
			return
		}
	}
	reply := func(m Message) {
		if cmd.Public {
			if _, err := b.chat.Post(ctx, in.Channel, m); err == nil {
				return
			}
		}
		b.private(ctx, in.Channel, in.User, m)
	}
	switch cmd.Verb {
	case commands.Help:
		reply(text("%s", commands.HelpText(b.cfg.Slash, cmd.Topic)))
	case commands.Connectors:
		reply(b.connectorsMessage(ctx))
	case commands.Users:
		reply(b.usersMessage(ctx, cmd))
	case commands.Requests:
		reply(b.requestsMessage())
	case commands.History:
		reply(b.historyMessage(cmd.N))
	case commands.Schedules:
		reply(b.schedulesMessage())
	case commands.Cancel:
		b.cancel(ctx, in, cmd.ID)
	case commands.Rollback:
		b.rollbackCommand(ctx, in, who, cmd)
	default:
		b.request(ctx, in, who, cmd)
	}
}

// who is user with their groups; a directory failure leaves the groups empty (the policy then
// judges by user id alone) and is logged.
func (b *Bot) who(ctx context.Context, user string) approvals.Who {
	w := approvals.Who{User: user}
	if b.dir == nil {
		return w
	}
	groups, err := b.dir.Groups(ctx, user)
	if err != nil {
		b.log.Warn("user groups unavailable", "user", user, "err", err)
	}
	w.Groups = groups
	return w
}

// private shows m to user only: an ephemeral message in channel, or a direct message when
// that fails (the bot is not in the channel).
func (b *Bot) private(ctx context.Context, channel, user string, m Message) {
	if channel != "" {
		err := b.chat.Ephemeral(ctx, channel, user, m)
		if err == nil {
			return
		}
		b.log.Warn("ephemeral failed, sending a direct message", "channel", channel, "user", user, "err", err)
	}
	b.dm(ctx, user, m)
}

func (b *Bot) dm(ctx context.Context, user string, m Message) Ref {
	ref, err := b.chat.DM(ctx, user, m)
	if err != nil {
		b.log.Error("direct message failed", "user", user, "err", err)
	}
	return ref
}

func (b *Bot) connector(name string) (Mongo, error) {
	m, ok := b.cfg.Connectors[name]
	if !ok {
		names := b.connectorNames()
		return nil, fmt.Errorf("there is no connector %q; the connectors are: %s", name, strings.Join(names, ", "))
	}
	return m, nil
}

func (b *Bot) connectorNames() []string {
	var names []string
	for n := range b.cfg.Connectors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (b *Bot) connectorsMessage(ctx context.Context) Message {
	var lines []string
	for _, name := range b.connectorNames() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		info, err := b.cfg.Connectors[name].Discover(cctx)
		cancel()
		if err != nil {
			lines = append(lines, fmt.Sprintf("• *%s*: unhealthy: %s", name, sentence(err)))
			continue
		}
		lines = append(lines, fmt.Sprintf("• *%s*: %s", name, info))
	}
	if len(lines) == 0 {
		return text("No connectors are configured.")
	}
	return Message{Text: "Connectors", Blocks: []Block{{Text: "*Connectors*\n" + strings.Join(lines, "\n")}}}
}

func (b *Bot) usersMessage(ctx context.Context, cmd commands.Command) Message {
	m, err := b.connector(cmd.Connector)
	if err != nil {
		return text("%s.", capital(err.Error()))
	}
	if cmd.DB != "" {
		if err := connector.ValidateDB(cmd.DB); err != nil {
			return text("%s", sentence(err))
		}
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.ActionTimeout)
	defer cancel()
	users, err := m.Users(cctx, cmd.DB)
	if err != nil {
		return text("Could not list the users of %s: %s", cmd.Connector, sentence(err))
	}
	where := "all databases"
	if cmd.DB != "" {
		where = cmd.DB
	}
	if len(users) == 0 {
		return text("No users on %s (%s).", cmd.Connector, where)
	}
	var lines []string
	for _, u := range users {
		var roles []string
		for _, r := range u.Roles {
			roles = append(roles, r.String())
		}
		rs := strings.Join(roles, ", ")
		if rs == "" {
			rs = "no roles"
		}
		lines = append(lines, fmt.Sprintf("• `%s`: %s", u.UserRef, rs))
	}
	return paged(fmt.Sprintf("*Users on %s* (%s, %d)", cmd.Connector, where, len(users)), lines)
}

func (b *Bot) requestsMessage() Message {
	rs, _, err := b.store.Requests(0, 50, approvals.Pending)
	if err != nil {
		return text("Could not read the requests: %v", err)
	}
	if len(rs) == 0 {
		return text("No request is waiting for approval.")
	}
	var lines []string
	for _, r := range rs {
		lines = append(lines, fmt.Sprintf("• #%d %s by <@%s>, expires %s", r.ID, summary(r.Action, r.Connector, r.Args), r.Requester, clock(r.ExpiresAt)))
	}
	return paged("*Pending requests*", lines)
}

func (b *Bot) historyMessage(n int) Message {
	es, _, err := b.store.History(0, n)
	if err != nil {
		return text("Could not read the journal: %v", err)
	}
	if len(es) == 0 {
		return text("The journal is empty.")
	}
	var lines []string
	for _, e := range es {
		line := fmt.Sprintf("• #%d %s %s by <@%s>: %s", e.ID, clock(e.CreatedAt), summary(e.Action, e.Connector, e.Args), e.Requester, entryState(e))
		lines = append(lines, line)
	}
	return paged("*Journal*", lines)
}

func entryState(e store.Entry) string {
	s := strings.ReplaceAll(e.State, "_", " ")
	if e.RolledBackBy != 0 && e.State == store.EntryDone {
		s += fmt.Sprintf(" (rollback #%d running)", e.RolledBackBy)
	}
	if e.State == store.EntryRolledBack && e.RolledBackBy != 0 {
		s += fmt.Sprintf(" by #%d", e.RolledBackBy)
	}
	if e.Error != "" {
		s += ": " + e.Error
	}
	return s
}

// paged puts a title and lines into sections that fit Slack's limits (3,000 characters per
// section, 50 blocks), saying how many were left out.
func paged(title string, lines []string) Message {
	m := Message{Text: strings.Trim(title, "*")}
	cur := title
	for i, l := range lines {
		if len(cur)+len(l)+1 > maxSection {
			m.Blocks = append(m.Blocks, Block{Text: cur})
			cur = ""
			if len(m.Blocks) == maxBlocks-1 {
				m.Blocks = append(m.Blocks, Block{Context: fmt.Sprintf("%d more not shown", len(lines)-i)})
				return m
			}
		}
		if cur != "" {
			cur += "\n"
		}
		cur += l
	}
	m.Blocks = append(m.Blocks, Block{Text: cur})
	return m
}

// Slack's limits (reference: expectations.md).
const (
	maxSection = 3000
	maxBlocks  = 50
	maxButton  = 75
)

func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// sentence is an error as a sentence for people: a connector error's plain message.
func sentence(err error) string {
	s := err.Error()
	var ce *connector.Error
	if errors.As(err, &ce) {
		s = ce.Msg
	}
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return capital(s)
}
