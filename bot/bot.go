package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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
	// Deliveries say where rotated passwords go (deliver.go).
	Deliveries []Delivery
	// Limits bound each connector's work, by connector name (executor.go); missing: defaults.
	Limits map[string]Limits
	// Metrics counts commands, decisions and actions (default: none).
	Metrics Metrics
	// Via, when set, names where commands are typed other than the chat platform ("console"):
	// the people named there are not verified by it, so every request is journaled with it
	// and every card says so.
	Via string
	// Emulated, when set, says the connectors are stand-ins (the console's demo of a config
	// of one's own: the in-process emulator under each connector's name): every card and
	// result says so, so nobody takes what it shows for the real server's state.
	Emulated bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger
	// TimerJournal, when set, is the journal that timer work writes its write-ahead steps to
	// (runs of schedules, ends of temporary grants, expiries of requests). With several
	// replicas it is the journal fenced by this replica's term as leader, so that a replica
	// that lost the lead writes none of them; an error says it does not lead, and leaves the
	// work to the one that does. Default: the bot's store.
	TimerJournal func() (*store.Store, error)
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
	// claiming is held shared while an entry is created and claimed, and exclusively while
	// the periodic check lists and claims what is executing: so the check never sees an
	// entry between its creation and its claim (which would settle a running action).
	claiming sync.RWMutex
	cards    keyed // request id -> the lock serializing its card's updates
	reveals  keyed // secret id -> the lock making one reveal deliver, then delete
	targets  keyed // connector and user -> the lock making actions on one user one at a time
	asks     keyed // action, connector and user -> the lock making one pending request of each
	// deliveryLocks: journal entry -> the lock making one attempt at its delivery at a time.
	deliveryLocks keyed
	// pairs: alternating pair -> the lock making one rotation of the pair at a time.
	pairs   keyed
	execs   executors
	options optionCache     // connectors' users, briefly, for forms' choices
	homes   homes           // who looks at their home tab, for refreshes
	noticed map[uint64]bool // entries already reported as not checkable yet
	panics  atomic.Int64
	busy    atomic.Int64 // units of work begun and not done (for tests that wait for quiet)
	entered atomic.Int64 // deliveries handed to HandleCommand or HandleClick
	tamper  tamperLog    // records the store refused as not the bot's (tamper.go)
}

// add and done count one unit of work, for Shutdown and for Busy.
func (b *Bot) add()  { b.busy.Add(1); b.working.Add(1) }
func (b *Bot) done() { b.busy.Add(-1); b.working.Done() }

// Busy is how many units of work (deliveries, actions, timers) are running now, and
// Deliveries how many deliveries the bot was handed since it was made: a test that sent n
// deliveries waits for Deliveries() == n and Busy() == 0 to know the bot is quiet.
func (b *Bot) Busy() int64       { return b.busy.Load() }
func (b *Bot) Deliveries() int64 { return b.entered.Load() }

