package bot_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"mongobot/approvals"
	"mongobot/bot"
	"mongobot/bot/slack/slacktest"
	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/store"
)

// Every test here drives the bot over Socket Mode through the Slack stand-in, against the
// MongoDB emulator (or FerretDB where said), and checks the user's state on the server.

func TestRotatePasswordEndToEnd(t *testing.T) {
	e := newEnv(t, envOptions{})
	old := e.createUser("app", connector.Role{Name: "readWrite", DB: "shop"})

	e.command(dev, `rotate-password prod app --reason "leaked in a log"`)
	e.private(dev, "Request #1", "waiting for approval")
	card := e.card("Request #1", "rotate-password `app@admin` on prod", "leaked in a log", "roles readWrite@shop", bot.TextApprove)

	e.click(alice, card, bot.TextApprove)
	e.cardSays(card, "*Done*", "journal #1")
	res := e.result(card, "*Done*, journal #1", "verified: logged in as app@admin")
	if _, ok := res.Find(bot.TextRollback); ok {
		t.Error("a rotation offers Roll back")
	}
	if err := e.login("app", old); err == nil {
		t.Fatal("the old password still works")
	}
	e.private(dev, "is approved")

	// Only the requester can reveal, once.
	offer := e.message("the reveal offer", func(m slacktest.Message) bool { _, ok := m.Find(bot.TextReveal); return ok })
	e.click(alice, offer, bot.TextReveal)
	e.private(alice, "not for you")
	pw := e.reveal(dev, "app")
	if len(pw) < 24 {
		t.Fatalf("password of %d characters", len(pw))
	}
	if err := e.login("app", pw); err != nil {
		t.Fatalf("the new password does not log in: %v", err)
	}
	e.message("the offer updated", func(m slacktest.Message) bool {
		return m.TS == offer.TS && strings.Contains(m.All(), "no longer stored")
	})
	e.click(dev, offer, bot.TextReveal)
	e.private(dev, "already revealed")

	ent, err := e.st.Entry(1)
	if err != nil || ent.State != store.EntryDone || ent.Requester != dev || len(ent.Approvers) != 1 || ent.Approvers[0] != alice {
		t.Fatalf("journal #1: %+v, %v", ent, err)
	}
}

func TestRotateOnFerretDB(t *testing.T) {
	e := newEnv(t, envOptions{ferret: true})
	old := e.createUser("svc")
	e.command(dev, "rotate-password prod svc")
	card := e.card("Request #1", "rotate-password `svc@admin`")
	e.click(bob, card, bot.TextApprove)
	e.result(card, "*Done*", "verified: logged in as svc@admin")
	if err := e.login("svc", old); err == nil {
		t.Fatal("FerretDB still accepts the old password")
	}
	pw := e.reveal(dev, "svc")
	if err := e.login("svc", pw); err != nil {
		t.Fatalf("FerretDB refuses the new password: %v", err)
	}
	// FerretDB has no roles and no killAllSessions: said before anyone is asked to approve.
	e.command(dev, "grant-role prod svc read@shop")
	e.private(dev, "is FerretDB", "has no roles", "Nothing was requested")
	e.command(dev, "rotate-password prod svc --kill-sessions")
	e.private(dev, "has no killAllSessions", "Nothing was requested")
	e.command(dev, "access prod read@shop --for 1h")
	e.private(dev, "is FerretDB", "has no roles", "access cannot work there", "Nothing was requested")
	e.command(dev, "lock-user prod svc")
	e.private(dev, "ignores authenticationRestrictions", "Nothing was requested")
	if rs, _, _ := e.st.Requests(0, 100); len(rs) != 1 {
		t.Fatalf("%d requests, want only the rotation's", len(rs))
	}
}

