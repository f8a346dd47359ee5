package bot_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"mongobot/approvals"
	"mongobot/bot"
	"mongobot/bot/slack"
	"mongobot/bot/slack/slacktest"
	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/internal/syncbuf"
	"mongobot/secret"
	"mongobot/store"
)

// Users of the stand-in workspace.
const (
	alice   = "U0ALICE" // approver
	bob     = "U0BOB"   // approver
	carol   = "U0CAROL" // approver through the user group
	dev     = "U0DEV"   // may request, not an approver
	eve     = "U0EVE"   // may not even request
	channel = "C0OPS"   // where people type commands
	appr    = "C0APPROVALS"
	slash   = "/mongo"
	wait    = 15 * time.Second
)

// clock is the injected time, shared by the bot and the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testPolicy() approvals.Policy {
	return approvals.Policy{
		Access:      approvals.Group{Users: []string{alice, bob, dev}, Usergroups: []string{"S0DBAS"}},
		Approvers:   approvals.Group{Users: []string{alice, bob}, Usergroups: []string{"S0DBAS"}},
		Quorum:      1,
		ExpireAfter: time.Hour,
		Rules:       []approvals.Rule{{Actions: []string{"drop-user"}, Connectors: []string{"prod"}, Quorum: 2}},
		JIT:         map[string]approvals.JIT{"prod": {Roles: []string{"read@*", "readWrite@shop"}, MaxFor: 4 * time.Hour}},
	}
}

// env is one end-to-end setup: the Slack stand-in, a MongoDB server, a store in a temp
// folder, and the bot connected over Socket Mode.
type env struct {
	t      *testing.T
	slack  *slacktest.Server
	emu    *mongotest.Server // nil when the server is FerretDB
	uri    string
	admin  *connector.Mongo // the test's own view of the server
	dir    string
	clock  *clock
	logs   *syncbuf.Buffer
	st     *store.Store
	bot    *bot.Bot
	cancel context.CancelFunc
	done   chan error
	// secrets are strings that must never appear in Slack calls, logs or the journal.
	secrets []string
	sched   bot.ScheduleConfig
	// actionTimeout is the bot's ActionTimeout.
	actionTimeout time.Duration
	deliveries    func(e *env) []bot.Delivery
	// proxy, when set, stands between the bot's "prod" connector and the server (so a test
	// can black-hole it); "stage" then reaches the same server directly.
	proxy          *mongotest.Proxy
	limits         map[string]bot.Limits
	commandTimeout time.Duration
	conns          map[string]*connector.Mongo // the bot's connectors, as last started
	dead           int
	extra          func(e *env) map[string]bot.Mongo
	timerJournal   func() (*store.Store, error)
}

type envOptions struct {
	ferret    bool // run against FerretDB instead of the emulator
	policy    *approvals.Policy
	schedules bot.ScheduleConfig
	// actionTimeout bounds each action (default 20s).
	actionTimeout time.Duration
	// version is the emulator's MongoDB version (default its own, 7.0).
	version string
	// adminRoles are the roles of the bot's account on the emulator (default root).
	adminRoles []mongotest.Role
	// deliveries, when set, makes the bot's delivery configuration (at every start).
	deliveries func(e *env) []bot.Delivery
	// proxy puts a black-holeable proxy before "prod" and adds "stage", direct (env.proxy).
	proxy bool
	// limits are the connectors' executor limits; commandTimeout their command timeout.
	limits         map[string]bot.Limits
	commandTimeout time.Duration
	// dead adds that many connectors (dead00, dead01, ...) behind the proxy as well.
	dead int
	// extra adds connectors of other kinds (an Atlas project), made at every start.
	extra func(e *env) map[string]bot.Mongo
	// timerJournal is the bot's Config.TimerJournal (default: none, the bot's store).
	timerJournal func() (*store.Store, error)
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, slack: slacktest.New(), dir: filepath.Join(t.TempDir(), "data"),
		clock: &clock{t: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}, logs: &syncbuf.Buffer{}}
	t.Cleanup(e.slack.Close)
	e.slack.SetGroup("S0DBAS", carol)
	if o.ferret {
		f, err := mongotest.StartFerretDB(t.TempDir())
		if err != nil {
			t.Fatalf("FerretDB: %v", err)
		}
		t.Cleanup(f.Close)
		e.uri = f.URI()
		e.secrets = append(e.secrets, f.AdminPassword())
	} else {
		emu, err := mongotest.NewServer(mongotest.Options{Version: o.version, AdminRoles: o.adminRoles})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(emu.Close)
		e.emu, e.uri = emu, emu.URI()
		e.secrets = append(e.secrets, emu.AdminPassword())
	}
	admin, err := connector.New(connector.Config{Name: "check", URI: secret.New(e.uri)})
	if err != nil {
		t.Fatal(err)
	}
	e.admin = admin
	t.Cleanup(func() { admin.Close(context.Background()) })
	p := testPolicy()
	if o.policy != nil {
		p = *o.policy
	}
	e.sched, e.actionTimeout, e.deliveries = o.schedules, o.actionTimeout, o.deliveries
	e.limits, e.commandTimeout, e.dead, e.extra = o.limits, o.commandTimeout, o.dead, o.extra
	e.timerJournal = o.timerJournal
	if o.proxy {
		u, err := url.Parse(e.uri)
		if err != nil {
			t.Fatal(err)
		}
		if e.proxy, err = mongotest.NewProxy(u.Host); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.proxy.Close)
	}
	if e.actionTimeout == 0 {
		e.actionTimeout = 20 * time.Second
	}
	e.start(p)
	t.Cleanup(func() {
		e.stop()
		e.checkNoSecrets()
		if t.Failed() {
			t.Logf("bot log:\n%s", e.logs.String())
		}
	})
	return e
}