// timerStore is the journal for timer work's write-ahead steps (Config.TimerJournal).
func (b *Bot) timerStore() (*store.Store, error) {
	if b.cfg.TimerJournal == nil {
		return b.store, nil
	}
	return b.cfg.TimerJournal()
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

// beginClaimed creates a journal entry with create (a write-ahead step of the store) and claims it
// in the same step, as far as the periodic check can tell: the check lists executing
// entries only while no entry is between creation and claim.
func (b *Bot) beginClaimed(create func() (store.Entry, error)) (store.Entry, func(), error) {
	b.claiming.RLock()
	defer b.claiming.RUnlock()
	e, err := create()
	if err != nil {
		return e, func() {}, err
	}
	release, ok := b.claim(e.ID)
	if !ok {
		// Unreachable: a new id cannot be claimed already. Never run without a claim.
		return e, func() {}, fmt.Errorf("journal entry #%d is already claimed", e.ID)
	}
	return e, func() {
		// On a shared journal the entry was claimed there with its write-ahead step; the
		// claim goes with its settling. One left executing (MongoDB stopped answering) is
		// released here, so that the leader, whichever replica it is, can settle it.
		if err := b.store.ReleaseEntry(e.ID); err != nil {
			b.log.Warn("release the claim on an entry (it ends with this replica's session)", "entry", e.ID, "err", err)
		}
		release()
	}, nil
}

// claimExecuting claims every executing entry nobody in this process works on, for a check.
func (b *Bot) claimExecuting() ([]store.Entry, []func(), error) {
	b.claiming.Lock()
	defer b.claiming.Unlock()
	entries, err := b.store.Executing()
	if err != nil {
		return nil, nil, err
	}
	var mine []store.Entry
	var releases []func()
	for _, e := range entries {
		release, ok := b.claim(e.ID)
		if !ok {
			continue
		}
		// On a shared journal, another replica may be running it, or settling it: its
		// claim there lives as long as that replica's session.
		if err := b.store.ClaimEntry(e.ID); err != nil {
			release()
			if !errors.Is(err, store.ErrClaimed) && !errors.Is(err, store.ErrConflict) {
				b.log.Error("claim an executing entry to settle it", "entry", e.ID, "err", err)
			}
			continue
		}
		mine, releases = append(mine, e), append(releases, func() {
			if err := b.store.ReleaseEntry(e.ID); err != nil {
				b.log.Warn("release the claim on an entry (it ends with this replica's session)", "entry", e.ID, "err", err)
			}
			release()
		})
	}
	return mine, releases, nil
}

// lockTarget serializes actions on one user of one connector, and says whether an earlier
// action on it is still unsettled (left executing by an outage or a crash): acting then would
// let that entry be reconciled against a state this action made, and journaled wrongly. On
// ok false, unlock has already been called and why is the sentence for the refusal.
//
// One at a time means across replicas: besides this process's lock, the user is claimed in
// the shared journal (store.Claim; nothing to claim on bbolt) for as long as the action
// runs, so two replicas never change one user at once. A claim held elsewhere is waited for,
// a while, as the lock is.
func (b *Bot) lockTarget(conn string, u connector.UserRef) (unlock func(), why string, ok bool) {
	unlock, err := b.hold(&b.targets, "target/"+conn+"\x00"+u.String())
	if err != nil {
		b.log.Warn("claim a user for an action", "user", u.String(), "err", err)
		if errors.Is(err, store.ErrClaimed) {
			return func() {}, fmt.Sprintf("another replica of the bot is changing `%s` right now, so nothing was run; ask again in a moment", code(u.String())), false
		}
		return func() {}, unsettled(u, store.Entry{}), false
	}
	es, err := b.store.Executing()
	if err != nil {
		unlock() // cannot tell: fail closed
		b.log.Error("list executing entries", "err", err)
		return func() {}, unsettled(u, store.Entry{}), false
	}
	for _, e := range es {
		if e.Connector == conn && target(e.Args) == u {
			unlock()
			return func() {}, unsettled(u, e), false
		}
	}
	return unlock, "", true
}

// hold takes name's lock in l, for this process, and, on a shared journal, name's claim
// across the replicas (store.Claim), waiting a while for another replica to release it:
// "one at a time" then means across replicas. On an error nothing is held.
func (b *Bot) hold(l *keyed, name string) (release func(), err error) {
	unlockLocal := l.lock(name)
	var unclaim func()
	for deadline := time.Now().Add(claimWait); ; {
		unclaim, err = b.store.Claim(name)
		if !errors.Is(err, store.ErrClaimed) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		unlockLocal()
		return func() {}, err
	}
	return func() { unclaim(); unlockLocal() }, nil
}

// claimWait bounds the wait for another replica's claim (an action on the same user, a
// request being filed by the same person).
const claimWait = 10 * time.Second

// unsettled is the sentence for an action refused by lockTarget.
func unsettled(u connector.UserRef, e store.Entry) string {
	if e.ID == 0 {
		return fmt.Sprintf("the journal could not be read to check for unsettled actions on `%s`, so nothing was run; try again", code(u.String()))
	}
	return fmt.Sprintf("journal #%d (%s) on the same user is still being checked against the server, so nothing else may change %s until it is settled; ask again then", e.ID, summary(e.Action, e.Connector, e.Args), code(u.String()))
}

// firstNotice reports whether entry id has not been reported as uncheckable before.
func (b *Bot) firstNotice(id uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	first := !b.noticed[id]
	b.noticed[id] = true
	return first
}

// safely runs fn, turning a panic into a log line (with the stack) instead of the end of
// the process: one bad request must not take every other one down. A journal entry the
// panicking work held stays executing and its claim is released by the work's own defers,
// so the periodic check reconciles it against the server.
func (b *Bot) safely(what string, fn func()) (panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			panicked = true
			b.panics.Add(1)
			b.log.Error("panic recovered; the bot keeps serving", "in", what, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	fn()
	return false
}

// spawn runs fn on its own goroutine, safely, counted as work Shutdown waits for. Call it
// only from work already begun (so the count is above zero).
func (b *Bot) spawn(what string, fn func()) {
	b.add()
	go func() {
		defer b.done()
		b.safely(what, fn)
	}()
}

// Panics is how many panics the bot recovered from (for tests and metrics).
func (b *Bot) Panics() int64 { return b.panics.Load() }

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
	b := &Bot{cfg: cfg, store: st, chat: chat, dir: dir, log: cfg.Log, now: cfg.Now, scfg: cfg.Schedules.withDefaults(cfg.Channel),
		tm: newTimers(), inflight: map[uint64]bool{}, noticed: map[uint64]bool{}, execs: executors{lim: cfg.Limits}}
	if st != nil { // nil: a bot that only renders (tests)
		st.WatchTamper(b.tampered)
	}
	return b
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
	// Message is the message the button is on (empty on a home tab).
	Message Ref
	// Home is set when the button is on the clicker's own home tab, as the platform vouches.
	Home   bool
	Action string
	Value  string
	Key    string
}

const dedupeTTL = 24 * time.Hour

// begin registers one unit of work, so that Shutdown can wait for it; false once shutting down.
func (b *Bot) begin() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.add()
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
	b.entered.Add(1)
	if !b.begin() {
		b.private(ctx, channel, user, text("The bot is shutting down; try again in a minute."))
		return false
	}
	if !b.first(key) {
		b.done()
		b.log.Info("duplicate delivery ignored", "key", key)
		return false
	}
	return true
}