func TestGrantRevokeAndRollback(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app", connector.Role{Name: "readWrite", DB: "shop"})
	read := connector.Role{Name: "read", DB: "reports"}

	e.command(dev, "grant-role prod app read@reports")
	card := e.card("Request #1", "grant-role `app@admin` role `read@reports`", "revoke read@reports")
	e.click(alice, card, bot.TextApprove)
	res := e.result(card, "*Done*", "Roll back will revoke read@reports")
	if !e.state("app").HasRole(read) {
		t.Fatal("role not granted on the server")
	}
	e.click(dev, res, bot.TextRollback)
	// Undoing a grant is a revoke-role: judged, and approved, as one.
	e.private(dev, "performs revoke-role, which needs approval under the policy of revoke-role on prod")
	rc := e.approveRollback(1, alice)
	e.result(rc, "*Done*, journal #2", "rollback of #1")
	if e.state("app").HasRole(read) {
		t.Fatal("rollback did not revoke the role")
	}
	e.cardSays(card, "*Rolled back*")
	if ent, _ := e.st.Entry(1); ent.State != store.EntryRolledBack || ent.RolledBackBy != 2 {
		t.Fatalf("journal #1 after rollback: %+v", ent)
	}
	// The same Roll back pressed again does nothing more.
	e.click(dev, res, bot.TextRollback)
	e.private(dev, "already rolled back")

	// Revoke, and roll back by command: the role comes back.
	rw := connector.Role{Name: "readWrite", DB: "shop"}
	e.command(dev, "revoke-role prod app readWrite@shop")
	card = e.card("Request #3", "revoke-role")
	e.click(bob, card, bot.TextApprove)
	e.result(card, "*Done*, journal #3")
	if e.state("app").HasRole(rw) {
		t.Fatal("role not revoked")
	}
	e.command(dev, "rollback 3")
	rc = e.approveRollback(3, bob)
	rc = e.cardSays(rc, "Judged as the grant-role it performs")
	e.result(rc, "*Done*, journal #4")
	if !e.state("app").HasRole(rw) {
		t.Fatal("rollback did not grant the role again")
	}
}

func TestCreateReadOnlyUserAndRollback(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.command(dev, "create-readonly-user prod reporter shop")
	card := e.card("Request #1", "create-readonly-user `reporter@admin` (read on `shop`) on prod", "read@shop")
	e.click(alice, card, bot.TextApprove)
	res := e.result(card, "*Done*", "Roll back will")
	st := e.state("reporter")
	if !st.Exists || !st.HasRole(connector.Role{Name: "read", DB: "shop"}) || len(st.Roles) != 1 {
		t.Fatalf("server state: %+v", st)
	}
	pw := e.reveal(dev, "reporter")
	if err := e.login("reporter", pw); err != nil {
		t.Fatal(err)
	}
	e.click(alice, res, bot.TextRollback)
	// Undoing a creation is a drop-user: on prod that needs two approvers, not alice, who asked.
	rc := e.approveRollback(1, alice)
	e.private(alice, "cannot approve your own request")
	e.click(bob, rc, bot.TextApprove)
	e.click(carol, rc, bot.TextApprove)
	e.result(rc, "journal #2", "*Done*")
	if e.state("reporter").Exists {
		t.Fatal("rollback did not drop the user")
	}
	// Creating a user that exists is refused before anyone is asked.
	e.createUser("taken")
	e.command(dev, "create-readonly-user prod taken shop")
	e.private(dev, "already exists", "Nothing was requested")
}

func TestDropUserNeedsTwoApprovers(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("old", connector.Role{Name: "read", DB: "shop"})
	e.command(dev, "drop-user prod old --reason cleanup")
	card := e.card("Request #1", "drop-user", "0 of 2")
	e.click(alice, card, bot.TextApprove)
	e.cardSays(card, "1 of 2", "Approved by <@"+alice+">")
	e.click(alice, card, bot.TextApprove)
	e.private(alice, "already voted")
	if !e.state("old").Exists {
		t.Fatal("dropped after one approval")
	}
	e.click(carol, card, bot.TextApprove) // an approver through the S0DBAS user group
	res := e.result(card, "*Done*", "No rollback")
	if _, ok := res.Find(bot.TextRollback); ok {
		t.Fatal("a drop offers Roll back")
	}
	if e.state("old").Exists {
		t.Fatal("not dropped")
	}
	ent, _ := e.st.Entry(1)
	if !strings.Contains(string(ent.Before), "read") || strings.Join(ent.Approvers, ",") != alice+","+carol {
		t.Fatalf("journal lacks the pre-image or the approvers: %+v", ent)
	}
}

func TestLockUnlock(t *testing.T) {
	e := newEnv(t, envOptions{})
	pw := e.createUser("app", connector.Role{Name: "readWrite", DB: "shop"})
	e.command(dev, "lock-user prod app")
	card := e.card("Request #1", "lock-user", "unlock, restoring")
	e.click(alice, card, bot.TextApprove)
	res := e.result(card, "*Done*", "locked")
	if err := e.login("app", pw); err == nil {
		t.Fatal("a locked user logs in")
	}
	e.command(dev, "lock-user prod app")
	e.private(dev, "already locked", "Nothing was requested")
	e.click(dev, res, bot.TextRollback)
	rc := e.approveRollback(1, alice)
	e.result(rc, "journal #2", "*Done*")
	if err := e.login("app", pw); err != nil {
		t.Fatalf("unlocked user cannot log in: %v", err)
	}
	// unlock-user by command restores what the journal says the lock replaced.
	e.command(dev, "lock-user prod app")
	c2 := e.card("Request #3")
	e.click(alice, c2, bot.TextApprove)
	e.result(c2, "*Done*")
	e.command(dev, "unlock-user prod app")
	c3 := e.card("Request #4")
	e.click(alice, c3, bot.TextApprove)
	e.result(c3, "*Done*")
	if st := e.state("app"); st.Locked() || len(st.Restrictions) != 0 {
		t.Fatalf("after unlock: %+v", st)
	}
}