// start runs a bot on e's folder, like a fresh process would.
func (e *env) start(p approvals.Policy) {
	e.t.Helper()
	st, err := store.Open(e.dir, store.Options{Now: e.clock.Now, NoSync: true})
	if err != nil {
		e.t.Fatal(err)
	}
	uri := e.uri
	if e.proxy != nil {
		uri = e.proxy.URI(e.uri)
	}
	cc := connector.Config{Name: "prod", URI: secret.New(uri), ServerSelectionTimeout: time.Second,
		CommandTimeout: e.commandTimeout, ProbeInterval: 200 * time.Millisecond}
	mongo, err := connector.New(cc)
	if err != nil {
		e.t.Fatal(err)
	}
	e.conns = map[string]*connector.Mongo{"prod": mongo}
	conns := map[string]bot.Mongo{"prod": mongo}
	if e.proxy != nil {
		cc.Name, cc.URI = "stage", secret.New(e.uri)
		stage, err := connector.New(cc)
		if err != nil {
			e.t.Fatal(err)
		}
		e.conns["stage"], conns["stage"] = stage, stage
		for i := range e.dead {
			cc.Name, cc.URI = fmt.Sprintf("dead%02d", i), secret.New(uri)
			d, err := connector.New(cc)
			if err != nil {
				e.t.Fatal(err)
			}
			e.conns[cc.Name], conns[cc.Name] = d, d
		}
	}
	atlas, err := connector.New(connector.Config{Name: "atlas", URI: secret.New("mongodb+srv://bot:atlas-secret-pw@cluster0.ab1cd.mongodb.net/")})
	if err != nil {
		e.t.Fatal(err)
	}
	e.secrets = append(e.secrets, "atlas-secret-pw")
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sl := slack.New(slack.Config{AppToken: e.slack.AppToken, BotToken: e.slack.BotToken, APIURL: e.slack.URL(),
		Slash: slash, Usergroups: []string{"S0DBAS"}, Log: log, PingInterval: 2 * time.Second})
	e.conns["atlas"], conns["atlas"] = atlas, atlas
	if e.extra != nil {
		for n, m := range e.extra(e) {
			conns[n] = m
		}
	}
	b := bot.New(bot.Config{Slash: slash, Channel: appr, Policy: p, Connectors: conns, Limits: e.limits,
		Now: e.clock.Now, Log: log, ActionTimeout: e.actionTimeout, Schedules: e.sched, Deliveries: e.deliveriesNow(),
		TimerJournal: e.timerJournal}, st, sl, sl)
	ctx, cancel := context.WithCancel(context.Background())
	e.st, e.bot, e.cancel, e.done = st, b, cancel, make(chan error, 1)
	b.Reconcile(ctx)
	if err := b.LoadTimers(ctx); err != nil {
		e.t.Fatal(err)
	}
	// A new socket, not the previous bot's, which the stand-in may not have noticed is gone.
	before := e.slack.Connections()
	go func() { e.done <- sl.Run(ctx, b) }()
	if err := e.slack.Wait(wait, "the bot to connect", func(s *slacktest.Server) bool { return s.Connections() > before && s.Connected() }); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) deliveriesNow() []bot.Delivery {
	if e.deliveries == nil {
		return nil
	}
	return e.deliveries(e)
}

