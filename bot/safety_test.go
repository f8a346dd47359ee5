package bot_test

// Regression tests for the safety issue's items, one test each (item numbers in the names'
// comments). Each ran against the emulator and the Slack stand-in; each fails on the code
// before the fix.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"mongobot/approvals"
	"mongobot/bot"
	"mongobot/bot/console"
	"mongobot/bot/slack/slacktest"
	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/internal/syncbuf"
	"mongobot/secret"
	"mongobot/store"
)

// Item 1: the end of a temporary grant survives an unrelated change to the user and a
// failing MongoDB, is loud while overdue, and is retried until done.
func TestTemporaryEndIsAnObligation(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	root := connector.Role{Name: "root", DB: "admin"}
	e.command(dev, "grant-role prod app root --for 4h")
	card := e.card("grant-role", "for 4h")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*")
	// Someone changes something else about the user: no reason to keep root.
	if _, err := e.admin.GrantRole(context.Background(), connector.UserRef{User: "app", DB: "admin"}, connector.Role{Name: "read", DB: "shop"}); err != nil {
		t.Fatal(err)
	}
	// And MongoDB refuses the first two attempts.
	e.emu.Inject(mongotest.Fault{Command: "revokeRolesFromUser", Code: 13, Message: "not authorized", Times: 2})
	e.advance(4 * time.Hour)
	e.message("the overdue alarm", func(m slacktest.Message) bool {
		return m.Channel == appr && m.Thread == "" && strings.Contains(m.All(), "OVERDUE: journal #1") && strings.Contains(m.All(), "attempt 1")
	})
	e.private(dev, "OVERDUE: journal #1")
	if !e.state("app").HasRole(root) {
		t.Fatal("revoked despite the fault")
	}
	if n := e.bot.OverdueTemporary(); n != 1 {
		t.Fatalf("overdue gauge %d, want 1", n)
	}
	e.command(dev, "history")
	e.private(dev, "OVERDUE: ending it failed 1 time(s)")
	e.command(alice, "requests")
	e.private(alice, "OVERDUE journal #1")
	e.advance(30 * time.Second)
	e.message("the second alarm", slacktest.Containing("OVERDUE: journal #1", "attempt 2"))
	// The next try comes after the backoff, survives a restart, and works.
	e.stop()
	e.start(testPolicy())
	e.advance(time.Minute)
	e.result(card, "rollback of #1", "by the bot (--for 4h ended)")
	if e.state("app").HasRole(root) {
		t.Fatal("root is still granted after the end of --for")
	}
	if !e.state("app").HasRole(connector.Role{Name: "read", DB: "shop"}) {
		t.Fatal("the unrelated role was touched")
	}
	if n := e.bot.OverdueTemporary(); n != 0 {
		t.Fatalf("overdue gauge %d after the end, want 0", n)
	}
}

// Item 2: the automatic end is the bot's act, offers no Roll back, and cannot be rolled back
// by the requester to make the grant permanent.
func TestAutomaticEndIsTheBots(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.command(dev, "grant-role prod app root --for 30m")
	card := e.card("grant-role")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*")
	e.advance(31 * time.Minute)
	res := e.result(card, "rollback of #1", "by the bot")
	e.cardSays(card, "*Ended by the bot*", "--for 30m is over")
	if _, ok := res.Find(bot.TextRollback); ok {
		t.Fatal("the automatic end offers Roll back")
	}
	ent, _ := e.st.Entry(2)
	if ent.Requester != "bot" || ent.Args["automatic"] == "" {
		t.Fatalf("the automatic end is journaled as %q: %+v", ent.Requester, ent)
	}
	e.command(dev, "rollback 2")
	e.private(dev, "cannot be rolled back")
	e.command(dev, "history")
	e.private(dev, "by the bot")
	if e.state("app").HasRole(connector.Role{Name: "root", DB: "admin"}) {
		t.Fatal("root came back")
	}
}