func TestApprovalRules(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.command(alice, "rotate-password prod app")
	card := e.card("Request #1")
	e.click(alice, card, bot.TextApprove)
	e.private(alice, "cannot approve your own request")
	e.click(dev, card, bot.TextApprove)
	e.private(dev, "not an approver")
	e.command(eve, "rotate-password prod app")
	e.private(eve, "not on the list")
	e.click(bob, card, bot.TextDeny)
	e.cardSays(card, "*Denied* by <@"+bob+">")
	e.private(alice, "denied request #1")
	if len(e.cardNow(card).Buttons()) != 0 {
		t.Fatal("a decided card still has buttons")
	}
	e.click(alice, card, bot.TextApprove) // a stale card in someone's client
	e.private(alice, "already denied")
	if n := e.emu.Count("updateUser"); n != 0 {
		t.Fatalf("a denied request ran (%d updateUser)", n)
	}
}

func TestExpiryAndCancel(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.command(dev, "rotate-password prod app")
	card := e.card("Request #1", "Expires", "2026-11-27 10:00 UTC")
	e.clock.Add(61 * time.Minute)
	e.click(alice, card, bot.TextApprove)
	e.private(alice, "expired")
	e.cardSays(card, "*Expired*")
	e.private(dev, "expired before it was approved")

	e.command(dev, "rotate-password prod app")
	card = e.card("Request #2")
	e.command(alice, "cancel 2")
	e.private(alice, "Only <@"+dev+">")
	e.command(dev, "cancel 2")
	e.private(dev, "Request #2 is cancelled")
	e.cardSays(card, "*Cancelled*")
	e.command(dev, "rotate-password prod app")
	card = e.card("Request #3")
	e.clock.Add(2 * time.Hour)
	e.bot.ExpireDue(context.Background())
	e.cardSays(card, "*Expired*")
	if n := e.emu.Count("updateUser"); n != 0 {
		t.Fatalf("an expired or cancelled request ran (%d updateUser)", n)
	}
}

func TestExactlyOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	// A retried envelope: one request.
	id := e.command(dev, "grant-role prod app read@shop")
	if err := e.slack.Redeliver(id, 1); err != nil {
		t.Fatal(err)
	}
	e.acked(id)
	card := e.card("Request #1")
	// Two approvers at once, and the same click delivered twice: one execution.
	b, _ := card.Find(bot.TextApprove)
	var ids []string
	for _, u := range []string{alice, bob, alice} {
		id, err := e.slack.Click(u, card, b)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := e.slack.Redeliver(ids[0], 1); err != nil {
		t.Fatal(err)
	}
	e.result(card, "*Done*, journal #1")
	for _, id := range ids {
		e.acked(id)
	}
	e.bot.Shutdown(context.Background()) // waits for in-flight work
	if n := e.emu.Count("grantRolesToUser"); n != 1 {
		t.Fatalf("grantRolesToUser ran %d times, want 1", n)
	}
	if rs, _, _ := e.st.Requests(0, 100); len(rs) != 1 {
		t.Fatalf("%d requests from one command delivered twice", len(rs))
	}
	if es, _, _ := e.st.History(0, 100); len(es) != 1 {
		t.Fatalf("%d journal entries, want 1", len(es))
	}
}

func TestReconnects(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.command(dev, "grant-role prod app read@shop")
	card := e.card("Request #1")
	if err := e.slack.Disconnect("refresh_requested"); err != nil {
		t.Fatal(err)
	}
	if err := e.slack.Wait(wait, "a second connection", func(s *slacktest.Server) bool { return s.Connections() >= 2 && s.Connected() }); err != nil {
		t.Fatal(err)
	}
	e.slack.Drop()
	if err := e.slack.Wait(wait, "a third connection", func(s *slacktest.Server) bool { return s.Connections() >= 3 && s.Connected() }); err != nil {
		t.Fatal(err)
	}
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*")
	if !e.state("app").HasRole(connector.Role{Name: "read", DB: "shop"}) {
		t.Fatal("not granted after reconnects")
	}
}