// advance moves the clock on and runs what is due, waiting for it to finish.
func (e *env) advance(d time.Duration) {
	e.clock.Add(d)
	e.bot.RunDue(context.Background()).Wait()
}

// checkUntil runs the bot's periodic check of unfinished entries, as its every-minute timer
// does, until a message match accepts appears. An entry whose action or an earlier check is
// still at work is skipped by a check, so one call is not enough.
func (e *env) checkUntil(what string, match func(slacktest.Message) bool) slacktest.Message {
	e.t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(wait)
	for {
		e.bot.ReconcileStale(context.Background())
		if m, ok := e.slack.Find(match); ok {
			return m
		}
		select {
		case <-tick.C:
		case <-deadline:
			e.t.Fatalf("waited %s for %s\nmessages:\n%s", wait, what, e.dump())
		}
	}
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Errorf("slack adapter: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.bot.Shutdown(ctx); err != nil {
		e.t.Error(err)
	}
	for _, m := range e.conns {
		_ = m.Close(ctx)
	}
	e.st.Close()
	e.cancel = nil
}

// command types a slash command as user and waits for its ack.
func (e *env) command(user, text string) string {
	e.t.Helper()
	id, err := e.slack.SlashCommand(user, channel, slash, text)
	if err != nil {
		e.t.Fatal(err)
	}
	e.acked(id)
	return id
}