// Item 3: the periodic check, run in a tight loop beside 500 actions, never settles an
// action it races, and no panic takes the process down.
func TestCheckBesideActions(t *testing.T) {
	p := testPolicy()
	p.Require = []string{} // every action runs at once
	// A queue long enough for the burst: none is refused as busy, each request has its entry.
	e := newEnv(t, envOptions{policy: &p, limits: map[string]bot.Limits{"prod": {Concurrency: 8, Queue: 1000}}})
	e.createUser("app")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				e.bot.ReconcileStale(context.Background())
			}
		}
	})
	const n = 500
	var sent sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		verb := "grant-role"
		if i%2 == 1 {
			verb = "revoke-role"
		}
		sem <- struct{}{}
		sent.Go(func() {
			defer func() { <-sem }()
			e.bot.HandleCommand(context.Background(), bot.Invocation{User: dev, Channel: channel, Text: verb + " prod app read@shop", Key: fmt.Sprint("k", i)})
		})
	}
	sent.Wait()
	waitUntil(t, "every action to end", func() bool { return e.bot.Busy() == 0 })
	close(stop)
	wg.Wait()
	if n := e.bot.Panics(); n != 0 {
		t.Fatalf("%d panics", n)
	}
	rs, _, _ := e.st.Requests(0, 10*n)
	es, _, _ := e.st.History(0, 10*n)
	if len(es) != len(rs) {
		t.Errorf("%d requests ran but %d journal entries exist", len(rs), len(es))
	}
	done := 0
	for _, x := range es {
		switch x.State {
		case store.EntryDone:
			done++
		default:
			t.Errorf("journal #%d is %s: %s", x.ID, x.State, x.Error)
		}
	}
	applied := 0
	for _, a := range e.emu.Applied() {
		if a.User.User == "app" && (len(a.RolesAdded) > 0 || len(a.RolesRemoved) > 0) {
			applied++
		}
	}
	// Each done entry changed the role or found it already as asked; none that changed it
	// may be journaled otherwise. (A revoke that finds no role is refused before it is a
	// request, so fewer than n run.)
	if applied > done || done == 0 {
		t.Fatalf("%d role changes applied, %d entries done of %d commands", applied, done, n)
	}
	if strings.Contains(e.logs.String(), "panic") {
		t.Fatal("a panic in the log")
	}
}

// Item 4: someone removed from access gets no more passwords: their schedule pauses and
// their Reveal is refused.
func TestRemovedFromAccess(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("svc")
	e.schedule("svc", "@hourly")
	e.command(dev, "rotate-password prod svc")
	card := e.card("Request #2")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*")
	offer := e.offer(dev, "svc")
	p := testPolicy()
	p.Access.Users = []string{alice, bob} // dev leaves the team
	e.stop()
	e.start(p)
	e.click(dev, offer, bot.TextReveal)
	e.private(dev, "may use this bot", "stays sealed")
	e.message("the approvals channel told", slacktest.Containing("<@"+dev+"> pressed Reveal password but may no longer use the bot"))
	before := e.emu.Count("updateUser")
	e.advance(time.Hour)
	e.message("the pause", slacktest.Containing("Schedule #1", "is PAUSED", "may no longer use the bot"))
	if e.emu.Count("updateUser") != before {
		t.Fatal("a rotation ran for someone without access")
	}
	if sc, _ := e.st.Schedule(1); sc.State != store.SchedulePaused {
		t.Fatalf("schedule state %q", sc.State)
	}
	e.command(alice, "schedules")
	e.private(alice, "PAUSED")
}