func TestRollbackRefusedOnDrift(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.command(dev, "grant-role prod app read@shop")
	card := e.card("Request #1")
	e.click(alice, card, bot.TextApprove)
	res := e.result(card, "*Done*")
	// Someone changes the user by hand.
	if _, err := e.admin.GrantRole(context.Background(), connector.UserRef{User: "app", DB: "admin"}, connector.Role{Name: "dbAdmin", DB: "shop"}); err != nil {
		t.Fatal(err)
	}
	e.click(dev, res, bot.TextRollback)
	rc := e.approveRollback(1, alice)
	e.result(rc, "*Failed*", "Rollback refused", "role dbAdmin@shop was added since")
	if !e.state("app").HasRole(connector.Role{Name: "read", DB: "shop"}) {
		t.Fatal("a refused rollback changed the user")
	}
	if ent, _ := e.st.Entry(1); ent.State != store.EntryDone || ent.RolledBackBy != 0 {
		t.Fatalf("journal #1 after a refused rollback: %+v", ent)
	}
	if ent, _ := e.st.Entry(2); ent.State != store.EntryFailed || !strings.Contains(ent.Error, "dbAdmin@shop") {
		t.Fatalf("journal #2: %+v", ent)
	}
}

func TestBadInputSpeaks(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	for _, c := range []struct{ text, says string }{
		{"rotate-pasword prod app", "I don't know the verb"},
		{"grant-role prod app", "needs <role>"},
		{"rotate-password staging app", `no connector "staging"; the connectors are: atlas, prod`},
		{"rotate-password prod nobody", "does not exist"},
		{"revoke-role prod app read@shop", "nothing to revoke"},
		{"grant-role prod app read@bad.db", "database"},
		{`schedule rotate-password prod app "every day"`, "is not a cron spec"},
		{`schedule rotate-password prod app "@every 10s"`, "more often than once a minute"},
		{"unschedule 9", "There is no schedule #9"},
		{"rotate-password atlas app", "atlas is a MongoDB Atlas cluster"},
	} {
		e.command(dev, c.text)
		e.private(dev, c.says)
	}
	if rs, _, _ := e.st.Requests(0, 100); len(rs) != 0 {
		t.Fatalf("bad input made %d requests", len(rs))
	}
	e.command(dev, "help rotate-password")
	e.private(dev, "Usage: `/mongo rotate-password")
	e.command(dev, "users prod")
	e.private(dev, "Users on prod", "`app@admin`")
	e.command(dev, "history --public")
	e.message("history in the channel", func(m slacktest.Message) bool {
		return m.Channel == channel && !m.Ephemeral && strings.Contains(m.All(), "journal is empty")
	})
}

func TestServerDownSpeaks(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.command(dev, "grant-role prod app read@shop")
	card := e.card("Request #1")
	e.emu.Inject(mongotestFault("grantRolesToUser", 13))
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Failed*", "lacks the privilege")
	e.private(dev, "*Failed*")
	if ent, _ := e.st.Entry(1); ent.State != store.EntryFailed || ent.Error == "" {
		t.Fatalf("journal: %+v", ent)
	}
	e.cardSays(card, "*Failed*")
}

func TestPolicyWithoutApprovalAndRollbackWithApproval(t *testing.T) {
	p := testPolicy()
	p.Require = []string{"grant-role", "rollback"} // revoke-role runs at once; rollback needs approval
	e := newEnv(t, envOptions{policy: &p})
	e.createUser("app", connector.Role{Name: "read", DB: "shop"})
	e.command(dev, "revoke-role prod app read@shop")
	// The rule that let it through is named, not the requester as if they had approved it.
	rule := "approvals.require (revoke-role is not listed)"
	e.private(dev, "needs no approval under the policy (`"+rule+"`)")
	card := e.card("Request #1", "*Done*", "Approved by policy: `"+rule+"`")
	if strings.Contains(card.All(), "Approved by <@") {
		t.Errorf("the card of a request no one voted on names an approver:\n%s", card.All())
	}
	res := e.result(card, "*Done*, journal #1", "policy: `"+rule+"`")
	if r, _ := e.st.Request(1); r.AutoApproved != rule {
		t.Errorf("request #1 records %q as its approval, want %q", r.AutoApproved, rule)
	}
	if e.state("app").HasRole(connector.Role{Name: "read", DB: "shop"}) {
		t.Fatal("not revoked")
	}
	e.click(dev, res, bot.TextRollback)
	e.private(dev, "performs grant-role, which needs approval under the policy of grant-role on prod: request #2")
	rb := e.card("Request #2", "rollback of #1")
	e.click(dev, rb, bot.TextApprove)
	e.private(dev, "not an approver")
	e.click(bob, rb, bot.TextApprove)
	e.result(rb, "*Done*, journal #2")
	if !e.state("app").HasRole(connector.Role{Name: "read", DB: "shop"}) {
		t.Fatal("the approved rollback did not grant the role again")
	}
	// Someone who neither asked nor approved, and is no approver, may not roll back.
	e.command(dev, "grant-role prod app dbAdmin@shop")
	c3 := e.card("Request #3")
	e.click(alice, c3, bot.TextApprove)
	e.result(c3, "*Done*, journal #3")
	p2 := testPolicy()
	p2.Access = approvals.Group{} // anyone may use the bot
	e.stop()
	e.start(p2)
	e.command(eve, "rollback 3")
	e.private(eve, "Only the requester of journal #3")
}

