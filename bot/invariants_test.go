package bot_test

// The invariant checker: a randomized, seed-reproducible run of the real bot (Socket Mode
// through the Slack stand-in, the MongoDB emulator over the wire protocol, a bbolt journal in
// a temp folder) through long sequences of random steps, checking after every step what the
// bot promises the people who give it an admin account. Jepsen's checkers and model-based
// testing are the model: the emulator's own record of what it applied is the ground truth,
// and the journal must account for every bit of it.
//
//	go test ./bot -run Invariants                      the fixed seeds CI runs
//	go test ./bot -run Invariants -seeds 200 -steps 400 a longer hunt
//	go test ./bot -run Invariants -seed 1234 -v         one seed, its steps printed
//
// On a violation it prints the seed and the shortest step list it could shrink to, as Go
// literals to paste into a regression test (see runSteps).

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mongobot/approvals"
	"mongobot/bot"
	"mongobot/bot/slack"
	"mongobot/bot/slack/slacktest"
	"mongobot/commands"
	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/delivery"
	"mongobot/ha/etcdtest"
	"mongobot/internal/syncbuf"
	"mongobot/secret"
	"mongobot/store"
)

var (
	flagSeeds = flag.Int("seeds", 0, "invariant checker: how many seeds to run (0: the fixed CI set)")
	flagSteps = flag.Int("steps", 0, "invariant checker: steps per seed (0: the default)")
	flagSeed  = flag.Uint64("seed", 0, "invariant checker: run only this seed")
	flagFrom  = flag.Uint64("seed-from", 1000, "invariant checker: the first seed of -seeds (the fixed CI set starts at 1000)")
)

// done counts, over a test's seeds, the journal entries not failed per connector, and cloudApplied
// the changes Atlas applied to its cluster: the checker says how much of each ran.
var (
	done         = map[string]*atomic.Int64{"prod": {}, "cloud": {}}
	cloudApplied atomic.Int64
	scheduleRuns atomic.Int64 // of those, scheduled rotations
	delivered    atomic.Int64 // at rest: applications' logins judged after a delivery
	abandoned    atomic.Int64 // and after a delivery the bot abandoned
	givenUp      atomic.Int64 // of those, temporary actions ended early without a vote
)

// ciSeeds and ciSteps are what a plain `go test` runs. The race detector slows the bot about
// tenfold, so a -race run does fewer steps; .ci/run also runs the checker without -race over
// the full set (ciSeedsFull × ciSteps ≥ 10,000 steps).
const (
	ciSeeds     = 6
	ciSeedsFull = 40
	ciSteps     = 260
)

// Step is one thing that happens to the bot. Selectors (N, M) are resolved at run time modulo
// what exists then (messages, buttons, envelopes), so a shrunk list still means something.
type Step struct {
	Kind string // cmd, click, approve, giveup, forge, redeliver, drop, fault, crash, reload, clock, drift, reveal, target, outage, member, partition, tamper, lostreply
	User string
	Text string
	N, M int
}

func (s Step) String() string {
	return fmt.Sprintf("{Kind: %q, User: %q, Text: %q, N: %d, M: %d}", s.Kind, s.User, s.Text, s.N, s.M)
}

// People of the checker's workspace.
const (
	frank = "U0FRANK" // may request until a config reload removes them
)

var (
	everyone   = []string{alice, bob, carol, dev, eve, frank}
	requesters = []string{dev, dev, dev, frank, alice, bob, eve}
	targets    = []string{"u1", "u2", "u3", "u4", "botadmin"}
	roles      = []string{"read@shop", "readWrite@shop", "dbAdmin@reports", "root", "read@reports"}
	durations  = []string{"30m", "4h", "2d"}
	jumps      = []time.Duration{time.Minute, 10 * time.Minute, 31 * time.Minute, time.Hour, 4*time.Hour + time.Minute, 49 * time.Hour}
	reasons    = []string{"", ` --reason "OPS-12"`, ` --reason "<!channel> see <https://evil.example|the runbook> and <@U0ALICE>"`, " --reason `x`y`"}
)

// genSteps draws n steps from seed.
func genSteps(seed uint64, n int) []Step {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	var out []Step
	for len(out) < n {
		var s Step
		switch w := r.IntN(100); {
		case w < 30:
			s = Step{Kind: "cmd", User: pick(requesters), Text: genCommand(r, pick)}
		case w < 55:
			s = Step{Kind: "click", User: pick(everyone), N: r.IntN(1 << 20), M: r.IntN(1 << 20)}
		case w < 60:
			s = Step{Kind: "forge", User: pick(everyone), N: r.IntN(1 << 20), M: r.IntN(1 << 20)}
		case w < 66:
			s = Step{Kind: "reveal", User: pick([]string{dev, dev, frank, alice, eve}), N: r.IntN(1 << 20)}
		case w < 70:
			s = Step{Kind: "redeliver", N: r.IntN(1 << 20)}
		case w < 72:
			s = Step{Kind: "drop"}
		case w < 79:
			s = Step{Kind: "fault", N: r.IntN(8), M: r.IntN(6)}
		case w < 82:
			s = Step{Kind: "crash", N: r.IntN(2), M: r.IntN(20)}
		case w < 84:
			s = Step{Kind: "reload", N: r.IntN(8)}
		case w < 87:
			s = Step{Kind: "checkloop"}
		case w < 89:
			// A temporary action ended early: by its requester, an approver, or someone else.
			s = Step{Kind: "giveup", N: r.IntN(1 << 20), M: r.IntN(3)}
		case w < 95:
			s = Step{Kind: "clock", N: r.IntN(len(jumps))}
		case w < 96:
			s = Step{Kind: "outage", N: r.IntN(2)}
		case w < 98:
			s = Step{Kind: "drift", User: pick(targets[:4]), Text: pick(roles), N: r.IntN(2)}
		default:
			s = Step{Kind: "target", N: r.IntN(2)}
		}
		out = append(out, s)
	}
	return out
}

func genCommand(r *rand.Rand, pick func([]string) string) string {
	u, role, why := pick(targets), pick(roles), pick(reasons)
	forD := ""
	if r.IntN(2) == 0 {
		forD = " --for " + pick(durations)
	}
	id := strconv.Itoa(1 + r.IntN(12))
	// One action in three is on the Atlas project, where lock, unlock, --kill-sessions and
	// --logout-all are refused before anyone votes.
	c := pick([]string{"prod ", "prod ", "cloud "})
	switch r.IntN(18) {
	case 0, 1, 2:
		return "grant-role " + c + u + " " + role + forD + why
	case 3, 4:
		return "revoke-role " + c + u + " " + role + why
	case 5:
		return "lock-user " + c + u + forD + why
	case 6:
		return "unlock-user " + c + u + why
	case 7:
		return "rotate-password " + c + u + pick([]string{"", " --kill-sessions", " --logout-all"}) + why
	case 8:
		return "create-readonly-user " + c + "new" + id + " shop" + why
	case 9:
		return "drop-user " + c + "new" + id + why
	case 10:
		return `schedule rotate-password prod ` + u + ` "` + pick([]string{"0 * * * *", "*/30 * * * *", "@daily"}) + `"`
	case 11:
		return "unschedule " + id
	case 12, 13:
		return "rollback " + id + why
	case 14:
		return "cancel " + id
	case 15:
		// Just-in-time access: roles the policy offers, one it does not, an auto-approved
		// read, a duration past the policy's bound.
		return "access prod " + pick([]string{"read@shop", "readWrite@shop", "read@shop readWrite@shop", "root"}) +
			" --for " + pick([]string{"30m", "1h", "4h", "5h"}) + why
	case 16:
		return "access-end " + id
	}
	return pick([]string{"requests", "history", "schedules", "users prod", "help"})
}

// policies are the configs a reload switches between: access and approvers change under the
// bot's feet, as they do at a real company.
func checkerPolicy(v int) approvals.Policy {
	p := approvals.Policy{
		Access:      approvals.Group{Users: []string{alice, bob, dev, frank}, Usergroups: []string{"S0DBAS"}},
		Approvers:   approvals.Group{Users: []string{alice, bob}, Usergroups: []string{"S0DBAS"}},
		Quorum:      1,
		ExpireAfter: time.Hour,
		Rules:       []approvals.Rule{{Actions: []string{"drop-user"}, Connectors: []string{"prod"}, Quorum: 2}},
		JIT: map[string]approvals.JIT{"prod": {Roles: []string{"read@*", "readWrite@shop"}, MaxFor: 4 * time.Hour,
			AutoApprove: []approvals.JITAuto{{Roles: []string{"read@*"}, Who: approvals.Group{Users: []string{dev}}}}}},
	}
	if v&1 != 0 { // frank loses access
		p.Access.Users = []string{alice, bob, dev}
	}
	if v&2 != 0 { // bob is no longer an approver, and dev's reads are no longer auto-approved
		p.Approvers.Users = []string{alice}
		j := p.JIT["prod"]
		j.AutoApprove = nil
		p.JIT["prod"] = j
	}
	if v&4 != 0 { // revokes and unlocks need no approval
		p.Require = []string{"rotate-password", "grant-role", "create-readonly-user", "drop-user", "lock-user", "schedule", "unschedule", "access"}
	}
	return p
}