func (e *env) acked(id string) time.Duration {
	e.t.Helper()
	var d time.Duration
	err := e.slack.Wait(wait, "ack of "+id, func(s *slacktest.Server) bool {
		var ok bool
		d, ok = s.AckLatency(id)
		return ok
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// click presses the button with text on m as user and waits for the ack.
func (e *env) click(user string, m slacktest.Message, text string) {
	e.t.Helper()
	b, ok := m.Find(text)
	if !ok {
		e.t.Fatalf("no %q button on %s", text, m.All())
	}
	id, err := e.slack.Click(user, m, b)
	if err != nil {
		e.t.Fatal(err)
	}
	e.acked(id)
}

// message waits for a message matching all parts (in its text or blocks).
func (e *env) message(what string, match func(slacktest.Message) bool) slacktest.Message {
	e.t.Helper()
	m, err := e.slack.WaitMessage(wait, what, match)
	if err != nil {
		e.t.Fatalf("%v\nmessages:\n%s", err, e.dump())
	}
	return m
}

func (e *env) dump() string {
	var b strings.Builder
	for _, m := range e.slack.Messages() {
		kind := "post"
		if m.Ephemeral {
			kind = "ephemeral to " + m.User
		}
		fmt.Fprintf(&b, "- %s %s/%s: %.300s\n", kind, m.Channel, m.TS, m.All())
	}
	return b.String()
}

// private waits for an ephemeral message to user containing parts.
func (e *env) private(user string, parts ...string) slacktest.Message {
	e.t.Helper()
	has := slacktest.Containing(parts...)
	return e.message(fmt.Sprintf("a private message to %s saying %q", user, parts), func(m slacktest.Message) bool {
		return ((m.Ephemeral && m.User == user) || m.Channel == "D"+user) && has(m)
	})
}

// card waits for the card of a request matching parts, in the approvals channel.
func (e *env) card(parts ...string) slacktest.Message {
	e.t.Helper()
	has := slacktest.Containing(parts...)
	return e.message(fmt.Sprintf("a card saying %q", parts), func(m slacktest.Message) bool {
		return m.Channel == appr && m.Thread == "" && has(m)
	})
}

// cardNow is the latest state of card m.
func (e *env) cardNow(m slacktest.Message) slacktest.Message {
	got, _ := e.slack.Find(func(x slacktest.Message) bool { return x.Channel == m.Channel && x.TS == m.TS })
	return got
}

// cardSays waits until card m says all parts.
func (e *env) cardSays(m slacktest.Message, parts ...string) slacktest.Message {
	e.t.Helper()
	has := slacktest.Containing(parts...)
	return e.message(fmt.Sprintf("card %s to say %q", m.TS, parts), func(x slacktest.Message) bool {
		return x.Channel == m.Channel && x.TS == m.TS && has(x)
	})
}

// result waits for a result in the thread of card m.
func (e *env) result(card slacktest.Message, parts ...string) slacktest.Message {
	e.t.Helper()
	has := slacktest.Containing(parts...)
	return e.message(fmt.Sprintf("a result in the thread of %s saying %q", card.TS, parts), func(x slacktest.Message) bool {
		return x.Channel == appr && x.Thread == card.TS && has(x)
	})
}

// approveRollback waits for the approval card of a rollback of journal #id (a rollback is
// judged by the policy of the action it performs) and approves it as each approver.
func (e *env) approveRollback(id int, approvers ...string) slacktest.Message {
	e.t.Helper()
	card := e.card(fmt.Sprintf("rollback of #%d", id))
	for _, a := range approvers {
		e.click(a, card, bot.TextApprove)
	}
	return card
}

// createUser makes a user on the server through the test's own connector and returns its password.
func (e *env) createUser(name string, roles ...connector.Role) string {
	e.t.Helper()
	_, pw, err := e.admin.CreateUser(context.Background(), "create-user", connector.UserRef{User: name, DB: "admin"}, roles)
	if err != nil {
		e.t.Fatal(err)
	}
	e.secrets = append(e.secrets, pw.Reveal())
	return pw.Reveal()
}

func (e *env) state(name string) connector.UserState {
	e.t.Helper()
	s, err := e.admin.State(context.Background(), connector.UserRef{User: name, DB: "admin"})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) login(name, pw string) error {
	return e.admin.Login(context.Background(), connector.UserRef{User: name, DB: "admin"}, secret.New(pw))
}

// offer waits for a Reveal password offer to owner for user name.
func (e *env) offer(owner, name string) slacktest.Message {
	e.t.Helper()
	return e.message("a Reveal password offer to "+owner, func(m slacktest.Message) bool {
		_, ok := m.Find(bot.TextReveal)
		return m.Channel == "D"+owner && ok && strings.Contains(m.All(), "`"+name+"@admin`")
	})
}

var passwordBlock = regexp.MustCompile("```([^`]+)```")

// reveal clicks Reveal password as owner on the latest offer for user name and returns the
// password shown.
func (e *env) reveal(owner, name string) string {
	e.t.Helper()
	offer := e.offer(owner, name)
	before := len(e.slack.Messages())
	e.click(owner, offer, bot.TextReveal)
	// Only a message posted after this click counts: an earlier reveal must not be taken.
	var m slacktest.Message
	err := e.slack.Wait(wait, "the revealed password", func(s *slacktest.Server) bool {
		for _, x := range s.Messages()[before:] {
			if x.Ephemeral && x.User == owner && passwordBlock.MatchString(x.All()) {
				m = x
				return true
			}
		}
		return false
	})
	if err != nil {
		e.t.Fatalf("%v\n%s", err, e.dump())
	}
	pw := passwordBlock.FindStringSubmatch(m.All())[1]
	e.secrets = append(e.secrets, pw)
	return pw
}

// checkNoSecrets searches every Web API call, every log line and the journal file's bytes
// for the passwords and connection-string credentials of the test. A password may appear in
// exactly one place: the ephemeral chat.postEphemeral that revealed it to its owner.
func (e *env) checkNoSecrets() {
	raw, err := os.ReadFile(filepath.Join(e.dir, store.FileName))
	if err != nil {
		e.t.Errorf("journal: %v", err)
	}
	for _, p := range leaks(e.secrets, raw, e.logs.String(), e.slack.Calls()) {
		e.t.Error(p)
	}
}

// leaks says where any of secrets shows up: in the journal's bytes, the log, or a Web API
// call other than the one ephemeral reveal of a password to its owner.
func leaks(secrets []string, journal []byte, logs string, calls []slacktest.Call) []string {
	var out []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if bytes.Contains(journal, []byte(s)) {
			out = append(out, "a secret is in the journal file in clear")
		}
		if strings.Contains(logs, s) {
			out = append(out, "a secret is in the bot's logs")
		}
		reveals := 0
		for _, c := range calls {
			if !strings.Contains(c.Args.Encode(), urlQuery(s)) && !strings.Contains(fmt.Sprint(c.Args), s) {
				continue
			}
			if c.Method == "chat.postEphemeral" && strings.Contains(c.Args.Get("blocks"), "Your new password") {
				if c.Error == "" { // a refused call showed it to nobody
					reveals++
				}
				continue
			}
			out = append(out, "a secret was sent to Slack in "+c.Method)
		}
		if reveals > 1 {
			out = append(out, fmt.Sprintf("a password was revealed %d times", reveals))
		}
	}
	return out
}

func urlQuery(s string) string {
	return strings.TrimPrefix(url.Values{"x": {s}}.Encode(), "x=")
}

func mongotestFault(command string, code int32) mongotest.Fault {
	return mongotest.Fault{Command: command, Code: code, Message: "not authorized on admin to execute command", Times: 1}
}