func TestLongInputsFitSlackLimits(t *testing.T) {
	e := newEnv(t, envOptions{})
	long := strings.Repeat("u", 120)
	for i := range 150 {
		e.createUser(long + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strings.Repeat("y", i/26))
	}
	e.command(dev, "users prod")
	m := e.private(dev, "Users on prod")
	if len(m.Blocks) > 50 {
		t.Fatalf("%d blocks", len(m.Blocks))
	}
	e.command(dev, "rotate-password prod "+long+"a --reason \""+strings.Repeat("why ", 120)+"\"")
	e.card("Request #1")
	for _, c := range e.slack.Calls() {
		if c.Error != "" {
			t.Errorf("Slack refused %s: %s", c.Method, c.Error)
		}
	}
}

func TestRateLimitedWebAPIIsRetried(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.slack.RateLimit("chat.postMessage", 1)
	e.command(dev, "grant-role prod app read@shop")
	card := e.card("Request #1")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*")
	limited := 0
	for _, c := range e.slack.Calls() {
		if c.Error == "ratelimited" {
			limited++
		}
	}
	if limited != 1 {
		t.Fatalf("%d rate-limited calls, want 1 (retried)", limited)
	}
}

func TestMongoStopsMidFlow(t *testing.T) {
	e := newEnv(t, envOptions{actionTimeout: time.Second})
	e.createUser("app")
	read := connector.Role{Name: "read", DB: "shop"}

	// The connection drops before the server applies the grant. "Not applied" is only final
	// once the command can no longer land, so it is checked again later.
	e.emu.Inject(mongotest.Fault{Command: "grantRolesToUser", Drop: true, Times: 1})
	e.command(dev, "grant-role prod app read@shop")
	card := e.card("Request #1")
	e.click(alice, card, bot.TextApprove)
	e.private(dev, "MongoDB stopped answering in the middle")
	e.message("no effect so far", slacktest.Containing("Journal #1", "shows no effect on the server so far"))
	e.clock.Add(time.Minute)
	e.checkUntil("the outcome", slacktest.Containing("Journal #1", "interrupted by MongoDB not answering", "it is now failed", "not applied"))
	e.cardSays(card, "*Failed*")
	if e.state("app").HasRole(read) {
		t.Fatal("granted after all")
	}

	// The server takes longer than the bot waits, and applies the grant after the bot gave
	// up: a later check finds it applied, and Roll back works from the rebuilt undo plan.
	e.emu.Inject(mongotest.Fault{Command: "grantRolesToUser", Delay: 1500 * time.Millisecond, Times: 1})
	e.command(dev, "grant-role prod app read@shop")
	card = e.card("Request #2")
	e.click(alice, card, bot.TextApprove)
	e.private(dev, "Journal #2", "MongoDB stopped answering in the middle")
	waitUntil(t, "the late grant to land", func() bool { return e.emu.Count("grantRolesToUser") == 1 })
	e.checkUntil("the outcome", slacktest.Containing("Journal #2", "it is now done"))
	e.cardSays(card, "*Done*")
	e.command(dev, "rollback 2")
	rc := e.approveRollback(2, alice)
	e.result(rc, "*Done*, journal #3", "rollback of #2")
	if e.state("app").HasRole(read) {
		t.Fatal("the rollback of a reconciled grant did not revoke it")
	}

	// The server goes down after the card is posted and stays down while the outcome is
	// checked: the entry stays executing until a check can read the server.
	e.command(dev, "grant-role prod app read@shop")
	card = e.card("Request #4")
	e.emu.Inject(mongotest.Fault{Drop: true})
	e.emu.DropConnections()
	e.click(alice, card, bot.TextApprove)
	e.message("the outcome not known yet", slacktest.Containing("Journal #4", "cannot be checked yet"))
	if ex, _ := e.st.Executing(); len(ex) != 1 {
		t.Fatalf("%d entries executing, want 1 awaiting its check", len(ex))
	}
	e.emu.ClearFaults()
	e.clock.Add(time.Minute)
	e.checkUntil("the outcome", slacktest.Containing("Journal #4", "it is now failed"))
	if ex, _ := e.st.Executing(); len(ex) != 0 {
		t.Fatalf("%d entries still executing", len(ex))
	}
}