// world is one run: the stand-ins, the bot (restarted as steps ask), and what the checker
// has seen so far.
type world struct {
	t      testing.TB
	slack  *slacktest.Server
	emu    *mongotest.Server
	proxy  *mongotest.Proxy
	botURI string
	dir    string
	clock  *clock
	logs   *syncbuf.Buffer
	pv     int // the policy version in force
	policy approvals.Policy
	// reps are the bot's running processes: one on a bbolt journal, or several replicas
	// sharing one on etcd (ha), each with its own socket to the Slack stand-in.
	reps    []*replica
	ha      *haSide
	conns   []*connector.Mongo // every connection a bot process made, to close at the end
	envs    []string
	zombies []*bot.Bot // bots "killed" mid-step: their goroutines finish on their own
	panics  int64
	secrets []string
	admin   *connector.Mongo
	cloud   *cloudSide // the Atlas project behind connector "cloud"
	// app and pair are where the rotated passwords of u3 (one user) and of u4/u5 (alternating
	// users) are delivered: real programs writing files, as an application reads them.
	app, pair *appSide
	// generation counts bot processes, to label their sockets.
	generation atomic.Int64

	problems []string
	// forgedIDs are the request ids tamper steps wrote behind the bot's back (a forgery, or
	// a copy of another's bytes under a new id), with what each was.
	forgedIDs map[uint64]string
	// altered are the requests a tamper step altered, as they were before: the bot acted
	// on them as they were, and the checks judge that.
	altered map[uint64]store.Request
	// pendingCopies are requests as stored while pending, kept by tamper steps to put back
	// later; putBack the requests put back, with how many entries named each then.
	pendingCopies map[uint64][]byte
	putBack       map[uint64]int
	tampers       int // tamper steps applied
	// What earlier steps saw, for the checks that judge a change at the step it happened.
	seenVotes   map[uint64]int
	seenReq     map[uint64]string
	seenEntry   map[uint64]int // entry id -> step it was first seen at
	stepNo      int
	crashIn     time.Duration   // when set, the next step is cut short by a crash this long in
	crashWho    int             // and the replica it kills (see victim)
	clicked     []string        // "user channel/ts" of the clicks of this step
	checkLoop   bool            // when set, the next step runs beside a looping periodic check
	dying       bool            // the step being applied is cut short by a crash
	revealSeen  map[string]bool // reveals already judged, by message ts
	clickedEver map[string]bool // "user channel/ts" of every click sent
	// inspect, when set, looks at the world once the steps ran, before it closes (tests of
	// one path use it to see that the path was taken).
	inspect func(*world)
	// endedAlarms are the temporary entries seen ended, with the overdue alarms about each then.
	endedAlarms map[uint64]int
}

func (w *world) problem(format string, a ...any) {
	w.problems = append(w.problems, fmt.Sprintf("step %d: ", w.stepNo)+fmt.Sprintf(format, a...))
}

func newWorld(t testing.TB, cluster *etcdtest.Cluster) (*world, error) {
	w := &world{t: t, slack: slacktest.New(), dir: filepath.Join(t.TempDir(), "data"), ha: newHASide(cluster),
		clock: &clock{t: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}, logs: &syncbuf.Buffer{},
		seenVotes: map[uint64]int{}, seenReq: map[uint64]string{}, seenEntry: map[uint64]int{}, revealSeen: map[string]bool{}, clickedEver: map[string]bool{}, endedAlarms: map[uint64]int{}}
	w.slack.SetGroup("S0DBAS", carol)
	if w.ha != nil {
		// One socket per replica, envelopes spread across them as Slack does.
		w.slack.SetSockets(w.ha.replicas, nil)
	}
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		return nil, err
	}
	w.emu = emu
	const botPwd = "bot-admin-secret-pw"
	if err := emu.CreateUser("botadmin", botPwd, "admin", []mongotest.Role{{Role: "root", DB: "admin"}}); err != nil {
		return nil, err
	}
	// The bot reaches the server through a proxy that an outage step black-holes.
	if w.proxy, err = mongotest.NewProxy(emu.Addr()); err != nil {
		return nil, err
	}
	w.botURI = w.proxy.URI(emu.UserURI("botadmin", botPwd, "admin"))
	w.secrets = append(w.secrets, botPwd, emu.AdminPassword())
	admin, err := connector.New(connector.Config{Name: "check", URI: secret.New(emu.URI())})
	if err != nil {
		return nil, err
	}
	w.admin = admin
	for _, u := range targets[:4] {
		if _, _, err := admin.CreateUser(context.Background(), "setup", connector.UserRef{User: u, DB: "admin"}, []connector.Role{{Name: "read", DB: "shop"}}); err != nil {
			return nil, err
		}
	}
	if w.cloud, err = newCloud(w); err != nil {
		return nil, err
	}
	w.policy = checkerPolicy(0)
	w.app, w.pair = newAppSide(t), newAppSide(t)
	return w, w.start()
}

// gated is a real delivery target that refuses once its bot process is gone.
type gated struct {
	bot.Target
	alive func() bool
}

func (g gated) Deliver(ctx context.Context, c delivery.Credential) (string, error) {
	if !g.alive() {
		return "", errors.New("the process is dead")
	}
	return g.Target.Deliver(ctx, c)
}

// replica is one bot process: its journal, bot, clients and socket. A "killed" one's
// goroutines may run on, but a dead process delivers nothing, so its targets refuse.
type replica struct {
	name   string // its name in the group, kept across restarts
	label  string // its socket's, new for each process
	st     *store.Store
	b      *bot.Bot
	prod   *connector.Mongo   // its connector "prod"
	conns  []*connector.Mongo // its clients, which die with it
	cancel context.CancelFunc
	done   chan error // its Socket Mode loop's end
	sent   int64      // envelopes sent to its socket since it started
	dead   atomic.Bool
	shared // on etcd (invariants_ha_test.go)
}

func (r *replica) alive() bool { return !r.dead.Load() }

// deliveries is the checker's delivery configuration for bot process r.
func (w *world) deliveries(r *replica) []bot.Delivery {
	ref := func(u string) connector.UserRef { return connector.UserRef{User: u, DB: "admin"} }
	return []bot.Delivery{
		{Connector: "prod", Users: []connector.UserRef{ref("u3")}, Targets: []bot.Target{gated{w.app.target(w.t), r.alive}}},
		{Connector: "prod", Users: []connector.UserRef{ref("u4"), ref("u5")}, Alternating: true, Targets: []bot.Target{gated{w.pair.target(w.t), r.alive}}},
	}
}

// start starts the bot's processes: one, or every replica, and waits for one to lead.
func (w *world) start() error {
	n := 1
	if w.ha != nil {
		n = w.ha.replicas
	}
	w.reps = make([]*replica, n)
	for i := range n {
		if err := w.startReplica(i); err != nil {
			return err
		}
	}
	if w.ha != nil && w.lead() == nil {
		return errors.New("no replica leads")
	}
	return nil
}

// startReplica starts process i (again).
func (w *world) startReplica(i int) error {
	r := &replica{name: fmt.Sprintf("r%d", i), label: fmt.Sprintf("p%d", w.generation.Add(1))}
	var st *store.Store
	var err error
	if w.ha == nil {
		st, err = store.Open(w.dir, store.Options{Now: w.clock.Now, NoSync: true})
	} else {
		st, err = w.ha.join(w, r)
	}
	if err != nil {
		return fmt.Errorf("the journal does not open after a stop: %v", err)
	}
	if err := st.Check(); err != nil {
		w.problem("the journal is not consistent after a stop: %v", err)
	}
	m, err := connector.New(connector.Config{Name: "prod", URI: secret.New(w.botURI), ServerSelectionTimeout: 200 * time.Millisecond, CommandTimeout: 2 * time.Second, ProbeInterval: 50 * time.Millisecond})
	if err != nil {
		return err
	}
	r.prod = m
	cloud, wire, err := w.cloud.connector(w, r.alive)
	if err != nil {
		return err
	}
	r.conns = []*connector.Mongo{m, wire}
	w.conns = append(w.conns, r.conns...)
	log := slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("replica", r.name)
	token := w.slack.AppToken
	if w.ha != nil {
		token = w.slack.AppTokenFor(r.label)
	}
	sl := slack.New(slack.Config{AppToken: token, BotToken: w.slack.BotToken, APIURL: w.slack.URL(),
		Slash: slash, Usergroups: []string{"S0DBAS"}, Log: log, PingInterval: 2 * time.Second, Now: w.clock.Now})
	// Small limits, so that steps meet a full executor and a full queue.
	cfg := bot.Config{Slash: slash, Channel: appr, Policy: w.policy, Connectors: map[string]bot.Mongo{"prod": m, "cloud": cloud},
		Limits: map[string]bot.Limits{"prod": {Concurrency: 2, Queue: 2}, "cloud": {Concurrency: 2, Queue: 2}},
		Now:    w.clock.Now, Log: log, ActionTimeout: 400 * time.Millisecond, Deliveries: w.deliveries(r)}
	if w.ha != nil {
		cfg.TimerJournal = r.timerJournal
	}
	b := bot.New(cfg, st, sl, sl)
	ctx, cancel := context.WithCancel(context.Background())
	r.st, r.b, r.cancel, r.done = st, b, cancel, make(chan error, 1)
	w.reps[i] = r
	before := w.slack.Connections()
	if w.ha == nil {
		b.Reconcile(ctx)
		if err := b.LoadTimers(ctx); err != nil {
			return err
		}
	} else {
		w.ha.campaign(ctx, w, r)
	}
	go func() { r.done <- sl.Run(ctx, b) }()
	return w.slack.Wait(wait, "the bot to connect", func(s *slacktest.Server) bool {
		return s.Connections() > before && (w.ha == nil && s.Connected() || s.ConnectedAs(r.label))
	})
}

