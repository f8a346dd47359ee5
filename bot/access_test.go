package bot_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"mongobot/approvals"
	"mongobot/bot"
	"mongobot/bot/slack/slacktest"
	"mongobot/connector/mongotest"
	"mongobot/store"
)

// accessEntry is the journal entry of the access of request id, once it has one.
func (e *env) accessEntry(id uint64) store.Entry {
	e.t.Helper()
	r, err := e.st.Request(id)
	if err != nil || r.EntryID == 0 {
		e.t.Fatalf("request #%d has no journal entry: %+v, %v", id, r, err)
	}
	ent, err := e.st.Entry(r.EntryID)
	if err != nil {
		e.t.Fatal(err)
	}
	return ent
}

// exists reports whether user name@admin exists on the server.
func (e *env) exists(name string) bool {
	e.t.Helper()
	return e.state(name).Exists
}

// Just-in-time access on the emulator: approved, the user exists with exactly the roles
// asked for and the requester's id in its customData, its password (revealed once to the
// requester) logs in, and it is dropped when its time is up, across a restart.
func TestAccessEndToEnd(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.command(dev, `access prod read@shop readWrite@shop --for 2h --reason "OPS-12: look at an order"`)
	card := e.card("Request #1", "access `jit-u0dev-", "with `read@shop, readWrite@shop`", "for 2h",
		"for the requester only, with exactly read@shop, readWrite@shop", "dropped by the bot 2h after it is made")
	e.private(dev, "Request #1", "is waiting for approval")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*", "the bot undoes it by itself at 2026-11-27 11:00 UTC")
	ent := e.accessEntry(1)
	name := ent.Args["user"]
	if !strings.HasPrefix(name, "jit-u0dev-") || len(name) != len("jit-u0dev-")+6 {
		t.Fatalf("user name %q", name)
	}
	st := e.state(name)
	got := []string{}
	for _, r := range st.Roles {
		got = append(got, r.String())
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"read@shop", "readWrite@shop"}) {
		t.Fatalf("roles %v, want exactly read@shop and readWrite@shop", got)
	}
	if !strings.Contains(st.CustomData, `"slack_user":"U0DEV"`) || !strings.Contains(st.CustomData, `"jit":true`) {
		t.Fatalf("customData %s does not name its owner", st.CustomData)
	}
	pw := e.reveal(dev, name)
	if err := e.login(name, pw); err != nil {
		t.Fatalf("the revealed password does not log in: %v", err)
	}

	e.advance(time.Hour)
	if !e.exists(name) {
		t.Fatal("dropped an hour early")
	}
	// The end survives a restart: it is in the journal, not only in a timer.
	e.stop()
	e.clock.Add(70 * time.Minute)
	e.start(testPolicy())
	e.advance(0)
	e.result(card, "*Done*, journal #2", "rollback of #1", "by the bot (--for 2h ended)")
	if e.exists(name) {
		t.Fatal("the access outlived its end")
	}
	if err := e.login(name, pw); err == nil {
		t.Fatal("the password still logs in after the end")
	}
	e.checkNoSecrets()
}

// The end of an access is an obligation: a MongoDB that refuses the drop gets retried, with
// an overdue alarm, until the user is gone. Auto-approval by the JIT policy: no vote, still
// journaled and posted.
func TestAccessEndRetriedUntilDone(t *testing.T) {
	p := testPolicy()
	j := p.JIT["prod"]
	j.AutoApprove = []approvals.JITAuto{{Roles: []string{"read@*"}, Who: approvals.Group{Users: []string{dev}}}}
	p.JIT["prod"] = j
	e := newEnv(t, envOptions{policy: &p})
	e.command(dev, "access prod read@shop --for 30m")
	card := e.card("Request #1", "access `jit-u0dev-")
	e.result(card, "*Done*")
	ent := e.accessEntry(1)
	if ent.Approvers != nil || ent.Args["auto"] != "jit" {
		t.Fatalf("auto-approved access journaled as %+v", ent)
	}
	name := ent.Args["user"]
	if !e.exists(name) {
		t.Fatal("no user")
	}
	// readWrite is not auto-approved for dev: it waits for a vote.
	e.command(dev, "access prod readWrite@shop --for 30m")
	e.card("Request #2", "access `jit-u0dev-")
	e.private(dev, "Request #2", "is waiting for approval")

	e.emu.Inject(mongotest.Fault{Command: "dropUser", Code: 13, Message: "not authorized on admin to execute command", Times: 2})
	e.advance(30 * time.Minute)
	e.message("the overdue alarm", slacktest.Containing("OVERDUE: journal #1 ", "attempt 1"))
	if !e.exists(name) {
		t.Fatal("the fault did not hold the drop")
	}
	e.advance(time.Minute)
	e.message("the second alarm", slacktest.Containing("OVERDUE: journal #1 ", "attempt 2"))
	e.advance(2 * time.Minute)
	e.result(card, "*Done*", "by the bot (--for 30m ended)")
	if e.exists(name) {
		t.Fatal("the access was not ended after the fault cleared")
	}
}