func TestSlackPermanentErrorsSpeak(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.slack.Missing(appr)
	e.command(dev, "grant-role prod app read@shop")
	e.private(dev, "Request #1", "is recorded, but its card could not be posted", "does not exist or the bot cannot see it")
	if !strings.Contains(e.logs.String(), "channel_not_found") {
		t.Error("the log does not name Slack's error")
	}
	e.command(alice, "requests")
	e.private(alice, "#1 grant-role")
}

func TestRevealExpires(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.command(dev, "rotate-password prod app")
	card := e.card("Request #1")
	e.click(alice, card, bot.TextApprove)
	offer := e.message("the reveal offer", func(m slacktest.Message) bool { _, ok := m.Find(bot.TextReveal); return ok })
	e.clock.Add(time.Hour + time.Minute) // past the default one-hour TTL
	e.click(dev, offer, bot.TextReveal)
	e.message("the offer says expired", func(m slacktest.Message) bool {
		return m.TS == offer.TS && strings.Contains(m.All(), "expired before it was revealed")
	})
}

func TestOldServerAndConnectors(t *testing.T) {
	e := newEnv(t, envOptions{version: "4.2.25"})
	if err := e.emu.CreateUser("app", "app-password-1", "admin", nil); err != nil {
		t.Fatal(err)
	}
	e.command(dev, "lock-user prod app")
	e.private(dev, "runs MongoDB 4.2, which is older than 4.4, the oldest this bot supports", "Nothing was requested")
	e.command(dev, "connectors")
	e.private(dev, "*prod*: unhealthy", "older than 4.4", "*atlas*: unhealthy")
}

// --logout-all drops the user and creates it again: an account that could drop it but not
// create it again (userAdmin on admin, the user holding read@shop) is refused before anyone is
// asked to approve, with the privilege it lacks, and nothing is journaled or changed.
func TestLogoutAllRefusedWhenTheRecreateWouldFail(t *testing.T) {
	e := newEnv(t, envOptions{adminRoles: []mongotest.Role{{Role: "userAdmin", DB: "admin"}, {Role: "hostManager", DB: "admin"}}})
	if err := e.emu.CreateUser("app", "app-password-1", "admin", []mongotest.Role{{Role: "read", DB: "shop"}}); err != nil {
		t.Fatal(err)
	}
	e.command(dev, "rotate-password prod app --logout-all")
	e.private(dev, "could not create it again: it lacks grantRole on shop (for read@shop)", "Nothing was requested")
	if n := e.emu.Count("dropUser"); n != 0 {
		t.Fatalf("dropUser sent %d times", n)
	}
	// Without --logout-all the same account can rotate it.
	e.command(dev, "rotate-password prod app")
	e.card("Request #1", "rotate-password")
}

func TestLogoutAllRecoversTheUser(t *testing.T) {
	e := newEnv(t, envOptions{actionTimeout: 5 * time.Second})
	old := e.createUser("app", connector.Role{Name: "readWrite", DB: "shop"})
	rw := connector.Role{Name: "readWrite", DB: "shop"}

	// The re-create fails once: the bot tries again at once from the pre-image.
	e.emu.Inject(mongotest.Fault{Command: "createUser", Code: 1, Message: "transient", Times: 1})
	e.command(dev, "rotate-password prod app --logout-all")
	card := e.card("Request #1", "--logout-all")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*, journal #1", "the second attempt, from its journaled pre-image, worked")
	if st := e.state("app"); !st.HasRole(rw) {
		t.Fatalf("re-created without its role: %+v", st)
	}
	if err := e.login("app", old); err == nil {
		t.Fatal("the old password works")
	}
	if err := e.login("app", e.reveal(dev, "app")); err != nil {
		t.Fatalf("the delivered password: %v", err)
	}

	// It fails twice: the entry stays open with the pre-image, and reconciliation re-creates
	// the user once the server can.
	e.emu.Inject(mongotest.Fault{Command: "createUser", Code: 1, Message: "transient", Times: 3})
	e.command(dev, "rotate-password prod app --logout-all")
	card = e.card("Request #2", "--logout-all")
	e.click(alice, card, bot.TextApprove)
	e.private(dev, "Journal #2", "The bot keeps trying from the journal")
	if e.state("app").Exists {
		t.Fatal("the user exists: the fault did not bite")
	}
	e.clock.Add(2 * time.Minute)
	e.checkUntil("the recovery", slacktest.Containing("Journal #2", "it is now done", "re-created from its journaled pre-image"))
	if st := e.state("app"); !st.HasRole(rw) {
		t.Fatalf("recovered without its role: %+v", st)
	}
	if err := e.login("app", e.reveal(dev, "app")); err != nil {
		t.Fatalf("the recovered user's password: %v", err)
	}
}