// lead is the process that runs the timers: the only one on bbolt; on etcd the replica
// whose term has begun, waited for (nil, a problem noted, when none leads in 30s).
func (w *world) lead() *replica {
	if w.ha == nil {
		return w.reps[0]
	}
	return w.ha.leader(w)
}

// journal is the journal as the bot's processes see it (any one of them, on etcd).
func (w *world) journal() *store.Store { return w.reps[0].st }

// victim is the process a crash kills: on etcd mostly the leader, sometimes another.
func (w *world) victim(m int) int {
	if w.ha == nil {
		return 0
	}
	if m%3 != 0 {
		if l := w.lead(); l != nil {
			return slices.Index(w.reps, l)
		}
	}
	return (m / 3) % len(w.reps)
}

// crash stops process i the way SIGKILL does, as far as one process can: the socket and the
// journal go away at once, nothing is finished. Its goroutines run on into a closed journal.
// It is started again, as a supervisor would.
func (w *world) crash(i int) error { return w.crashThen(i, nil) }

// crashThen is crash with between run while the process is down and its journal closed (the
// moment someone with the file may write it behind the bot's back).
func (w *world) crashThen(i int, between func() error) error {
	r := w.reps[i]
	led := w.ha != nil && w.ha.leading.Load() == r
	r.dead.Store(true) // its delivery targets and Atlas transport refuse from now on
	if r.shared.client != nil {
		// Before anything is cancelled: a dead process resigns nothing and writes nothing.
		r.shared.client.Close()
	}
	// A killed process sends MongoDB nothing more (what it sent may still land): its client
	// goes with it. Its goroutines run on, into a closed client and a closed journal.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	for _, c := range r.conns {
		c.Close(ctx)
	}
	cancel()
	r.cancel()
	<-r.done
	w.slack.DropLabel(r.label)
	w.panics += r.b.Panics()
	w.zombies = append(w.zombies, r.b)
	r.st.Close()
	if between != nil {
		if err := between(); err != nil {
			return err
		}
	}
	if r.shared.client != nil {
		w.ha.expire(w, r, led) // last, as its lease lapses after the process died
	}
	return w.startReplica(i)
}

// reload restarts the bot gracefully with policy version v: a config change.
func (w *world) reload(v int) error {
	w.stopBot()
	w.pv, w.policy = v, checkerPolicy(v)
	return w.start()
}

// stopBot stops every process gracefully. A process that never started, or was killed
// (crash) and did not start again, has nothing to stop: waiting for it would hang the
// checker instead of reporting.
func (w *world) stopBot() {
	for _, r := range w.reps {
		if r == nil || r.dead.Load() {
			continue
		}
		r.cancel()
		<-r.done
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := r.b.Shutdown(ctx); err != nil {
			w.problem("shutdown did not finish: %v", err)
		}
		cancel()
		w.panics += r.b.Panics()
		r.st.Close()
		if r.shared.client != nil {
			w.ha.leave(r)
		}
	}
	w.reps = nil
}