// Item 5: a slot is claimed write-ahead; a restart that finds the claim never runs it again,
// even when the process died before LastRun was written.
func TestScheduledSlotRunsOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("svc")
	e.schedule("svc", "@hourly")
	e.advance(time.Hour)
	e.message("the run", slacktest.Containing("*Done*", "(schedule #1)"))
	runs := e.emu.Count("updateUser")
	// As if the process died right after the rotation: LastRun never written.
	e.stop()
	st, err := store.Open(e.dir, store.Options{Now: e.clock.Now, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateSchedule(1, func(x *store.Schedule) error { x.LastRun, x.LastResult = time.Time{}, ""; return nil }); err != nil {
		t.Fatal(err)
	}
	st.Close()
	e.clock.Add(10 * time.Minute)
	e.start(testPolicy())
	e.advance(0)
	if n := e.emu.Count("updateUser"); n != runs {
		t.Fatalf("%d rotations after the restart, want %d: the slot ran twice", n, runs)
	}
	// The store refuses a second claim of a slot outright.
	sc, _ := e.st.Schedule(1)
	if _, err := e.st.BeginRun(1, sc.Slot, false, store.Entry{Action: "rotate-password"}, "test"); err == nil {
		t.Fatal("BeginRun claimed a slot twice")
	}
}

// Item 6: buttons are bound to their request by a token and to its card.
func TestStaleOrForgedButtons(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("a")
	e.createUser("b")
	e.command(dev, "grant-role prod a read@shop")
	c1 := e.card("Request #1")
	e.command(dev, "grant-role prod b root")
	c2 := e.card("Request #2")
	b1, _ := c1.Find(bot.TextApprove)
	b2, _ := c2.Find(bot.TextApprove)
	// Request #2's id with request #1's token.
	forged := b2
	forged.Value = strings.Split(b2.Value, ".")[0] + "." + strings.Split(b1.Value, ".")[1]
	id, _ := e.slack.Click(alice, c2, forged)
	e.acked(id)
	e.private(alice, "does not belong to request #2")
	// A bare id, as older cards carried.
	forged.Value = "2"
	id, _ = e.slack.Click(alice, c2, forged)
	e.acked(id)
	e.private(alice, "does not belong to any request")
	// Request #2's real button, clicked on request #1's card.
	id, _ = e.slack.Click(alice, c1, b2)
	e.acked(id)
	e.private(alice, "only be approved or denied on its own card")
	if r, _ := e.st.Request(2); r.State != approvals.Pending || len(r.Votes) != 0 {
		t.Fatalf("request #2 after forged clicks: %s, %d votes", r.State, len(r.Votes))
	}
	if !strings.Contains(e.logs.String(), "click refused") {
		t.Error("forged clicks are not logged")
	}
	e.click(alice, c1, bot.TextApprove)
	e.result(c1, "*Done*")
}

// Item 7: text exactly as Slack delivers it (escaped) never becomes a mention, a link or a
// broken code span in any Web API call.
func TestUserTextIsEscaped(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	raw := `grant-role prod app read@shop --reason "<!channel> urgent, see <https://evil.example|the runbook> <@U0ALICE> <#C0SECRET> & co"`
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(raw)
	id, err := e.slack.SlashCommand(dev, channel, slash, esc)
	if err != nil {
		t.Fatal(err)
	}
	e.acked(id)
	card := e.card("Request #1", "urgent")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*")
	e.createUser("a`b`c")
	e.command(dev, "grant-role prod a`b`c read@shop")
	e.card("Request #2", "grant-role `aˋbˋc@admin`")
	for _, c := range e.slack.Calls() {
		for _, k := range []string{"text", "blocks"} {
			v := c.Args.Get(k)
			for _, bad := range []string{"<!", "<@U0ALICE>", "<#C0SECRET", "<http"} {
				if strings.Contains(v, bad) {
					t.Errorf("%s %s carries %q from user text: %.300s", c.Method, k, bad, v)
				}
			}
			if strings.Contains(v, "`a`b`c") {
				t.Errorf("%s: a backtick in a name reached a message unchanged", c.Method)
			}
		}
	}
	if r, _ := e.st.Request(1); !strings.Contains(r.Reason, "<!channel>") {
		t.Fatalf("the reason is not journaled as typed: %q", r.Reason)
	}
}

// Item 8: approval fails closed when user-group membership cannot be known.
func TestGroupsUnknownFailClosed(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.slack.FailGroup("S0DBAS", "internal_error")
	e.command(dev, "grant-role prod app read@shop") // dev is listed by id: no group needed
	card := e.card("Request #1")
	e.click(carol, card, bot.TextApprove) // an approver only through the group
	e.private(carol, "user groups could not be read from Slack", "try again")
	if r, _ := e.st.Request(1); len(r.Votes) != 0 {
		t.Fatal("a vote was counted without knowing the voter's groups")
	}
	e.slack.FailGroup("S0DBAS", "")
	e.click(carol, card, bot.TextApprove)
	e.result(card, "*Done*")
}

// Item 9: a failed delivery of a revealed password leaves it sealed and the button working.
func TestRevealDeliversBeforeDeleting(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.command(dev, "rotate-password prod app")
	card := e.card("Request #1")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*")
	offer := e.offer(dev, "app")
	e.slack.Missing("D" + dev)
	e.click(dev, offer, bot.TextReveal)
	waitUntil(t, "the failed delivery", func() bool { return strings.Contains(e.logs.String(), "delivery failed; the password stays sealed") })
	e.slack.Found("D" + dev)
	pw := e.reveal(dev, "app")
	if err := e.login("app", pw); err != nil {
		t.Fatalf("the password revealed after a failed delivery does not work: %v", err)
	}
}

// Item 10: the recovery copy of a password outlives the reveal window while the bot is down;
// the owner's window starts when the result is posted.
func TestRecoveryCopyOutlivesRevealTTL(t *testing.T) {
	e := newEnv(t, envOptions{actionTimeout: 300 * time.Millisecond})
	e.createUser("app")
	e.command(dev, "rotate-password prod app")
	card := e.card("Request #1")
	// The server applies the new password and answers too late, then the bot goes down.
	e.emu.Inject(mongotest.Fault{Command: "updateUser", DelayAfter: time.Second, Times: 1})
	e.emu.Inject(mongotest.Fault{Command: "saslStart", Drop: true})
	e.click(alice, card, bot.TextApprove)
	e.private(dev, "MongoDB stopped answering in the middle")
	e.stop()
	e.emu.ClearFaults()
	e.clock.Add(3 * time.Hour) // longer than the reveal TTL (1h)
	e.start(testPolicy())
	e.message("the reconciled rotation", slacktest.Containing("Journal #1", "it is now done", "logging in with the new password works"))
	e.clock.Add(30 * time.Minute)
	pw := e.reveal(dev, "app")
	if err := e.login("app", pw); err != nil {
		t.Fatalf("the recovered password does not work: %v", err)
	}
}

// Item 11: no action on the bot's own login.
func TestOwnLoginIsOffLimits(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, c := range []string{"lock-user prod admin", "drop-user prod admin", "rotate-password prod admin",
		"revoke-role prod admin root", `schedule rotate-password prod admin "@daily"`} {
		e.command(dev, c)
		e.private(dev, "the account the bot itself logs in to prod with", "Nothing was requested")
	}
	if rs, _, _ := e.st.Requests(0, 100); len(rs) != 0 {
		t.Fatalf("%d requests recorded", len(rs))
	}
}

// Item 12: a request typed in the console with a real config says so on its card and in
// the journal.
func TestConsoleTypedRequestsSaySo(t *testing.T) {
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	st, err := store.Open(t.TempDir(), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := connector.New(connector.Config{Name: "prod", URI: secret.New(emu.URI())})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if _, _, err := m.CreateUser(context.Background(), "setup", connector.UserRef{User: "app", DB: "admin"}, nil); err != nil {
		t.Fatal(err)
	}
	var out syncbuf.Buffer
	con := console.New(&out, slash, map[string]string{dev: "dev"}, map[string]string{appr: "approvals"})
	b := bot.New(bot.Config{Slash: slash, Channel: appr, Policy: testPolicy(), Connectors: map[string]bot.Mongo{"prod": m}, Via: "console"}, st, con, nil)
	b.HandleCommand(context.Background(), bot.Invocation{User: dev, Channel: "C0CONSOLE", Text: "rotate-password prod app"})
	if !strings.Contains(out.String(), "Typed in the bot's console, not in Slack") {
		t.Fatalf("the card does not say it was typed in the console:\n%s", out.String())
	}
	if r, err := st.Request(1); err != nil || r.Args["via"] != "console" {
		t.Fatalf("the journal does not say so: %+v %v", r.Args, err)
	}
}

// The end of a temporary grant never touches a different user who took the name since: the
// grant it ends went away with the dropped user.
func TestTemporaryEndSparesAStranger(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.command(dev, "grant-role prod app read@shop --for 30m")
	card := e.card("grant-role")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*")
	u := connector.UserRef{User: "app", DB: "admin"}
	if _, err := e.admin.DropUser(context.Background(), u, nil); err != nil {
		t.Fatal(err)
	}
	e.createUser("app", connector.Role{Name: "read", DB: "shop"}) // someone else's, with the role
	e.advance(31 * time.Minute)
	e.result(card, "rollback of #1", "a different user now has its name")
	if !e.state("app").HasRole(connector.Role{Name: "read", DB: "shop"}) {
		t.Fatal("the stranger's role was revoked")
	}
}

// A vote from someone who is no longer an approver no longer counts toward the quorum.
func TestLapsedApproverVoteDoesNotCount(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("old")
	e.command(dev, "drop-user prod old")
	card := e.card("Request #1", "0 of 2")
	e.click(alice, card, bot.TextApprove)
	e.cardSays(card, "1 of 2")
	p := testPolicy()
	p.Approvers.Users = []string{bob} // alice is no longer an approver
	e.stop()
	e.start(p)
	e.click(bob, card, bot.TextApprove)
	e.cardSays(card, "1 of 2", "Approved by <@"+bob+">", "No longer counted (no longer approvers): <@"+alice+">")
	if r, _ := e.st.Request(1); r.State != approvals.Pending {
		t.Fatalf("request #1 is %s with one valid approval of two", r.State)
	}
	if !e.state("old").Exists {
		t.Fatal("dropped with one valid approval")
	}
	e.click(carol, card, bot.TextApprove)
	e.result(card, "*Done*")
}

// A request whose record carries one person's approval twice (altered by whoever can write
// the store) does not reach a quorum of two: the check before acting counts people.
func TestDuplicateVotesDoNotMakeAQuorum(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("old")
	e.command(dev, "drop-user prod old")
	card := e.card("Request #1", "0 of 2")
	e.click(alice, card, bot.TextApprove)
	e.cardSays(card, "1 of 2")
	e.stop()
	st, err := store.Open(e.dir, store.Options{Now: e.clock.Now, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateRequest(1, func(r *store.Request) error {
		r.Votes = append(r.Votes, r.Votes[0])
		r.State = approvals.Approved
		r.History = append(r.History, store.Step{State: approvals.Approved, At: e.clock.Now(), By: alice})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	e.start(testPolicy()) // reconciles: the approved request is taken up
	e.private(dev, "Request #1", "failed", "1 of its approvals come from people who are approvers now, and 2 are needed")
	if !e.state("old").Exists {
		t.Fatal("dropped on one person's two votes")
	}
}

// One person cannot fill the queue: beyond their bound of open requests a new one is
// refused, saying how to make room; cancelling one, or one finishing, makes room; other
// people are not held back.
func TestOpenRequestsBoundedPerRequester(t *testing.T) {
	p := testPolicy()
	p.MaxOpen = 2
	e := newEnv(t, envOptions{policy: &p})
	for _, u := range []string{"a", "b", "c"} {
		e.createUser(u)
	}
	e.command(dev, "rotate-password prod a")
	e.card("Request #1")
	e.command(dev, "rotate-password prod b")
	card2 := e.card("Request #2")
	e.command(dev, "rotate-password prod c")
	e.private(dev, "You have 2 requests open", "the most one person may have at once", "/mongo cancel <number>", "Nothing was requested")
	e.command(bob, "rotate-password prod c") // someone else is not held back
	card3 := e.card("Request #3")
	e.command(dev, "cancel 1")
	e.private(dev, "Request #1 is cancelled")
	e.command(dev, "lock-user prod c")
	e.card("Request #4")
	e.command(dev, "lock-user prod a")
	e.private(dev, "You have 2 requests open")
	e.click(alice, card2, bot.TextApprove)
	e.result(card2, "*Done*")
	e.click(alice, card3, bot.TextApprove)
	e.result(card3, "*Done*")
	e.command(dev, "lock-user prod a")
	e.card("Request #5")
	if rs, _, _ := e.st.Requests(0, 100); len(rs) != 5 {
		t.Fatalf("%d requests, want 5: a refused one was recorded", len(rs))
	}
}

// A temporary grant whose Roll back is still being settled (MongoDB stopped answering during
// it) is not ended while that lasts, and is overdue meanwhile: it says so, loudly. Found by the
// invariant checker (seed 1098) once it could make a read outlast the action's time.
func TestOverdueWhileItsRollbackIsUnsettled(t *testing.T) {
	if v := runSteps(t, []Step{
		{Kind: "cmd", User: "U0FRANK", Text: "grant-role prod u2 dbAdmin@reports --for 30m --reason \"OPS-12\""},
		{Kind: "click", User: "U0CAROL", N: 141473, M: 945132},
		{Kind: "fault", N: 7, M: 5},
		{Kind: "reload", N: 4},
		{Kind: "click", User: "U0ALICE", N: 129775, M: 813379},
		{Kind: "clock", N: 5},
	}, false); len(v) > 0 {
		t.Fatal(v)
	}
}

// seed7013 is a schedule of the alternating pair's rotation while the user applications use
// is locked for two days. Its runs made the twin locked too and left the application with no
// password; now they fail, loudly, until the lock ends. Found by the checker on etcd (seed
// 7013) and reproduced on bbolt; TestInvariantsReplicated runs it on etcd too.
var seed7013 = []Step{
	{Kind: "cmd", User: "U0DEV", Text: "schedule rotate-password prod u4 \"0 * * * *\""},
	{Kind: "cmd", User: "U0FRANK", Text: "lock-user prod u4 --for 2d --reason \"OPS-12\""},
	{Kind: "approve", User: "U0ALICE"},
	{Kind: "approve", User: "U0CAROL"},
}

func TestScheduledRotationOfALockedPair(t *testing.T) {
	if v := runSteps(t, seed7013, false); len(v) > 0 {
		t.Fatal(v)
	}
}