// A grant that cannot do anything is refused before anyone is asked: a role that does not
// exist, or one the user already holds (as a revoke of a role not held always was).
func TestGrantRefusedBeforeApproval(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app", connector.Role{Name: "read", DB: "shop"})
	e.command(dev, "grant-role prod app nosuchrole@shop")
	e.private(dev, "nosuchrole@shop does not exist on prod", "Nothing was requested")
	e.command(dev, "grant-role prod app read@shop@x")
	e.private(dev, "a role is written name@db, with one @", "Nothing was requested")
	e.command(dev, "grant-role prod app read@shop")
	e.private(dev, "already has the role read@shop", "Nothing was requested")
	e.command(dev, "grant-role prod app readAnyDatabase@shop")
	e.private(dev, "write readAnyDatabase@admin", "Nothing was requested")
	if rs, _, _ := e.st.Requests(0, 10); len(rs) != 0 {
		t.Fatalf("%d requests were made", len(rs))
	}
}

// One pending request per change, and a password a later rotation replaced is never handed
// out: its Reveal says which change replaced it.
func TestSecondRotationSupersedesTheFirst(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.command(dev, "rotate-password prod app")
	card := e.card("Request #1")
	e.command(bob, "rotate-password prod app --reason again")
	e.private(bob, "Request #1", "is already waiting for approval for the same change", "cancel 1", "Nothing was requested")
	e.click(alice, card, bot.TextApprove)
	first := e.offer(dev, "app")

	e.command(dev, "rotate-password prod app")
	card2 := e.card("Request #2")
	e.click(alice, card2, bot.TextApprove)
	e.message("a second offer", func(m slacktest.Message) bool {
		_, ok := m.Find(bot.TextReveal)
		return ok && m.Channel == "D"+dev && m.TS != first.TS
	})
	// The older offer says so at once, without its button; pressing it anyway says so too.
	e.message("the first offer is marked replaced", func(m slacktest.Message) bool {
		_, button := m.Find(bot.TextReveal)
		return m.TS == first.TS && !button && strings.Contains(m.All(), "A later change (journal #2) replaced this password")
	})
	e.click(dev, first, bot.TextReveal)
	e.message("the first offer says it was replaced", func(m slacktest.Message) bool {
		return m.TS == first.TS && strings.Contains(m.All(), "A later change (journal #2) replaced this password")
	})
	pw := e.reveal(dev, "app")
	if err := e.login("app", pw); err != nil {
		t.Fatalf("the newer password: %v", err)
	}
}

// A change that reaches the whole deployment says so on its card, in its own block, and the
// request carries risk: high for the policy.
func TestHighRiskIsFlaggedOnTheCard(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.createUser("dba", connector.Role{Name: "root", DB: "admin"})
	e.command(dev, "grant-role prod app root")
	e.card("Request #1", ":warning: *High risk*", "root@admin can do anything on this deployment")
	e.command(dev, "grant-role prod app read@local")
	e.card("Request #2", "*High risk*", "a role on the local database")
	e.command(dev, "lock-user prod dba")
	e.card("Request #3", "*High risk*", "dba@admin holds root@admin: it is an administrator")
	e.command(dev, "create-readonly-user prod spy local")
	e.card("create-readonly-user", "*High risk*", "read@local is a role on the local database")
	e.command(dev, "grant-role prod app read@shop")
	c := e.card("Request #5")
	if strings.Contains(c.All(), "High risk") {
		t.Error("an ordinary grant is flagged high-risk")
	}
	// Rolling back a revoke of root grants root: judged, and flagged, as that grant.
	e.command(dev, "revoke-role prod dba root")
	rv := e.card("Request #6", "*High risk*")
	e.click(alice, rv, bot.TextApprove)
	e.result(rv, "*Done*")
	e.command(dev, "rollback 1")
	e.card("rollback of #1", "*High risk*", "root@admin can do anything")
	// Asking again points to the pending rollback instead of making another.
	e.command(bob, "rollback 1")
	e.private(bob, "to roll back journal #1 is already waiting for approval", "Nothing was requested")
	for id, want := range map[uint64]string{1: "high", 2: "high", 3: "high", 4: "high", 5: ""} {
		if r, _ := e.st.Request(id); r.Args["risk"] != want {
			t.Errorf("request #%d risk %q, want %q", id, r.Args["risk"], want)
		}
	}
}