// settle waits until every process has taken every delivery sent to it and has no work
// running.
func (w *world) settle() {
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range w.reps {
		for r.b.Deliveries() < r.sent || r.b.Busy() != 0 {
			if time.Now().After(deadline) {
				w.problem("bot %s did not settle in 30s (deliveries %d of %d, %d units of work running): a hang", r.name, r.b.Deliveries(), r.sent, r.b.Busy())
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// tick is the bot's one-second timer, on the process that runs the timers; on etcd it first
// refreshes them from the shared journal, as the leader does every few seconds.
func (w *world) tick() {
	l := w.lead()
	if l == nil {
		return
	}
	if w.ha != nil {
		if err := l.b.RefreshTimers(); err != nil {
			w.t.Logf("refresh the timers: %v", err)
		}
	}
	l.b.RunDue(context.Background()).Wait()
}

// timers runs, on l, what the clock moving on sets off: expiries, the timers, the settling of
// entries left executing and, on etcd, of requests a replica left approved.
func (w *world) timers(l *replica) {
	l.b.ExpireDue(context.Background())
	w.tick()
	l.b.ReconcileStale(context.Background())
	if w.ha != nil {
		l.b.ReconcileRequests(context.Background())
	}
}

// send counts envelope id as sent to the process whose socket it went to.
func (w *world) send(id string, err error) {
	if err != nil {
		return // the socket is down: Slack would deliver it later; the checker moves on
	}
	w.envs = append(w.envs, id)
	w.sentTo(id)
}

func (w *world) sentTo(id string) {
	label := w.slack.Route(id)
	for i, r := range w.reps {
		if w.ha == nil || r.label == label {
			r.sent++
			if w.ha != nil {
				haStats.envelopes.Add(1)
				haStats.byReplica[i].Add(1)
			}
		}
	}
}

// slackText is text as Slack delivers it in a slash command: &, < and > escaped.
func slackText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func (w *world) buttons() []struct {
	m slacktest.Message
	b slacktest.Button
} {
	var out []struct {
		m slacktest.Message
		b slacktest.Button
	}
	for _, m := range w.slack.Messages() {
		for _, b := range m.Buttons() {
			out = append(out, struct {
				m slacktest.Message
				b slacktest.Button
			}{m, b})
		}
	}
	return out
}

// offering is every message with a button labelled text, oldest first.
func (w *world) offering(text string) []slacktest.Message {
	var out []slacktest.Message
	for _, m := range w.slack.Messages() {
		if _, ok := m.Find(text); ok {
			out = append(out, m)
		}
	}
	return out
}

// press sends user's click of button b on message m, and notes it for the checks of votes.
func (w *world) press(user string, m slacktest.Message, b slacktest.Button) {
	w.send(w.slack.Click(user, m, b))
	w.clicked = append(w.clicked, user+" "+m.Channel+"/"+m.TS)
	w.clickedEver[user+" "+m.Channel+"/"+m.TS] = true
}

var faultCommands = []string{"updateUser", "grantRolesToUser", "revokeRolesFromUser", "createUser", "dropUser", "usersInfo"}

func (w *world) apply(s Step) error {
	switch s.Kind {
	case "cmd":
		w.send(w.slack.SlashCommand(s.User, channel, slash, slackText(s.Text)))
	case "click", "forge":
		bs := w.buttons()
		if len(bs) == 0 {
			return nil
		}
		x := bs[s.N%len(bs)]
		if s.Kind == "click" && s.N%3 != 0 {
			x = bs[len(bs)-1-s.N%min(len(bs), 4)] // mostly the newest buttons: progress
		}
		m := x.m
		if s.Kind == "forge" {
			// A real button on the wrong message, or a value with another record's token.
			m = w.slack.Messages()[s.M%len(w.slack.Messages())]
			if s.M%2 == 0 {
				other := bs[s.M%len(bs)].b
				if id, _, ok := strings.Cut(x.b.Value, "."); ok {
					if _, tok, ok := strings.Cut(other.Value, "."); ok {
						x.b.Value = id + "." + tok
					}
				}
				m = x.m
			}
		}
		w.press(s.User, m, x.b)
		if s.Kind == "click" && s.M%7 == 0 { // a double click
			w.send(w.slack.Click(s.User, m, x.b))
		}
	case "giveup":
		w.giveUp(s)
	case "approve":
		// An approver presses Approve on one of the newest cards that still offer it.
		cards := w.offering(bot.TextApprove)
		if len(cards) == 0 {
			return nil
		}
		m := cards[len(cards)-1-s.N%min(len(cards), 3)]
		b, _ := m.Find(bot.TextApprove)
		w.press(s.User, m, b)
	case "reveal":
		offers := w.offering(bot.TextReveal)
		if len(offers) == 0 {
			return nil
		}
		m := offers[s.N%len(offers)]
		b, _ := m.Find(bot.TextReveal)
		who := strings.TrimPrefix(m.Channel, "D")
		if s.N%4 == 0 {
			who = s.User // someone else tries
		}
		w.send(w.slack.Click(who, m, b))
	case "redeliver":
		if len(w.envs) > 0 {
			id := w.envs[s.N%len(w.envs)]
			if w.slack.Redeliver(id, 1) == nil {
				w.sentTo(id)
			}
		}
	case "drop":
		before := w.slack.Connections()
		if w.ha == nil {
			w.slack.Drop()
			return w.slack.Wait(wait, "the bot to reconnect", func(s *slacktest.Server) bool { return s.Connections() > before && s.Connected() })
		}
		r := w.reps[w.stepNo%len(w.reps)]
		w.slack.DropLabel(r.label)
		return w.slack.Wait(wait, "the bot to reconnect", func(s *slacktest.Server) bool { return s.Connections() > before && s.ConnectedAs(r.label) })
	case "fault":
		f := mongotest.Fault{Command: faultCommands[s.M%len(faultCommands)], Times: 1}
		switch s.N {
		case 0:
			f.Code, f.Message = 13, "not authorized on admin to execute command"
		case 1:
			f.Delay = 700 * time.Millisecond // the bot times out before the server applies
		case 2:
			f.DelayAfter = 700 * time.Millisecond // the server applies, then answers too late
		case 3:
			f.Drop = true
		case 4:
			f.DropAfter = true
		case 5:
			f.Delay, f.Times = 30*time.Millisecond, 3
		case 6:
			// Applied on the primary, not confirmed by a majority: done, with a warning.
			f.WriteConcernCode = []int32{64, 91, 11602}[s.M%3]
		case 7:
			f.Slow = 700 * time.Millisecond // killed at its maxTimeMS, never applied
		}
		w.emu.Inject(f)
	case "checkloop":
		// The next step runs with the every-minute check of unsettled entries going round
		// and round beside it, as the real timer may fire at any moment.
		w.checkLoop = true
	case "tamper":
		return w.tamper(s.N, s.M)
	case "crash":
		if s.N%2 == 1 {
			// Die in the middle of the next step, not between steps.
			w.crashIn, w.crashWho = time.Duration(1+s.M%20)*time.Millisecond, w.victim(s.M)
			return nil
		}
		return w.crash(w.victim(s.M))
	case "reload":
		return w.reload(s.N)
	case "clock":
		// Time passes for the server too: a command it was holding lands first.
		deadline := time.Now().Add(5 * time.Second)
		for w.emu.Faulted() > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		w.settle()
		w.clock.Add(jumps[s.N%len(jumps)])
		l := w.lead()
		if l == nil {
			return nil
		}
		if w.dying {
			// A crash is coming in the middle of this step: let the timers run into it.
			go l.b.RunDue(context.Background())
			return nil
		}
		w.timers(l)
	case "member":
		if w.ha != nil {
			return w.ha.member(s.N)
		}
	case "partition":
		if w.ha != nil {
			return w.ha.partition(w, jumps[s.N%len(jumps)])
		}
	case "lostreply":
		if w.ha != nil {
			w.ha.lossy.Store(int64(1 + s.N))
		}
	case "rekey":
		if w.ha != nil {
			w.ha.rekey(w)
		}
	case "outage":
		if s.N == 0 {
			w.proxy.BlackHole()
		} else {
			w.restore()
		}
	case "target":
		w.app.down(w.t, s.N == 0)
		w.pair.down(w.t, s.N == 0)
	case "drift":
		u := connector.UserRef{User: s.User, DB: "admin"}
		r, _ := connector.ParseRole(s.Text)
		if s.N == 0 {
			_, _ = w.admin.GrantRole(context.Background(), u, r)
		} else {
			_, _ = w.admin.RevokeRole(context.Background(), u, r)
		}
	}
	return nil
}

// runSteps runs steps on a fresh world and returns the invariant violations, none if it held.
func runSteps(t testing.TB, steps []Step, verbose bool) []string {
	return runStepsOn(t, nil, steps, verbose)
}

// runStepsOn runs steps on a fresh world: one bot on a bbolt journal when cluster is nil,
// else replicas sharing a journal on it.
func runStepsOn(t testing.TB, cluster *etcdtest.Cluster, steps []Step, verbose bool) []string {
	return runStepsWith(t, cluster, steps, verbose, nil)
}

// runStepsWith is runStepsOn that lets inspect look at the world once the steps ran.
func runStepsWith(t testing.TB, cluster *etcdtest.Cluster, steps []Step, verbose bool, inspect func(*world)) []string {
	baseline := goroutines(cluster != nil)
	w, err := newWorld(t, cluster)
	if err != nil {
		return []string{"setup: " + err.Error()}
	}
	w.inspect = inspect
	defer w.close()
	for i, s := range steps {
		w.stepNo = i
		if verbose {
			t.Logf("step %d: %s", i, s)
		}
		crashIn, checkLoop := w.crashIn, w.checkLoop
		w.crashIn, w.checkLoop, w.clicked = 0, false, nil
		stopLoop := func() {}
		if l := w.lead(); checkLoop && l != nil {
			b, done, stopped := l.b, make(chan struct{}), make(chan struct{})
			go func() {
				defer close(stopped)
				for {
					select {
					case <-done:
						return
					default:
						b.ReconcileStale(context.Background())
					}
				}
			}()
			stopLoop = func() { close(done); <-stopped }
		}
		w.dying = crashIn > 0
		err := w.apply(s)
		w.dying = false
		if err == nil && checkLoop {
			w.settle()
		}
		stopLoop()
		if err != nil {
			w.problem("%s: %v", s.Kind, err)
			break
		}
		if crashIn > 0 {
			time.Sleep(crashIn)
			if err := w.crash(w.crashWho); err != nil {
				w.problem("crash: %v", err)
				break
			}
		}
		w.settle()
		w.tick()
		w.settle()
		w.check()
		if len(w.problems) > 0 {
			break
		}
	}
	if len(w.problems) == 0 {
		w.finish()
	}
	if w.inspect != nil && w.emu != nil {
		w.inspect(w)
	}
	w.close()
	if len(w.problems) == 0 {
		w.checkGoroutines(baseline)
	}
	if len(w.problems) > 0 && verbose {
		t.Logf("bot log:\n%s", w.logs.String())
	}
	return w.problems
}

func (w *world) close() {
	if w.emu == nil {
		return
	}
	w.stopBot()
	w.emu.ClearFaults()
	for _, z := range w.zombies {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := z.Shutdown(ctx); err != nil {
			w.problem("a crashed bot's goroutines did not end: %v", err)
		}
		cancel()
		w.panics += z.Panics()
	}
	w.zombies = nil
	for _, c := range w.conns {
		c.Close(context.Background())
	}
	w.admin.Close(context.Background())
	w.proxy.Close()
	w.emu.Close()
	w.cloud.close()
	if w.ha != nil {
		w.ha.close(w)
	}
	w.slack.Close()
	w.emu = nil
	if w.panics > 0 {
		w.problem("%d panic(s) recovered in the bot", w.panics)
	}
}

// finish lets everything settle (faults gone, time moving on, checks run), then checks what
// only holds at rest.
func (w *world) finish() {
	w.stepNo = -1
	w.emu.ClearFaults()
	w.restore()
	w.app.down(w.t, false)
	w.pair.down(w.t, false)
	for range 6 {
		for deadline := time.Now().Add(5 * time.Second); w.emu.Faulted() > 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		w.clock.Add(10 * time.Minute)
		if l := w.lead(); l != nil {
			w.timers(l)
		}
		w.settle()
	}
	w.check()
	ex, err := w.journal().Executing()
	if err != nil {
		w.problem("read the entries executing: %v", err)
	}
	if len(ex) > 0 {
		w.problem("%d journal entries still executing after the run settled (first #%d %s)", len(ex), ex[0].ID, ex[0].Action)
	}
	// No schedule slot is lost in silence: once everything settled, a slot an active schedule
	// saw fall due was claimed for a run, or reported skipped (missed by more than the window)
	// or failed (refused before it began, say while an earlier change of its user is still
	// being checked: the next slot runs).
	scs, err := w.journal().Schedules()
	if err != nil {
		w.problem("read the schedules: %v", err)
	}
	for _, sc := range scs {
		reported := strings.HasPrefix(sc.LastResult, "skipped") || strings.HasPrefix(sc.LastResult, "failed")
		if sc.State == store.ScheduleActive && sc.DueSlot.After(sc.Slot) && !reported {
			w.problem("schedule #%d: its slot %s fell due at %s and was neither run nor reported skipped or failed (last run %s, slot %s: %q)",
				sc.ID, sc.DueSlot, sc.DueAt, sc.LastRun, sc.Slot, sc.LastResult)
		}
	}
	// No request is lost: once everything settled, none approved is still waiting to run,
	// and none is running.
	rs, _, err := w.journal().Requests(0, 1<<20)
	if err != nil {
		w.problem("read the requests: %v", err)
	}
	for _, r := range rs {
		if r.State == approvals.Approved || r.State == approvals.Executing {
			w.problem("request #%d (%s) is still %s after the run settled: it was lost", r.ID, r.Action, r.State)
		}
	}
	w.checkUsers()
	if w.ha != nil {
		w.ha.tally(w)
	}
	w.checkDelivered()
	w.checkSecrets()
	if debugHook != nil && len(w.problems) > 0 {
		debugHook(w)
	}
}

// restore ends an outage, and waits until the bot's connector has seen the server answer and
// answers itself again (its driver has found the server anew).
func (w *world) restore() {
	w.proxy.Restore()
	for _, r := range w.reps {
		w.answering(r.prod)
	}
}

func (w *world) answering(m *connector.Mongo) {
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := m.State(ctx, connector.UserRef{User: "u1", DB: "admin"})
		cancel()
		if err == nil && !m.Health().Down {
			return
		}
		if time.Now().After(deadline) {
			w.problem("the connector does not answer 20s after the server does again: %v (%+v)", err, m.Health())
			return
		}
	}
}

// debugHook, when set by a test being debugged, sees the world of a failed run.
var debugHook func(*world)

func (w *world) checkGoroutines(baseline int) {
	deadline := time.Now().Add(15 * time.Second)
	for goroutines(w.ha != nil) > baseline+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			w.problem("%d goroutines left behind (baseline %d):\n%s", goroutines(w.ha != nil), baseline, buf[:n])
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ours marks the stacks of goroutines the bot's own code and its clients run. With etcd
// members in the test's process, only these are counted: a member's goroutines come and go
// with its peers' connections and with a member stopped and started again.
var ours = []string{"mongobot/", "go.etcd.io/etcd/client/v3", "go.mongodb.org/", "github.com/slack-go/", "github.com/gorilla/websocket",
	"grpc/internal/transport.(*http2Client)"}

// goroutines counts the process's goroutines; with etcd, those of the bot and its clients.
func goroutines(etcd bool) int {
	if !etcd {
		return runtime.NumGoroutine()
	}
	buf := make([]byte, 8<<20)
	for runtime.Stack(buf, true) == len(buf) {
		buf = make([]byte, 2*len(buf))
	}
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if slices.ContainsFunc(ours, func(m string) bool { return strings.Contains(g, m) }) {
			n++
		}
	}
	return n
}

func (w *world) entries() []store.Entry {
	var out []store.Entry
	var before uint64
	for {
		es, next, err := w.journal().History(before, 500)
		if err != nil {
			w.problem("read the journal: %v", err)
			return out
		}
		out = append(out, es...)
		if next == 0 {
			return out
		}
		before = next
	}
}

// kinds are the changes (as the emulator records them) an entry may have made, on whom.
func kinds(e store.Entry) []string {
	u := e.Args["user"] + "@" + cmpOr(e.Args["authdb"], "admin")
	if e.Connector == "cloud" {
		u = "cloud:" + u
	}
	switch e.Action {
	case commands.RotatePassword:
		if e.Args["logout_all"] == "true" {
			return []string{u + " pwd", u + " drop", u + " create"}
		}
		return []string{u + " pwd"}
	case "create-twin": // the first rotation of alternating users makes the second user
		return []string{u + " create"}
	case commands.GrantRole:
		return []string{u + " grant " + e.Args["role"]}
	case commands.RevokeRole:
		return []string{u + " revoke " + e.Args["role"]}
	case commands.CreateReadOnlyUser, commands.Access:
		return []string{u + " create"}
	case commands.DropUser:
		return []string{u + " drop"}
	case commands.LockUser, commands.UnlockUser:
		return []string{u + " restrict"}
	case commands.Rollback:
		switch e.Args["performs"] {
		case commands.GrantRole:
			return []string{u + " grant " + e.Args["role"]}
		case commands.RevokeRole:
			return []string{u + " revoke " + e.Args["role"]}
		case commands.DropUser:
			return []string{u + " drop"}
		case commands.LockUser, commands.UnlockUser:
			return []string{u + " restrict"}
		}
	}
	return nil
}

func cmpOr(a, b string) string {
	if a == "" {
		return b
	}
	return a
}

func qualify(r string) string {
	if !strings.Contains(r, "@") {
		return r + "@admin"
	}
	return r
}

// appliedKinds are the changes the bot's own account made, as the emulator saw them, and
// those Atlas applied to its cluster.
func (w *world) appliedKinds() map[string]int {
	out := map[string]int{}
	for _, a := range w.emu.Applied() {
		if a.By.User == "botadmin" {
			countKinds(out, "", a)
		}
	}
	for _, a := range w.cloud.cluster.AppliedSince(w.cloud.base) {
		countKinds(out, "cloud:", a)
	}
	return out
}

// countKinds counts change a under its kinds, its user prefixed with prefix.
func countKinds(out map[string]int, prefix string, a mongotest.Applied) {
	u := prefix + a.User.User + "@" + a.User.DB
	switch {
	case a.Created:
		out[u+" create"]++
	case a.Dropped:
		out[u+" drop"]++
	default:
		if a.PasswordChanged {
			out[u+" pwd"]++
		}
		if a.RestrictionsChanged {
			out[u+" restrict"]++
		}
		for _, r := range a.RolesAdded {
			out[u+" grant "+r.Role+"@"+r.DB]++
		}
		for _, r := range a.RolesRemoved {
			out[u+" revoke "+r.Role+"@"+r.DB]++
		}
	}
}

// check runs the invariants that hold after every step.
func (w *world) check() {
	if w.emu == nil {
		return
	}
	es := w.entries()
	w.checkTampered(es)
	byID := map[uint64]store.Entry{}
	for _, e := range es {
		byID[e.ID] = e
	}
	// 1. Every change MongoDB applied belongs to a journal entry that can account for it,
	// one change per entry: counted per user and kind of change.
	can := map[string]int{}
	for _, e := range es {
		if e.State == store.EntryFailed {
			continue // "nothing changed": it may account for nothing
		}
		for _, k := range kinds(e) {
			can[normalizeKind(k)]++
		}
	}
	for k, n := range w.appliedKinds() {
		if n > can[k] {
			w.problem("MongoDB applied %q %d time(s) but the journal accounts for %d (write-ahead broken, an action run twice, or a change journaled as not applied)", k, n, can[k])
		}
	}
	// 1b. Every entry is authorized: by an approved request judged under the policy in
	// force, by a policy that needs no approval, by an approved schedule whose owner may
	// still use the bot, or by the bot ending a temporary action that was due.
	for _, e := range es {
		if _, seen := w.seenEntry[e.ID]; seen {
			continue
		}
		w.seenEntry[e.ID] = w.stepNo
		w.authorized(e, byID)
	}
	w.checkVotes()
	// 2. No temporary grant or lock outlives its end by more than the retry interval
	// without an overdue alarm in the approvals channel.
	now := w.clock.Now()
	msgs := w.slack.Messages()
	overdue := 0
	for _, e := range es {
		if e.UndoAt.IsZero() || e.State != store.EntryDone || now.Before(e.UndoAt.Add(11*time.Minute)) {
			continue
		}
		overdue++
		if !alarmed(msgs, e.ID) {
			w.problem("journal #%d (%s %s) should have ended at %s; it is %s and no overdue alarm was posted", e.ID, e.Action, e.Args["role"], e.UndoAt, now)
		}
	}
	w.checkJITUsers(es, msgs)
	w.checkEndedOnce(es, byID, msgs)
	l := w.lead()
	if l == nil {
		return
	}
	// An alarm once is not enough: the bot must still hold every overdue end, to retry it.
	if held := l.b.OverdueTemporary(); held < overdue {
		w.problem("%d temporary actions are overdue but the bot holds only %d of them to retry: an obligation was dropped", overdue, held)
	}
	// 3. No schedule slot ran twice.
	slots := map[string]uint64{}
	for _, e := range es {
		if e.ScheduleID == 0 || e.State == store.EntryFailed || e.Action != commands.RotatePassword {
			continue
		}
		k := fmt.Sprintf("%d/%s", e.ScheduleID, e.Slot)
		if prev, ok := slots[k]; ok {
			w.problem("schedule #%d ran its slot %s twice: journal #%d and #%d", e.ScheduleID, e.Slot, prev, e.ID)
		}
		slots[k] = e.ID
	}
	// 3b. No password is revealed to someone who may no longer use the bot.
	for _, m := range msgs {
		if m.Ephemeral && strings.Contains(m.All(), "Your new password") && !w.revealSeen[m.TS] {
			w.revealSeen[m.TS] = true
			if !w.mayRequest(m.User) {
				w.problem("a password was revealed to %s, who may no longer use the bot", m.User)
			}
		}
	}
	// 4. A password some target lacks is an obligation: sealed, and held for a retry.
	awaiting := 0
	for _, e := range es {
		if !e.AwaitsDelivery() || e.State != store.EntryDone && e.State != store.EntryRolledBack {
			continue
		}
		awaiting++
		if _, err := w.journal().PeekSecret(e.DeliverySecret, e.DeliveryOwner); err != nil {
			w.problem("journal #%d awaits delivery but its sealed password cannot be read (%v): it can never be delivered", e.ID, err)
		}
	}
	// On etcd, a replica killed with deliveries pending leaves them to the leader once they
	// are 5 minutes overdue: finish checks that each is delivered in the end.
	if held := l.b.DeliveryPending(); held < awaiting && w.ha == nil {
		w.problem("%d rotations await delivery but the bot holds only %d of them to retry: an obligation was dropped", awaiting, held)
	}
	// 5. No panic.
	n := w.panics
	for _, r := range w.reps {
		n += r.b.Panics()
	}
	if n > 0 {
		w.problem("%d panic(s) recovered in the bot", n)
	}
	// User text never becomes a mention or a link on a card.
	w.checkInjection()
	// The audit trail holds every decision once.
	w.checkTrail(es)
}

// checkTrail compares the audit trail with the journal: each request's creation, each of its
// votes and each of its later states once, a request approved without a vote with the rule
// that approved it, each state of each entry once; cursors increasing.
func (w *world) checkTrail(es []store.Entry) {
	var buf bytes.Buffer
	if _, err := w.journal().ExportAudit(&buf, store.ExportOptions{}); err != nil {
		w.problem("export the audit trail: %v", err)
		return
	}
	type key struct {
		kind string
		id   uint64
	}
	count := map[key]int{}
	policy := map[uint64]string{}
	var last float64
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var ev struct {
			Cursor    float64 `json:"cursor"`
			Kind      string  `json:"kind"`
			RequestID uint64  `json:"request_id"`
			ID        uint64  `json:"id"`
			Policy    string  `json:"policy"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			w.problem("audit line is not JSON: %v: %s", err, l)
			return
		}
		if ev.Cursor <= last {
			w.problem("audit cursor %v after %v", ev.Cursor, last)
		}
		last = ev.Cursor
		switch ev.Kind {
		case store.EventEntry:
			count[key{"entry", ev.ID}]++
		case store.EventVote, store.EventRequest:
			count[key{ev.Kind, ev.RequestID}]++
		case store.EventApproved, store.EventDenied, store.EventExpired, store.EventCancelled, store.EventRequestState:
			count[key{"state", ev.RequestID}]++
			if ev.Policy != "" {
				policy[ev.RequestID] = ev.Policy
			}
		}
	}
	rs, _, err := w.journal().Requests(0, 1<<20)
	if err != nil {
		w.problem("read requests: %v", err)
		return
	}
	for _, r := range rs {
		states := len(r.History) - 1
		if r.History[0].State == approvals.Approved {
			states++
			if r.AutoApproved == "" || policy[r.ID] != r.AutoApproved {
				w.problem("request #%d was approved without a vote, but names no rule (%q; its trail says %q)", r.ID, r.AutoApproved, policy[r.ID])
			}
		}
		if n := count[key{"request", r.ID}]; n != 1 {
			w.problem("request #%d is in the audit trail %d times", r.ID, n)
		}
		if n := count[key{"vote", r.ID}]; n != len(r.Votes) {
			w.problem("request #%d has %d votes, the audit trail %d", r.ID, len(r.Votes), n)
		}
		if n := count[key{"state", r.ID}]; n != states {
			w.problem("request #%d went through %d states after its creation, the audit trail says %d", r.ID, states, n)
		}
	}
	for _, e := range es {
		if n := count[key{"entry", e.ID}]; n < 1 || n > len(e.History) {
			w.problem("journal #%d went through %d states, the audit trail shows it %d times", e.ID, len(e.History), n)
		}
	}
}

// normalizeKind writes roles with their database, as the emulator does.
func normalizeKind(k string) string {
	parts := strings.SplitN(k, " ", 3)
	if len(parts) == 3 {
		return parts[0] + " " + parts[1] + " " + qualify(parts[2])
	}
	return k
}

func (w *world) authorized(e store.Entry, byID map[uint64]store.Entry) {
	eff := func(action string, args map[string]string) approvals.Effective {
		if action == commands.Rollback && args["performs"] != "" {
			x := w.policy.For(args["performs"], e.Connector)
			x.Required = x.Required || w.policy.For(commands.Rollback, e.Connector).Required
			return x
		}
		return w.policy.For(action, e.Connector)
	}
	switch {
	case e.Requester == "bot":
		orig, ok := byID[e.RollbackOf]
		if e.Args["automatic"] == "" || !ok || orig.UndoAt.IsZero() || w.clock.Now().Before(orig.UndoAt) {
			w.problem("journal #%d was done by the bot, but not as the due end of a temporary action", e.ID)
		}
	case e.Args["ended_early"] == "true":
		w.givenUp(e, byID)
	case e.ScheduleID != 0:
		sc, err := w.journal().Schedule(e.ScheduleID)
		if err != nil {
			w.problem("journal #%d names schedule #%d, which does not exist", e.ID, e.ScheduleID)
			return
		}
		if !w.mayRequest(sc.Owner) {
			w.problem("journal #%d: schedule #%d ran for %s, who may no longer use the bot", e.ID, sc.ID, sc.Owner)
		}
		if r, err := w.request(sc.RequestID); err != nil || !wasApproved(r) {
			w.problem("journal #%d: schedule #%d was never approved", e.ID, sc.ID)
		}
	case e.RequestID == 0:
		if eff(e.Action, e.Args).Required {
			w.problem("journal #%d (%s) ran without a request, but the policy requires approval of %s", e.ID, e.Action, e.Args["performs"])
		}
		if !w.mayRequest(e.Requester) {
			w.problem("journal #%d (%s) ran for %s, who may not use the bot", e.ID, e.Action, e.Requester)
		}
	default:
		r, err := w.request(e.RequestID)
		if err != nil || !wasApproved(r) {
			w.problem("journal #%d ran for request #%d, which was never approved", e.ID, e.RequestID)
			return
		}
		if r.Action == commands.Access {
			w.checkAccess(e, r)
		}
		if r.History[0].State == approvals.Approved && r.Args["auto"] == "jit" {
			if j, ok := w.policy.JITFor("prod"); !ok || !j.AutoApproved(w.whoIs(r.Requester), strings.Split(r.Args["roles"], ",")) {
				w.problem("request #%d (access %s) ran without a vote, but the JIT policy does not approve it for %s", r.ID, r.Args["roles"], r.Requester)
			}
		} else if r.History[0].State == approvals.Approved && eff(r.Action, r.Args).Required {
			w.problem("request #%d (%s) ran without approval, but the policy requires it", r.ID, r.Action)
		}
	}
	if acct := "botadmin"; e.Connector == "prod" && e.Args["user"] == acct && cmpOr(e.Args["authdb"], "admin") == "admin" {
		w.problem("journal #%d acted on the bot's own login (%s)", e.ID, e.Action)
	}
}

// checkAccess judges access entry e of request r by the JIT policy in force: only offered
// roles, for no longer than the policy's bound, for its requester's own user.
func (w *world) checkAccess(e store.Entry, r store.Request) {
	j, ok := w.policy.JITFor("prod")
	d, err := commands.ParseDuration(r.Args["for"])
	switch {
	case !ok || err != nil:
		w.problem("journal #%d: access ran without a JIT policy or a readable --for", e.ID)
	case j.Check(strings.Split(r.Args["roles"], ","), d) != nil:
		w.problem("journal #%d: access %s for %s ran, which the JIT policy refuses (%v)", e.ID, r.Args["roles"], r.Args["for"], j.Check(strings.Split(r.Args["roles"], ","), d))
	case e.Requester != r.Requester || !strings.HasPrefix(e.Args["user"], "jit-"):
		w.problem("journal #%d: access made %s for %s, not a jit- user for its requester %s", e.ID, e.Args["user"], e.Requester, r.Requester)
	}
}

// alarmed reports whether the approvals channel got the OVERDUE alarm of journal entry id.
func alarmed(msgs []slacktest.Message, id uint64) bool {
	alarm := fmt.Sprintf("OVERDUE: journal #%d ", id)
	return slices.ContainsFunc(msgs, func(m slacktest.Message) bool { return m.Channel == appr && strings.Contains(m.All(), alarm) })
}

// checkJITUsers: no just-in-time user outlives its end by more than the retry interval
// without an overdue alarm, judged from the server's users, not from the journal's word.
func (w *world) checkJITUsers(es []store.Entry, msgs []slacktest.Message) {
	now := w.clock.Now()
	for ref := range w.emu.Snapshot() {
		if !strings.HasPrefix(ref.User, "jit-") {
			continue
		}
		i := slices.IndexFunc(es, func(e store.Entry) bool {
			return e.Action == commands.Access && e.Args["user"] == ref.User && e.State != store.EntryFailed
		})
		if i < 0 {
			w.problem("user %s@%s exists on the server, but no access in the journal made it", ref.User, ref.DB)
			continue
		}
		e := es[i]
		switch {
		case e.State == store.EntryExecuting:
			continue // its outcome is still being found out
		case e.State == store.EntryUnknown || e.State == store.EntryDone && e.UndoAt.IsZero():
			w.problem("just-in-time user %s exists, but its access (journal #%d, %s) has no end planned: nothing will drop it", ref.User, e.ID, e.State)
			continue
		case e.State == store.EntryRolledBack:
			w.problem("just-in-time user %s exists, but its access (journal #%d) is journaled as ended", ref.User, e.ID)
			continue
		case now.Before(e.UndoAt.Add(11 * time.Minute)):
			continue
		}
		if !alarmed(msgs, e.ID) {
			w.problem("just-in-time user %s should have been dropped at %s; it is %s, it still exists, and no overdue alarm was posted", ref.User, e.UndoAt, now)
		}
	}
}

func wasApproved(r store.Request) bool {
	return slices.ContainsFunc(r.History, func(s store.Step) bool { return s.State == approvals.Approved })
}

func (w *world) mayRequest(user string) bool {
	return w.policy.MayRequest(w.whoIs(user)) == nil
}

func (w *world) whoIs(user string) approvals.Who {
	who := approvals.Who{User: user}
	if user == carol {
		who.Groups = []string{"S0DBAS"}
	}
	return who
}

// checkVotes judges each new vote by the policy in force when it was cast, and each new
// approval by the quorum then.
func (w *world) checkVotes() {
	rs, _, err := w.journal().Requests(0, 1<<20)
	if err != nil {
		w.problem("read requests: %v", err)
		return
	}
	for _, r := range rs {
		eff := w.policy.For(r.Action, r.Connector)
		if r.Action == commands.Rollback && r.Args["performs"] != "" {
			eff = w.policy.For(r.Args["performs"], r.Connector)
		}
		for _, v := range r.Votes[min(w.seenVotes[r.ID], len(r.Votes)):] {
			if !eff.Approvers.Has(w.whoIs(v.User)) {
				w.problem("request #%d: %s voted but is not an approver of %s", r.ID, v.User, r.Action)
			}
			if v.User == r.Requester && !eff.AllowSelfApproval {
				w.problem("request #%d: its requester %s voted on it", r.ID, v.User)
			}
			// A click may land later than its step (an envelope lost with a killed bot's
			// socket is delivered again to the next one), but it must have been on this card.
			if !w.clickedEver[v.User+" "+r.Card.Channel+"/"+r.Card.TS] {
				w.problem("request #%d: a vote by %s counted, but %s never clicked on its card (this step: %v)", r.ID, v.User, v.User, w.clicked)
			}
		}
		w.seenVotes[r.ID] = len(r.Votes)
		if w.seenReq[r.ID] != r.State && wasApproved(r) && r.History[0].State != approvals.Approved && !strings.Contains(w.seenReq[r.ID], "checked") {
			n := 0
			for _, v := range r.Votes {
				if v.Approve && !v.Lapsed {
					n++
				}
			}
			if n < eff.Quorum {
				w.problem("request #%d (%s) was approved with %d approval(s); the policy needs %d", r.ID, r.Action, n, eff.Quorum)
			}
			w.seenReq[r.ID] = r.State + " checked"
			continue
		}
		if !strings.Contains(w.seenReq[r.ID], "checked") {
			w.seenReq[r.ID] = r.State
		}
	}
}

// checkInjection searches every Web API call for mentions and links that came from user
// text: the checker's reasons carry <!channel>, <@U0ALICE> and a disguised link.
func (w *world) checkInjection() {
	for _, c := range w.slack.Calls() {
		for _, k := range []string{"text", "blocks"} {
			v := c.Args.Get(k)
			for _, bad := range []string{"<!channel>", "<https://evil.example", "<@U0ALICE> and"} {
				if strings.Contains(v, bad) {
					w.problem("%s carries %q from user text", c.Method, bad)
				}
			}
		}
	}
}

// checkUsers: after the run settles, the journal's view of every user the bot changed last
// equals the server's: prod's, and the cluster of the Atlas project once Atlas has applied
// everything it accepted.
func (w *world) checkUsers() {
	w.cloud.api.WaitApplied()
	for _, e := range w.entries() {
		if e.State != store.EntryFailed {
			done[e.Connector].Add(1)
			if e.ScheduleID != 0 && e.Action == commands.RotatePassword {
				scheduleRuns.Add(1)
			}
			if e.Args["given_up_by"] != "" && e.State == store.EntryDone {
				givenUp.Add(1)
			}
		}
	}
	cloudApplied.Add(int64(len(w.cloud.cluster.AppliedSince(w.cloud.base))))
	w.checkUsersOn("prod", w.emu, func(a mongotest.Applied) bool { return a.By.User == "botadmin" })
	w.checkUsersOn("cloud", w.cloud.cluster, func(a mongotest.Applied) bool { return a.Seq > w.cloud.base })
}

// checkUsersOn checks the users of connector name on server, where byBot tells the bot's
// changes from others'.
func (w *world) checkUsersOn(name string, server *mongotest.Server, byBot func(mongotest.Applied) bool) {
	snap := server.Snapshot()
	last := map[string]bool{} // user -> whether the bot changed it last
	for _, a := range server.Applied() {
		last[a.User.User+"@"+a.User.DB] = byBot(a)
	}
	newest := map[string]store.Entry{}
	concurrent := map[string]bool{}
	for _, e := range w.entries() { // newest first
		if e.Connector != name || e.State != store.EntryDone && e.State != store.EntryRolledBack || len(e.After) == 0 {
			continue
		}
		u := e.Args["user"] + "@" + cmpOr(e.Args["authdb"], "admin")
		if n, ok := newest[u]; ok {
			if w.seenEntry[n.ID] == w.seenEntry[e.ID] {
				concurrent[u] = true // two actions on one user in one step: order unknown
			}
			continue
		}
		newest[u] = e
	}
	for u, e := range newest {
		if !last[u] || concurrent[u] {
			continue
		}
		var after connector.UserState
		if err := json.Unmarshal(e.After, &after); err != nil {
			continue
		}
		user, db, _ := strings.Cut(u, "@")
		s, exists := snap[mongotest.UserRef{User: user, DB: db}]
		var roles []string
		for _, r := range s.Roles {
			roles = append(roles, r.Role+"@"+r.DB)
		}
		var want []string
		for _, r := range after.Roles {
			want = append(want, r.String())
		}
		slices.Sort(roles)
		slices.Sort(want)
		locked := exists && len(s.Restrictions) == 1 && slices.Equal(s.Restrictions[0].ClientSource, connector.LockRestrictions()[0].ClientSource)
		if exists != after.Exists || (exists && (!slices.Equal(roles, want) || locked != after.Locked())) {
			w.problem("the journal's last word on %s of %s (journal #%d: %s) differs from the server (exists %v, roles %v, locked %v)",
				u, name, e.ID, after.Describe(), exists, roles, locked)
		}
	}
}

// checkSecrets: no known secret in any Web API call but its one reveal, in any log line, or
// in the journal's bytes.
func (w *world) checkSecrets() {
	re := passwordBlock
	for _, m := range w.slack.Messages() {
		if m.Ephemeral {
			if x := re.FindStringSubmatch(m.All()); x != nil {
				w.secrets = append(w.secrets, x[1])
			}
		}
	}
	raw, _ := os.ReadFile(filepath.Join(w.dir, store.FileName))
	if w.ha != nil {
		raw = append(raw, w.ha.raw(w)...)
	}
	for _, p := range leaks(w.secrets, raw, w.logs.String(), w.slack.Calls()) {
		w.problem("%s", p)
	}
}

func seedsToRun() []uint64 {
	if *flagSeed != 0 {
		return []uint64{*flagSeed}
	}
	n := *flagSeeds
	if n == 0 {
		n = ciSeeds
		if !raceEnabled {
			n = ciSeedsFull
		}
	}
	return seedsFrom(n)
}

// seedsFrom is the fixed set of n seeds.
func seedsFrom(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = *flagFrom + uint64(i)
	}
	return out
}

// TestInvariants is the checker. Each seed is independent; the total number of steps is
// logged so CI's output says how much was checked.
func TestInvariants(t *testing.T) {
	steps := checkerSteps(t, ciSteps)
	tampered := tamperCounts()
	total := checkSeeds(t, seedsToRun(), func(seed uint64) []Step { return withTampering(seed, genSteps(seed, steps)) }, runSteps)
	t.Logf("invariant checker: %d steps over %d seed(s), against the emulator (mongotest; %d journal entries not failed, %d of them scheduled runs, %d temporary actions given up early without a vote), an Atlas project (the Administration API stand-in and its emulated cluster; %d entries not failed, %d changes applied) and the Slack stand-in, race detector %v; applications' logins judged at rest: %d after a delivery, %d after one the bot abandoned",
		total, len(seedsToRun()), done["prod"].Load(), scheduleRuns.Load(), givenUp.Load(), done["cloud"].Load(), cloudApplied.Load(), raceEnabled, delivered.Load(), abandoned.Load())
	t.Logf("invariant checker: written behind the bot's back into the bbolt file while it was down: %d requests forged, %d altered, %d copied under a new id, %d put back to an older copy; none acted on", tamperCounts()[0]-tampered[0], tamperCounts()[1]-tampered[1], tamperCounts()[2]-tampered[2], tamperCounts()[3]-tampered[3])
}

// checkerSteps is how many steps each seed runs (-steps, else def); it skips the test with
// -short.
func checkerSteps(t *testing.T, def int) int {
	if testing.Short() {
		t.Skip("the invariant checker is long; run without -short")
	}
	return cmp.Or(*flagSteps, def)
}

// checkSeeds runs the steps gen makes for each seed through run, and on a violation reports
// it with the shortest step list it shrinks to. It returns how many steps ran.
func checkSeeds(t *testing.T, seeds []uint64, gen func(uint64) []Step, run func(testing.TB, []Step, bool) []string) int {
	var total int
	var mu sync.Mutex
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			list := gen(seed)
			problems := run(t, list, *flagSeed != 0 && testing.Verbose())
			mu.Lock()
			total += len(list)
			mu.Unlock()
			if len(problems) == 0 {
				return
			}
			// Each problem line says "violated:" so that .ci/run's filter keeps it.
			t.Errorf("seed %d: %d step(s); invariant violated:\n  violated: %s", seed, len(list), strings.Join(problems, "\n  violated: "))
			short := shrink(t, list, run)
			var b strings.Builder
			for _, s := range short {
				fmt.Fprintf(&b, "\t\t%s,\n", s)
			}
			t.Errorf("shrunk to %d step(s) (paste into runSteps in a test):\n\t[]Step{\n%s\t}\nviolation:\n  violated: %s",
				len(short), b.String(), strings.Join(run(t, short, false), "\n  violated: "))
		})
	}
	return total
}

// shrink removes steps while the run still violates an invariant: chunks first, then single
// steps, within a time budget.
func shrink(t testing.TB, steps []Step, run func(testing.TB, []Step, bool) []string) []Step {
	deadline := time.Now().Add(3 * time.Minute)
	cur := slices.Clone(steps)
	for chunk := len(cur) / 2; chunk >= 1 && time.Now().Before(deadline); chunk /= 2 {
		for i := 0; i+chunk <= len(cur) && time.Now().Before(deadline); {
			try := slices.Concat(cur[:i], cur[i+chunk:])
			if len(run(t, try, false)) > 0 {
				cur = try
				continue
			}
			i += chunk
		}
	}
	return cur
}

// checkDelivered checks, once everything has settled with the targets up, that applications
// were left with a login that works: for u3, and for whichever of u4 and u5 the pair uses. A
// user the run dropped, locked or left unsettled is not judged, nor one whose latest rotation
// did not end as done (it may have been applied or not; a person must look), nor one whose
// latest rotation no target got: the bot abandoned that delivery and said so loudly (the
// user it would have switched to was locked or dropped meanwhile, or the target left the
// configuration), and applications keep what they had.
func (w *world) checkDelivered() {
	es := w.entries()
	for _, e := range es {
		if e.AwaitsDelivery() {
			w.problem("journal #%d still awaits delivery after the run settled with every target up (deliveries %+v)", e.ID, e.Deliveries)
		}
	}
	for _, c := range []struct {
		app   *appSide
		users []string
	}{{w.app, []string{"u3"}}, {w.pair, []string{"u4", "u5"}}} {
		var latest store.Entry
		for _, e := range es { // newest first
			u := deliveredUser(e)
			if slices.Contains(c.users, u) && len(e.Deliveries) > 0 && e.State != store.EntryFailed {
				latest = e
				break
			}
		}
		user, pw := c.app.cred(w.t)
		if pw != "" {
			w.secrets = append(w.secrets, pw) // whatever the application holds must never leak
		}
		if latest.ID == 0 || latest.State != store.EntryDone && latest.State != store.EntryRolledBack {
			continue
		}
		if !reached(latest) {
			w.checkAbandoned(latest, user, pw)
			continue
		}
		ref := connector.UserRef{User: deliveredUser(latest), DB: "admin"}
		st, err := w.admin.State(context.Background(), ref)
		if err != nil || !st.Exists || st.LoginRestricted() {
			continue
		}
		if pw == "" {
			w.problem("journal #%d delivered %s, but the application has no password", latest.ID, ref.User)
			continue
		}
		if user != ref.User {
			w.problem("journal #%d delivered %s, but the application holds %s's login", latest.ID, ref.User, user)
			continue
		}
		delivered.Add(1)
		if err := w.admin.Login(context.Background(), ref, secret.New(pw)); err != nil {
			w.problem("after journal #%d, the application holds %s's password, which does not log in (%v): a delivery left it broken", latest.ID, user, err)
		}
	}
}

// checkAbandoned judges a latest rotation whose password reached no target. Losing its sealed
// password is the bot's fault, never the world's. Otherwise, for a pair, the application
// keeps the user the rotation was to replace: if it holds a login, it is that user's, and it
// works unless that user is locked, dropped or restricted.
func (w *world) checkAbandoned(e store.Entry, user, pw string) {
	for _, h := range e.History {
		if strings.Contains(h.Note, "sealed password is gone") {
			w.problem("journal #%d lost its sealed password before any target had it (%s)", e.ID, h.Note)
			return
		}
	}
	replaces := strings.TrimSuffix(e.Args["replaces"], "@admin")
	if replaces == "" || pw == "" {
		return // one user: the rotation changed it, and the bot said no target has it
	}
	if user != replaces {
		w.problem("journal #%d's delivery was abandoned, so applications keep %s, but the application holds %s's login", e.ID, replaces, user)
		return
	}
	ref := connector.UserRef{User: replaces, DB: "admin"}
	if st, err := w.admin.State(context.Background(), ref); err != nil || !st.Exists || st.LoginRestricted() {
		return
	}
	abandoned.Add(1)
	if err := w.admin.Login(context.Background(), ref, secret.New(pw)); err != nil {
		w.problem("journal #%d's delivery was abandoned, and the login the application kept, %s's, does not work (%v)", e.ID, replaces, err)
	}
}

// reached says whether some target got e's password: a delivery abandoned everywhere (dropped)
// left applications with what they had.
func reached(e store.Entry) bool {
	for _, d := range e.Deliveries {
		if d.State == store.DeliveryVerified || d.State == store.DeliveryWritten {
			return true
		}
	}
	return false
}

// deliveredUser is the user whose login entry e gave applications.
func deliveredUser(e store.Entry) string {
	if r := e.Args["redeliver"]; r != "" {
		return strings.TrimSuffix(r, "@admin")
	}
	return e.Args["user"]
}

// giveUp is someone ending a temporary action still in force early (giveup.go): its
// requester, an approver, or someone who is neither (M), by its Roll back button, by
// `rollback <id>`, or for an access by access-end (N).
func (w *world) giveUp(s Step) {
	inForce := func() []store.Entry {
		var out []store.Entry
		for _, e := range w.entries() {
			if e.State == store.EntryDone && !e.UndoAt.IsZero() && e.RolledBackBy == 0 {
				out = append(out, e)
			}
		}
		return out
	}
	if len(inForce()) == 0 && s.N%3 != 0 {
		// Random steps seldom leave a temporary action in force: ask for one and have it
		// approved (or run without a vote), so that most giveup steps give something up.
		cmds := []string{"grant-role prod u1 dbAdmin@reports --for 4h", "grant-role cloud u2 root --for 30m",
			"access prod read@reports --for 1h", "grant-role prod u3 readWrite@shop --for 2d", "lock-user prod u4 --for 30m"}
		w.send(w.slack.SlashCommand(requesters[s.N%len(requesters)], channel, slash, slackText(cmds[s.N%len(cmds)])))
		w.settle()
		if cards := w.offering(bot.TextApprove); len(cards) > 0 {
			m := cards[len(cards)-1]
			b, _ := m.Find(bot.TextApprove)
			w.press(alice, m, b)
			w.settle()
		}
	}
	live := inForce()
	if len(live) == 0 {
		return
	}
	e := live[s.N%len(live)]
	approver := func(u string) bool { return w.policy.For(e.Action, e.Connector).Approvers.Has(w.whoIs(u)) }
	who := e.Requester
	switch s.M % 3 {
	case 1:
		who = alice
		if who == e.Requester {
			who = bob // an approver unless a reload removed them: then the policy decides
		}
	case 2:
		for _, u := range []string{dev, frank, eve, carol, bob} {
			if u != e.Requester && !approver(u) {
				who = u
				break
			}
		}
	}
	if e.Action == commands.Access && s.N%4 == 1 {
		w.send(w.slack.SlashCommand(who, channel, slash, fmt.Sprintf("access-end %d", e.RequestID)))
		return
	}
	if s.N%2 == 0 {
		prefix := strconv.FormatUint(e.ID, 10) + "."
		for _, m := range w.slack.Messages() {
			if b, ok := m.Find(bot.TextRollback); ok && strings.HasPrefix(b.Value, prefix) {
				w.press(who, m, b)
				return
			}
		}
	}
	w.send(w.slack.SlashCommand(who, channel, slash, fmt.Sprintf("rollback %d", e.ID)))
}

// givenUp judges e, a person's early end of a temporary action, which ran without a vote: it
// may only take away what a temporary grant-role or access added, nothing else, and only for
// that action's requester or an approver of it; the journal says who gave it up.
func (w *world) givenUp(e store.Entry, byID map[uint64]store.Entry) {
	orig, ok := byID[e.RollbackOf]
	switch {
	case !ok || orig.UndoAt.IsZero():
		w.problem("journal #%d ran without a vote as the early end of #%d, which was not a temporary action", e.ID, e.RollbackOf)
		return
	case e.RequestID != 0 || e.Args["given_up_by"] != e.Requester:
		w.problem("journal #%d gave up #%d without a vote but does not say so (request #%d, given up by %q, requester %s)", e.ID, orig.ID, e.RequestID, e.Args["given_up_by"], e.Requester)
	case orig.Action == commands.Access && e.Args["performs"] == commands.DropUser && e.Args["user"] == orig.Args["user"]:
	case orig.Action == commands.GrantRole && e.Args["performs"] == commands.RevokeRole && e.Args["user"] == orig.Args["user"] &&
		qualify(e.Args["role"]) == qualify(orig.Args["role"]):
	default:
		w.problem("journal #%d ran without a vote as giving up #%d (%s), but it performs %s %s, which is not only taking away what that added", e.ID, orig.ID, orig.Action, e.Args["performs"], e.Args["role"])
	}
	if e.Requester != orig.Requester && !w.policy.For(orig.Action, e.Connector).Approvers.Has(w.whoIs(e.Requester)) {
		w.problem("journal #%d: %s ended #%d of %s early without a vote, being neither its requester nor an approver", e.ID, e.Requester, orig.ID, orig.Requester)
	}
}

// checkEndedOnce: a temporary action's end (the bot's when due, or a person's early) is
// cleared exactly once: never two ends that applied, and no overdue alarm about it once ended.
func (w *world) checkEndedOnce(es []store.Entry, byID map[uint64]store.Entry, msgs []slacktest.Message) {
	ends := map[uint64]uint64{}
	for _, e := range es {
		if e.Action != commands.Rollback || e.State != store.EntryDone || byID[e.RollbackOf].UndoAt.IsZero() {
			continue
		}
		if prev, ok := ends[e.RollbackOf]; ok {
			w.problem("temporary journal #%d was ended twice: by #%d and by #%d", e.RollbackOf, prev, e.ID)
		}
		ends[e.RollbackOf] = e.ID
	}
	for _, e := range es {
		if e.State != store.EntryRolledBack || e.UndoAt.IsZero() {
			continue
		}
		alarm := fmt.Sprintf("OVERDUE: journal #%d ", e.ID)
		n := 0
		for _, m := range msgs {
			if m.Channel == appr && strings.Contains(m.All(), alarm) {
				n++
			}
		}
		if seen, ok := w.endedAlarms[e.ID]; !ok {
			w.endedAlarms[e.ID] = n
		} else if n > seen {
			w.problem("journal #%d was ended (by #%d), yet the bot raised an overdue alarm about it afterwards: its end obligation was not cleared", e.ID, e.RolledBackBy)
			w.endedAlarms[e.ID] = n
		}
	}
}