// recoverFor ends a panic in the work of one delivery: it is logged with its stack, counted,
// and the person is told, and the bot goes on serving everyone else. Deferred directly.
func (b *Bot) recoverFor(ctx context.Context, channel, user, what string) {
	p := recover()
	if p == nil {
		return
	}
	b.panics.Add(1)
	b.log.Error("panic recovered; the bot keeps serving", "in", what, "user", user, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	b.private(ctx, channel, user, text("Something went wrong inside the bot while handling your %s (it is logged for the operators). Check `%s history` and `%s requests` before trying again.", what, b.cfg.Slash, b.cfg.Slash))
}

// HandleCommand does what a slash command asks. It never returns an error: every outcome is
// a message to someone.
func (b *Bot) HandleCommand(ctx context.Context, in Invocation) {
	if !b.enter(ctx, in.Channel, in.User, in.Key) {
		return
	}
	defer b.done()
	defer b.recoverFor(ctx, in.Channel, in.User, "command")
	cmd, err := commands.Parse(in.Text)
	if err != nil {
		b.cfg.Metrics.Command("invalid")
		var pe *commands.Error
		if errors.As(err, &pe) {
			// Like every refusal: what was wrong, that nothing happened, then how to write it.
			b.private(ctx, in.Channel, in.User, text("%s Nothing was requested.\n\n%s", pe.Msg, commands.HelpText(b.cfg.Slash, pe.Verb)))
		}
		return
	}
	b.log.Info("command", "user", in.User, "verb", cmd.Verb, "connector", cmd.Connector)
	b.cfg.Metrics.Command(cmd.Verb)
	var who approvals.Who
	if cmd.Verb != commands.Help {
		if who, err = b.mayRequest(ctx, in.User); err != nil {
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
	case commands.AccessEnd:
		b.accessEnd(ctx, in, who, cmd.ID)
	default:
		b.request(ctx, in, who, cmd)
	}
}

// who is user with their groups. On a directory failure the groups are empty and the error
// is returned: a decision that needs them must then fail closed (see unknownGroups).
func (b *Bot) who(ctx context.Context, user string) (approvals.Who, error) {
	w := approvals.Who{User: user}
	if b.dir == nil {
		return w, nil
	}
	groups, err := b.dir.Groups(ctx, user)
	if err != nil {
		b.log.Warn("user groups unavailable", "user", user, "err", err)
		return w, err
	}
	w.Groups = groups
	return w, nil
}

// errGroupsUnknown refuses a decision that depends on user-group membership Slack could not
// tell just now: access and approval fail closed.
var errGroupsUnknown = errors.New("your user groups could not be read from Slack just now, so the bot cannot tell whether you may do this; nothing was done, try again in a minute")

// mayRequest is who user is, if the access list lets them use the bot. A user listed by id
// passes even when Slack cannot list groups; anyone else then gets errGroupsUnknown.
func (b *Bot) mayRequest(ctx context.Context, user string) (approvals.Who, error) {
	w, gerr := b.who(ctx, user)
	if err := b.cfg.Policy.MayRequest(w); err != nil {
		if gerr != nil {
			return w, errGroupsUnknown
		}
		return w, err
	}
	return w, nil
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
		return nil, fmt.Errorf("there is no connector %q; the connectors are: %s", esc(name), esc(strings.Join(names, ", ")))
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

// Bounds of the connectors command: it asks every connector at once, at most
// connectorsAtOnce at a time, and answers by connectorsDeadline with what it has.
const (
	connectorsAtOnce   = 16
	connectorsDeadline = 30 * time.Second
	connectorWait      = 10 * time.Second // for each one
)

// connectorsMessage asks each connector how it is, in parallel: a bot with a thousand
// connectors answers in seconds, and one that does not answer costs its own line, not
// everyone's wait. Connectors in trouble are listed first.
func (b *Bot) connectorsMessage(ctx context.Context) Message {
	names := b.connectorNames()
	if len(names) == 0 {
		return text("No connectors are configured.")
	}
	dctx, cancel := context.WithTimeout(ctx, connectorsDeadline)
	defer cancel()
	lines := make([]string, len(names))
	bad := make([]bool, len(names))
	sem := make(chan struct{}, connectorsAtOnce)
	var wg sync.WaitGroup
	for i, name := range names {
		m := b.cfg.Connectors[name]
		if h := m.Health(); h.Down {
			lines[i], bad[i] = fmt.Sprintf("• *%s*: down: %s", esc(name), downSentence(name, h)), true
			continue
		}
		load := b.load(name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-dctx.Done():
			}
			if dl, _ := dctx.Deadline(); time.Until(dl) < connectorWait {
				// Too little time left for a fair answer: an operation cut short would count
				// against a server that did nothing wrong.
				lines[i], bad[i] = fmt.Sprintf("• *%s*: not asked: the others took the %s this command allows", esc(name), connectorsDeadline), true
				return
			}
			cctx, cancel := context.WithTimeout(dctx, connectorWait)
			info, err := m.Discover(cctx)
			cancel()
			if err != nil {
				lines[i], bad[i] = fmt.Sprintf("• *%s*: unhealthy: %s", esc(name), sentence(err)), true
				return
			}
			lines[i] = fmt.Sprintf("• *%s*: %s%s", esc(name), esc(info.String()), load)
		}()
	}
	wg.Wait()
	var first, rest []string
	for i, l := range lines {
		if bad[i] {
			first = append(first, l)
		} else {
			rest = append(rest, l)
		}
	}
	title := "Connectors"
	if len(names) > 1 {
		title = fmt.Sprintf("Connectors (%d: %d answering, %d not)", len(names), len(rest), len(first))
	}
	m := paged("*"+title+"*", append(first, rest...))
	m.Text = title
	return m
}

// load is what a connector's executor holds now, as a suffix to its line ("" when idle).
func (b *Bot) load(name string) string {
	q := b.queued(name)
	if q.Running == 0 && q.Waiting == 0 {
		return ""
	}
	return fmt.Sprintf("; %d actions running (of %d at once), %d waiting (of %d)", q.Running, q.Limits.Concurrency, q.Waiting, q.Limits.Queue)
}

// usersMessage lists users: every one, those holding a role on a database (users prod shop),
// those whose authentication database it is (--auth-db), or both filters at once.
func (b *Bot) usersMessage(ctx context.Context, cmd commands.Command) Message {
	m, err := b.connector(cmd.Connector)
	if err != nil {
		return text("%s.", capital(err.Error()))
	}
	for _, db := range []string{cmd.WithRoleOn, cmd.WithAuthDB} {
		if db != "" {
			if err := connector.ValidateDB(db); err != nil {
				return text("%s", sentence(err))
			}
		}
	}
	release, why := b.reading(ctx, m)
	if release == nil {
		return text("%s", why)
	}
	defer release()
	cctx, cancel := context.WithTimeout(ctx, b.cfg.ActionTimeout)
	defer cancel()
	// --auth-db asks one database (usersInfo: 1, viewUser there); otherwise every database
	// (forAllDBs, viewUser on the cluster), filtered here by the roles' database.
	users, err := m.Users(cctx, cmd.WithAuthDB)
	if err != nil {
		return text("Could not list the users of %s: %s", cmd.Connector, sentence(err))
	}
	var where []string
	if cmd.WithRoleOn != "" {
		where = append(where, "holding a role on "+cmd.WithRoleOn)
		users = slices.DeleteFunc(users, func(u connector.User) bool {
			return !slices.ContainsFunc(u.Roles, func(r connector.Role) bool { return r.DB == cmd.WithRoleOn })
		})
	}
	if cmd.WithAuthDB != "" {
		where = append(where, "authenticating on "+cmd.WithAuthDB)
	}
	if len(where) == 0 {
		where = append(where, "all databases")
	}
	scope := esc(strings.Join(where, ", "))
	if len(users) == 0 {
		return text("No users on %s (%s).", cmd.Connector, scope)
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
		lines = append(lines, fmt.Sprintf("• `%s`: %s", code(u.UserRef.String()), esc(rs)))
	}
	return paged(fmt.Sprintf("*Users on %s* (%s, %d)", cmd.Connector, scope, len(users)), lines)
}

func (b *Bot) requestsMessage() Message {
	rs, _, err := b.store.Requests(0, 50, approvals.Pending)
	if err != nil {
		return text("Could not read the requests: %v", err)
	}
	var lines []string
	for _, r := range rs {
		lines = append(lines, fmt.Sprintf("• #%d %s by <@%s>, expires %s", r.ID, summary(r.Action, r.Connector, r.Args), r.Requester, clock(r.ExpiresAt)))
	}
	// Temporary actions past their end are the bot's own overdue work: shown first.
	var overdue []string
	for _, id := range b.overdueIDs() {
		if e, err := b.store.Entry(id); err == nil {
			overdue = append(overdue, fmt.Sprintf("• :rotating_light: OVERDUE journal #%d %s by <@%s>: %s", e.ID, summary(e.Action, e.Connector, e.Args), e.Requester, entryState(e)))
		}
	}
	if len(lines) == 0 && len(overdue) == 0 {
		return text("No request is waiting for approval.")
	}
	if len(lines) == 0 {
		lines = []string{"No request is waiting for approval."}
	}
	return paged("*Pending requests*", append(overdue, lines...))
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
		line := fmt.Sprintf("• #%d %s %s by %s: %s", e.ID, clock(e.CreatedAt), summary(e.Action, e.Connector, e.Args), actor(e.Requester), entryState(e))
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
	if !e.UndoAt.IsZero() && e.State == store.EntryDone {
		s += "; temporary, ends " + clock(e.UndoAt)
		if e.UndoTries > 0 {
			s += fmt.Sprintf(" — OVERDUE: ending it failed %d time(s), last: %s", e.UndoTries, e.UndoError)
		}
	}
	return s
}

// actor is who did something, for lists: a person, or the bot itself.
func actor(user string) string {
	if user == botActor || user == "" {
		return "the bot"
	}
	return "<@" + user + ">"
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
	s = esc(s)
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return capital(s)
}

// emulatedNote is the line every card and result of connector conn carries when the
// connectors are stand-ins (Config.Emulated), or nothing.
func (b *Bot) emulatedNote(conn string) []Block {
	if !b.cfg.Emulated {
		return nil
	}
	return []Block{{Context: fmt.Sprintf(":information_source: Demo: on the in-process emulator, not the real %s; nothing here reaches your servers.", esc(conn))}}
}

// plural is n with its noun, in the plural unless n is one: "1 approval", "2 approvals".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