// A policy rule may tighten high-risk requests: risk: high → two approvals.
func TestHighRiskRuleNeedsTwoApprovals(t *testing.T) {
	p := testPolicy()
	p.Rules = append(p.Rules, approvals.Rule{Risk: approvals.RiskHigh, Quorum: 2})
	e := newEnv(t, envOptions{policy: &p})
	e.createUser("app")
	e.command(dev, "grant-role prod app root")
	card := e.card("Request #1", "*High risk*", "0 of 2")
	e.click(alice, card, bot.TextApprove)
	card = e.cardSays(card, "1 of 2")
	e.click(bob, card, bot.TextApprove)
	e.result(card, "*Done*")
	if ent, _ := e.st.Entry(1); ent.Server != "7.0.14, standalone" || ent.Args["risk"] != "high" {
		t.Errorf("journal #1 records server %q and risk %q", ent.Server, ent.Args["risk"])
	}
	// app is an administrator now: anything done to it is high-risk too.
	e.command(dev, "grant-role prod app read@shop")
	e.card("Request #2", "*High risk*", "0 of 2")
	e.createUser("other")
	e.command(dev, "grant-role prod other read@shop")
	e.card("Request #3", "0 of 1")
}

// Risk is judged again when the request runs, from the user as the server shows it then: an
// ordinary grant approved by one person, whose user was made root meanwhile (outside the
// bot), is now high-risk and needs the two approvals the policy asks for then. It fails
// before anything is sent, saying why.
func TestRiskIsJudgedAgainWhenItRuns(t *testing.T) {
	p := testPolicy()
	p.Rules = append(p.Rules, approvals.Rule{Risk: approvals.RiskHigh, Quorum: 2})
	e := newEnv(t, envOptions{policy: &p})
	e.createUser("app")
	e.command(dev, "grant-role prod app read@shop")
	card := e.card("Request #1", "0 of 1")
	if _, err := e.admin.GrantRole(t.Context(), connector.UserRef{User: "app", DB: "admin"}, connector.Role{Name: "root", DB: "admin"}); err != nil {
		t.Fatal(err)
	}
	e.click(alice, card, bot.TextApprove)
	e.cardSays(card, "Failed")
	e.private(dev, "failed: It became high-risk after it was approved", "app@admin holds root@admin", "needs 2 approvals for that and it has 1")
	if st := e.state("app"); slices.ContainsFunc(st.Roles, func(r connector.Role) bool { return r.Name == "read" }) {
		t.Errorf("the grant ran: app has %v", st.Roles)
	}
	if ents, _, _ := e.st.History(0, 10); len(ents) != 0 {
		t.Errorf("journal entries were written for a request that did not run: %+v", ents)
	}
	// Asked again, it is judged as high-risk from the start.
	e.command(dev, "grant-role prod app read@shop")
	e.card("Request #2", "*High risk*", "0 of 2")
}

// users prod shop lists the users holding a role on shop, whatever their authentication
// database; --auth-db lists those who authenticate on a database.
func TestUsersFilters(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app", connector.Role{Name: "read", DB: "shop"})
	e.createUser("other", connector.Role{Name: "read", DB: "billing"})
	if err := e.emu.CreateUser("local_app", "local-pw-1", "shop", []mongotest.Role{{Role: "readWrite", DB: "shop"}}); err != nil {
		t.Fatal(err)
	}
	e.command(dev, "users prod shop")
	m := e.private(dev, "*Users on prod* (holding a role on shop, 2)", "`app@admin`", "`local_app@shop`")
	if strings.Contains(m.All(), "other@admin") {
		t.Error("a user without a role on shop is listed")
	}
	e.command(dev, "users prod --auth-db shop")
	m = e.private(dev, "(authenticating on shop, 1)", "`local_app@shop`")
	if strings.Contains(m.All(), "app@admin") {
		t.Error("a user authenticating on admin is listed")
	}
	e.command(dev, "users prod")
	e.private(dev, "(all databases, 4)")
}

// A mistake in a command ends like every refusal: what was wrong, that nothing was requested,
// and how to write it.
func TestUsageErrorsEndLikeTheOthers(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	for _, c := range []struct{ cmd, says string }{
		{"grant-role prod app read@shop --for 0s", "between 1m and 90d"},
		{`lock-user prod app --reason a --reason b`, "`--reason` is given twice"},
	} {
		e.command(dev, c.cmd)
		e.private(dev, c.says, "Nothing was requested.", "Usage")
	}
	e.command(dev, `schedule rotate-password prod app "0 3 31 2 *"`)
	e.private(dev, "never runs", "Nothing was requested.")
}