// access-end: by the requester or an approver, nobody else; the timer then does nothing more.
// Refusals say why and change nothing.
func TestAccessEndEarlyAndRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	name := e.approvedAccess(dev, "read@shop --for 4h")

	e.command(eve, "access-end 1")
	e.private(eve, "Sorry")
	e.command(carol, "access-end 1") // an approver through the S0DBAS group
	e.private(carol, "Access #1 has ended", "was dropped from prod")
	if e.exists(name) {
		t.Fatal("access-end did not drop the user")
	}
	e.command(dev, "access-end 1")
	e.private(dev, "Access #1 has already ended")
	e.advance(5 * time.Hour)
	if es, _, _ := e.st.History(0, 100); len(es) != 2 {
		t.Fatalf("%d journal entries, want 2: the timer ran after access-end", len(es))
	}

	for _, c := range []struct{ text, want string }{
		{"access prod root --for 1h", "The role root@admin is not offered for just-in-time access on this connector (offered: read@*, readWrite@shop)"},
		{"access prod read@shop --for 5h", "Access on this connector lasts at most 4h, not 5h"},
		{"access prod read@shop", "`access` needs `--for <duration>`"},
		{"access prod nosuchrole@shop read@x --for 1h", "The role nosuchrole@shop is not offered"},
		{"access-end 99", "There is no access #99"},
	} {
		e.command(dev, c.text)
		e.private(dev, c.want)
	}
	if rs, _, _ := e.st.Requests(0, 100); len(rs) != 1 {
		t.Fatalf("%d requests, want 1: a refusal recorded one", len(rs))
	}
}

// An access whose createUser outlives the bot's wait is settled by the periodic check: found
// applied, it keeps its end (the journaled start plus --for) and its user is dropped on time.
func TestAccessInterruptedStillEnds(t *testing.T) {
	e := newEnv(t, envOptions{actionTimeout: time.Second})
	e.emu.Inject(mongotest.Fault{Command: "createUser", Delay: 1500 * time.Millisecond, Times: 1})
	e.command(dev, "access prod read@shop --for 1h")
	card := e.card("Request #1", "access")
	e.click(alice, card, bot.TextApprove)
	e.private(dev, "Journal #1", "MongoDB stopped answering in the middle")
	waitUntil(t, "the late create to land", func() bool { return e.emu.Count("createUser") == 1 })
	e.checkUntil("the outcome", slacktest.Containing("Journal #1", "it is now done"))
	ent := e.accessEntry(1)
	if ent.State != store.EntryDone || !ent.UndoAt.Equal(ent.CreatedAt.Add(time.Hour)) {
		t.Fatalf("reconciled access: state %s, ends %s (created %s)", ent.State, ent.UndoAt, ent.CreatedAt)
	}
	name := ent.Args["user"]
	e.advance(time.Hour)
	e.result(card, "by the bot (--for 1h ended)")
	if e.exists(name) {
		t.Fatal("an interrupted access was never ended")
	}
}

// Auto-approval never covers a high-risk access, the policy refuses a jit connector where
// access needs no approval, and a role with a comma (the journal's separator) is refused.
func TestAccessGuards(t *testing.T) {
	p := testPolicy()
	j := p.JIT["prod"]
	j.AutoApprove = []approvals.JITAuto{{Roles: []string{"read@*"}, Who: approvals.Group{Users: []string{dev}}}}
	p.JIT["prod"] = j
	e := newEnv(t, envOptions{policy: &p})
	e.command(dev, "access prod read@admin --for 1h")
	e.card("Request #1", "access", "read@admin")
	e.private(dev, "Request #1", "is waiting for approval")
	e.command(dev, `access prod "read,x@shop" --for 1h`)
	e.private(dev, "may not contain a comma", "Nothing was requested")

	open := p
	open.Require = []string{"grant-role"}
	if err := open.Validate([]string{"grant-role", "access"}, []string{"prod"}); err == nil || !strings.Contains(err.Error(), "access needs no approval on prod") {
		t.Fatalf("a jit connector whose access needs no approval: %v", err)
	}
}

// A just-in-time user is named after its requester's Slack id, never after the legacy user
// name Slack sends, which its owner can change (to "alice", say, to pass for her in the
// journal and on the server).
func TestAccessNamedAfterTheUserID(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.slack.SetUserName(dev, "alice")
	e.command(dev, "access prod read@shop --for 1h")
	card := e.card("Request #1", "access `jit-u0dev-")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*")
	if name := e.accessEntry(1).Args["user"]; !strings.HasPrefix(name, "jit-u0dev-") || strings.Contains(name, "alice") {
		t.Fatalf("the access user is named %q, not after U0DEV", name)
	}
}

// An auto-approved access that duplicates one the same person already has, waiting or in
// force, with the same roles is refused like any other duplicate; other roles, another
// person, or the same roles after the first has ended are not duplicates.
func TestAccessDuplicateRefused(t *testing.T) {
	p := testPolicy()
	j := p.JIT["prod"]
	j.AutoApprove = []approvals.JITAuto{{Roles: []string{"read@*"}, Who: approvals.Group{Users: []string{dev, alice}}}}
	p.JIT["prod"] = j
	e := newEnv(t, envOptions{policy: &p})
	e.command(dev, "access prod read@shop read@app --for 30m")
	e.result(e.card("Request #1", "access `jit-u0dev-"), "*Done*")
	e.command(dev, "access prod read@app read@shop --for 1h") // same roles, another order
	e.private(dev, "Your access #1 to prod with the same roles", "in force until", "access-end 1", "Nothing was requested")
	// A twin waiting for a vote is refused the same way, with how to cancel it.
	e.command(dev, "access prod readWrite@shop --for 30m")
	e.private(dev, "Request #2", "is waiting for approval")
	e.command(dev, "access prod readWrite@shop --for 30m")
	e.private(dev, "Your access #2 to prod with the same roles", "waiting for approval", "cancel 2", "Nothing was requested")
	// Not twins: a subset of the roles, and another requester.
	e.command(dev, "access prod read@shop --for 30m")
	e.result(e.card("Request #3", "access `jit-u0dev-"), "*Done*")
	e.command(alice, "access prod read@shop read@app --for 30m")
	e.result(e.card("Request #4", "access `jit-u0alice-"), "*Done*")
	if rs, _, _ := e.st.Requests(0, 100); len(rs) != 4 {
		t.Fatalf("%d requests, want 4: a duplicate was recorded", len(rs))
	}
	e.command(dev, "access-end 1")
	e.private(dev, "Access #1 has ended")
	e.command(dev, "access prod read@shop read@app --for 30m")
	e.result(e.card("Request #5", "access `jit-u0dev-"), "*Done*")
}

// A policy that asks for a reason refuses a request without one, typed or through the form,
// where the reason field is then not optional.
func TestReasonRequired(t *testing.T) {
	p := testPolicy()
	yes := true
	p.Rules = append(p.Rules, approvals.Rule{Actions: []string{"access"}, RequireReason: &yes})
	e := newEnv(t, envOptions{policy: &p})
	e.command(dev, "access prod read@shop --for 1h")
	e.private(dev, "The policy asks for a reason for access on prod", "Nothing was requested")
	e.command(dev, "")
	v := e.modal("the form", dev, func(v slacktest.View) bool { _, ok := v.Field("action"); return ok })
	v = e.choose(dev, v, "action", "access", "roles")
	v = e.choose(dev, v, "connector", "prod", "roles")
	for _, b := range v.Blocks {
		if b["block_id"] == "reason" && b["optional"] == true {
			t.Fatal("the reason is optional in the form though the policy requires it")
		}
	}
	e.command(dev, `access prod read@shop --for 1h --reason "INC-9"`)
	e.card("Request #1", "INC-9")
}

// approvedAccess has who ask for access to prod (roles and --for in what), as request #1,
// alice approve it, and returns the just-in-time user it made.
func (e *env) approvedAccess(who, what string) string {
	e.t.Helper()
	e.command(who, "access prod "+what)
	card := e.card("Request #1", "access")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*")
	return e.accessEntry(1).Args["user"]
}
