package bot_test

// Giving up a privilege never waits (giveup.go): each case that runs at once and each that
// still needs approval, on the MongoDB emulator through the Slack stand-in, under the default
// policy (grant-role, revoke-role, unlock-user and drop-user all need approval).

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"mongobot/approvals"
	"mongobot/bot"
	"mongobot/bot/slack/slacktest"
	"mongobot/connector"
	"mongobot/kv"
	"mongobot/store"
)

var (
	rootRole = connector.Role{Name: "root", DB: "admin"}
	readShop = connector.Role{Name: "read", DB: "shop"}
)

// roleChanges are the role grants and revokes the emulator applied to name@admin after seq.
func (e *env) roleChanges(name string, seq uint64) []string {
	var out []string
	for _, a := range e.emu.AppliedSince(seq) {
		if a.User.User != name {
			continue
		}
		for _, r := range a.RolesAdded {
			out = append(out, "grant "+r.Role+"@"+r.DB)
		}
		for _, r := range a.RolesRemoved {
			out = append(out, "revoke "+r.Role+"@"+r.DB)
		}
		if a.Dropped {
			out = append(out, "drop")
		}
	}
	return out
}

// endsOf are the journal entries, not failed, that roll back entry id.
func (e *env) endsOf(id uint64) []store.Entry {
	e.t.Helper()
	es, _, err := e.st.History(0, 500)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []store.Entry
	for _, x := range es {
		if x.RollbackOf == id && x.State != store.EntryFailed {
			out = append(out, x)
		}
	}
	return out
}

// The requester ends their own temporary grant early: at once, without a vote, journaled as
// given up by them; only the role the grant added is revoked, and the bot's own end does not
// run again later, nor raise an alarm.
func TestGiveUpOwnTemporaryGrant(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.command(dev, "grant-role prod app root --for 4h")
	card := e.card("grant-role", "for 4h", "revoke root@admin; with --for, its requester or an approver can end it early at once, without a vote")
	e.click(alice, card, bot.TextApprove)
	res := e.result(card, "*Done*, journal #1", "its requester or an approver presses Roll back", "rollback 1", "with no approval, since it only removes")
	// Someone grants another role outside the bot meanwhile: no reason to wait, nor to touch it.
	if _, err := e.admin.GrantRole(context.Background(), connector.UserRef{User: "app", DB: "admin"}, readShop); err != nil {
		t.Fatal(err)
	}
	seq := e.emu.AppliedSeq()
	e.click(dev, res, bot.TextRollback)
	e.private(dev, "Ending journal #1 early needs no approval", "it only revokes root@admin, which journal #1 granted for 4h", "running it now")
	e.result(card, "journal #2", "rollback of #1", "given up early by <@"+dev+">", "no vote was needed: it only removes")
	if got := e.roleChanges("app", seq); len(got) != 1 || got[0] != "revoke root@admin" {
		t.Fatalf("the server saw %v, want exactly the revoke of root", got)
	}
	st := e.state("app")
	if st.HasRole(rootRole) || !st.HasRole(readShop) {
		t.Fatalf("roles after giving up: %v, want read@shop only", st.Roles)
	}
	ent, err := e.st.Entry(2)
	if err != nil {
		t.Fatal(err)
	}
	if ent.Requester != dev || ent.RequestID != 0 || ent.Args["given_up_by"] != dev || ent.Args["performs"] != "revoke-role" {
		t.Fatalf("the give-up is journaled as %+v", ent)
	}
	if _, err := e.st.Request(2); err == nil {
		t.Fatal("giving up made a request for approval")
	}
	if orig, _ := e.st.Entry(1); orig.State != store.EntryRolledBack || orig.RolledBackBy != 2 {
		t.Fatalf("journal #1 is %s (by #%d), want rolled back by #2", orig.State, orig.RolledBackBy)
	}
	e.cardSays(card, "Rolled back")
	e.command(dev, "history")
	e.private(dev, "#2", "given up early by <@"+dev+"> (no vote was needed")
	// The temporary end is cleared once: its time comes and goes with nothing more.
	e.advance(4*time.Hour + time.Minute)
	e.advance(time.Hour)
	if n := len(e.endsOf(1)); n != 1 {
		t.Fatalf("journal #1 was ended %d times", n)
	}
	if got := e.roleChanges("app", seq); len(got) != 1 {
		t.Fatalf("the server saw %v after the grant's time, want nothing more", got)
	}
	if n := e.bot.OverdueTemporary(); n != 0 {
		t.Fatalf("overdue gauge %d after giving up", n)
	}
	if strings.Contains(e.dump(), "OVERDUE") {
		t.Fatalf("an overdue alarm after giving up:\n%s", e.dump())
	}
	// Nothing undoes the give-up (that would grant root back), and a second press does nothing.
	e.click(dev, res, bot.TextRollback)
	e.private(dev, "Journal #1 was already rolled back (by #2)")
	e.command(dev, "rollback 2")
	e.private(dev, "Journal #2 (rollback) cannot be rolled back", "ended a temporary action early")
}

// An approver may give up someone's temporary grant at once too (here one who did not
// approve it), even under a policy that requires approval of every rollback.
func TestGiveUpByAnApprover(t *testing.T) {
	p := testPolicy()
	p.Require = append([]string{"rollback"}, approvals.DefaultRequire...)
	e := newEnv(t, envOptions{policy: &p})
	e.createUser("app")
	e.command(dev, "grant-role prod app read@shop --for 2h")
	card := e.card("grant-role")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*, journal #1")
	e.command(bob, `rollback 1 --reason "incident over"`)
	e.private(bob, "needs no approval", "running it now")
	e.result(card, "journal #2", "given up early by <@"+bob+">")
	if e.state("app").HasRole(readShop) {
		t.Fatal("read@shop is still granted")
	}
	if ent, _ := e.st.Entry(2); ent.Requester != bob || ent.Args["reason"] != "incident over" {
		t.Fatalf("journaled as %+v", ent)
	}
}

// What does not only remove, or is asked by someone with no standing, still follows the
// policy: each Roll back below opens a request (or is refused) and changes nothing.
func TestGiveUpBoundary(t *testing.T) {
	p := testPolicy()
	p.Access.Users = append(p.Access.Users, eve) // eve may use the bot, but approves nothing
	e := newEnv(t, envOptions{policy: &p})
	e.createUser("app", readShop)
	done := func(cmd string, n int) slacktest.Message {
		t.Helper()
		e.command(dev, cmd)
		card := e.card(fmt.Sprintf("Request #%d", n))
		e.click(alice, card, bot.TextApprove)
		return e.result(card, fmt.Sprintf("journal #%d", n))
	}
	// 1. A permanent grant: its rollback is a revoke-role the policy judges.
	r1 := done("grant-role prod app dbAdmin@shop", 1)
	// 2. A revoke: its rollback grants.
	r2 := done("revoke-role prod app read@shop", 2)
	// 3. A temporary lock: ending it early gives the login back.
	r3 := done("lock-user prod app --for 4h", 3)
	if !strings.Contains(r3.All(), "judged by the policy like any unlock-user") {
		t.Fatalf("the lock's result does not say how its early end is judged: %s", r3.All())
	}
	// 4. A user the bot created: its rollback is a drop.
	r4 := done("create-readonly-user prod new1 shop", 4)
	// 5. A temporary grant of dev's, which eve (neither its requester nor an approver) tries.
	r5 := done("grant-role prod app root --for 4h", 5)

	seq := e.emu.AppliedSeq()
	e.click(dev, r1, bot.TextRollback)
	e.private(dev, "Rolling back journal #1 performs revoke-role, which needs approval", "request #6")
	e.click(dev, r2, bot.TextRollback)
	e.private(dev, "Rolling back journal #2 performs grant-role, which needs approval", "request #7")
	e.click(dev, r3, bot.TextRollback)
	e.private(dev, "Rolling back journal #3 performs unlock-user, which needs approval", "request #8")
	e.click(dev, r4, bot.TextRollback)
	e.private(dev, "Rolling back journal #4 performs drop-user, which needs approval", "request #9")
	e.click(eve, r5, bot.TextRollback)
	e.private(eve, "Only the requester of journal #5 (<@"+dev+">) or an approver can roll it back")
	e.command(eve, "rollback 5")
	e.private(eve, "Only the requester of journal #5")
	// A forged button: entry #5's id with entry #1's token.
	b5, _ := r5.Find(bot.TextRollback)
	b1, _ := r1.Find(bot.TextRollback)
	id5, _, _ := strings.Cut(b5.Value, ".")
	_, tok1, _ := strings.Cut(b1.Value, ".")
	b5.Value = id5 + "." + tok1
	if _, err := e.slack.Click(dev, r5, b5); err != nil {
		t.Fatal(err)
	}
	e.private(dev, "does not belong to journal #5")
	if got := e.roleChanges("app", seq); len(got) != 0 {
		t.Fatalf("the server saw %v; nothing should have run without approval", got)
	}
	if !e.exists("new1") || !e.state("app").HasRole(rootRole) {
		t.Fatal("something ran without approval")
	}
	for _, id := range []uint64{6, 7, 8, 9} {
		if r, err := e.st.Request(id); err != nil || r.State != approvals.Pending {
			t.Fatalf("request #%d: %+v, %v; want pending", id, r, err)
		}
	}
	// After the bot's own end, there is nothing left to give up.
	e.advance(4*time.Hour + time.Minute)
	e.message("the end of #5", func(m slacktest.Message) bool { return strings.Contains(m.All(), "rollback of #5") })
	e.command(dev, "rollback 5")
	e.private(dev, "Journal #5 was already rolled back")
}

// The give-up re-reads the server when it acts and revokes only the grant's own role on the
// same user: a role taken away outside the bot is left alone (nothing to undo), and a user
// dropped and re-created by someone else is spared.
func TestGiveUpChecksTheServer(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.createUser("svc")
	u := func(n string) connector.UserRef { return connector.UserRef{User: n, DB: "admin"} }
	e.command(dev, "grant-role prod app root --for 4h")
	c1 := e.card("Request #1")
	e.click(alice, c1, bot.TextApprove)
	r1 := e.result(c1, "journal #1")
	e.command(dev, "grant-role prod svc read@shop --for 4h")
	c2 := e.card("Request #2")
	e.click(alice, c2, bot.TextApprove)
	r2 := e.result(c2, "journal #2")
	ctx := context.Background()
	if _, err := e.admin.RevokeRole(ctx, u("app"), rootRole); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.DropUser(ctx, u("svc"), nil); err != nil {
		t.Fatal(err)
	}
	e.createUser("svc", readShop) // someone else's, with the role
	seq := e.emu.AppliedSeq()
	e.click(dev, r1, bot.TextRollback)
	e.result(c1, "rollback of #1", "no longer had root@admin")
	e.click(dev, r2, bot.TextRollback)
	e.result(c2, "rollback of #2", "a different user now has its name")
	if got := append(e.roleChanges("app", seq), e.roleChanges("svc", seq)...); len(got) != 0 {
		t.Fatalf("the server saw %v", got)
	}
	if !e.state("svc").HasRole(readShop) {
		t.Fatal("the stranger's role was revoked")
	}
	e.advance(5 * time.Hour)
	if len(e.endsOf(1)) != 1 || len(e.endsOf(2)) != 1 {
		t.Fatal("a temporary end ran twice")
	}
}

// Ending a temporary access by its Roll back: at once, its user dropped.
func TestGiveUpAccess(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.command(dev, "access prod read@shop --for 2h")
	card := e.card("Request #1")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*", "with no approval, since it only removes")
	ent := e.accessEntry(1)
	name := ent.Args["user"]
	e.command(dev, fmt.Sprintf("rollback %d", ent.ID))
	e.private(dev, "needs no approval", "it only drops "+name+"@admin")
	e.result(card, "rollback of #1", "given up early by <@"+dev+">")
	if e.exists(name) {
		t.Fatal("the access's user is still there")
	}
}

// The requester's give-up and the bot's own end at the same moment: one of them ends it, once.
func TestGiveUpRacesTheEnd(t *testing.T) {
	for i := range 5 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.createUser("app")
			e.command(dev, "grant-role prod app root --for 30m")
			card := e.card("Request #1")
			e.click(alice, card, bot.TextApprove)
			res := e.result(card, "journal #1")
			seq := e.emu.AppliedSeq()
			e.clock.Add(30 * time.Minute)
			var wg sync.WaitGroup
			wg.Go(func() { e.bot.RunDue(context.Background()).Wait() })
			wg.Go(func() { e.click(dev, res, bot.TextRollback) })
			wg.Wait()
			e.message("the end of #1", func(m slacktest.Message) bool {
				return m.Thread == card.TS && strings.Contains(m.All(), "rollback of #1") && strings.Contains(m.All(), "*Done*")
			})
			if got := e.roleChanges("app", seq); len(got) != 1 {
				t.Fatalf("the server saw %v, want one revoke", got)
			}
			if n := len(e.endsOf(1)); n != 1 {
				t.Fatalf("journal #1 ended %d times", n)
			}
		})
	}
}

// The invariant checker through each way of giving up: a temporary grant ended early by its
// requester, by an approver, and tried by someone who is neither (who must not end it, and
// whose try must not hold up the bot's own end); a temporary access ended by Roll back and by
// access-end; a temporary lock, whose early end is judged by the policy. Time then passes
// beyond every end, so the checker sees each end run exactly once.
func TestInvariantsGiveUp(t *testing.T) {
	grant := func(who, user, role string) []Step {
		return []Step{
			{Kind: "cmd", User: who, Text: "grant-role prod " + user + " " + role + " --for 4h"},
			{Kind: "approve", User: alice},
		}
	}
	// One temporary action is in force at each giveup step, so its selector does not matter.
	var steps []Step
	steps = append(steps, grant(dev, "u1", "readWrite@shop")...)
	steps = append(steps, Step{Kind: "giveup", N: 0, M: 0}) // dev, by the Roll back button
	steps = append(steps, grant(dev, "u2", "root")...)
	steps = append(steps, Step{Kind: "giveup", N: 1, M: 1}) // alice, by `rollback <id>`
	steps = append(steps,
		Step{Kind: "cmd", User: dev, Text: "access prod readWrite@shop --for 1h"},
		Step{Kind: "approve", User: bob},
		Step{Kind: "giveup", N: 1, M: 0}, // dev, by access-end
		Step{Kind: "cmd", User: frank, Text: "access prod read@shop --for 1h"},
		Step{Kind: "approve", User: alice},
		Step{Kind: "giveup", N: 0, M: 0}, // frank, by Roll back
		Step{Kind: "cmd", User: dev, Text: "lock-user prod u4 --for 30m"},
		Step{Kind: "approve", User: alice},
		Step{Kind: "giveup", N: 0, M: 0}, // the lock's end gives a login back: a request
		Step{Kind: "approve", User: bob},
	)
	steps = append(steps, grant(frank, "u3", "dbAdmin@reports")...)
	steps = append(steps,
		Step{Kind: "giveup", N: 0, M: 2}, Step{Kind: "giveup", N: 1, M: 2}, // neither: refused
		Step{Kind: "clock", N: 4}, // past every end
		Step{Kind: "clock", N: 5},
	)
	var byRequester, byApprover, asked int
	var ended []uint64
	inspect := func(w *world) {
		es := w.entries()
		for _, e := range es {
			if e.RollbackOf != 0 && e.Args["user"] == "u3" && e.Requester != "bot" {
				t.Errorf("#%d: u3's grant was ended by %s, not by the bot at its end", e.ID, e.Requester)
			}
			switch {
			case e.Args["given_up_by"] == "":
			case e.State != store.EntryDone:
				t.Errorf("give-up #%d is %s", e.ID, e.State)
			case e.Requester == alice:
				byApprover++
			default:
				byRequester++
			}
			if !e.UndoAt.IsZero() && e.State == store.EntryRolledBack {
				ended = append(ended, e.ID)
			}
		}
		for id := uint64(1); ; id++ {
			r, err := w.journal().Request(id)
			if err != nil {
				break
			}
			if r.Action == "rollback" {
				asked++
			}
		}
		t.Logf("given up: %d by the requester, %d by an approver; %d rollback request(s); temporary entries ended: %v", byRequester, byApprover, asked, ended)
	}
	if v := runStepsWith(t, nil, steps, testing.Verbose(), inspect); len(v) > 0 {
		t.Fatal(v)
	}
	// u1's grant and both accesses by their requesters, u2's grant by alice; the lock's end is
	// asked for (and approved by bob); u3's grant is ended by the bot, not by the strangers.
	if byRequester != 3 || byApprover != 1 || asked < 1 || len(ended) != 6 {
		t.Fatalf("given up %d by requesters (want 3), %d by an approver (want 1), %d rollback requests (want at least 1), %d temporary actions ended (want 6)",
			byRequester, byApprover, asked, len(ended))
	}
}

// A person's give-up is a person's verb, not timer work: a replica that does not lead (its
// timer journal fenced) runs it, as it runs a vote.
func TestGiveUpOnAFollower(t *testing.T) {
	e := newEnv(t, envOptions{timerJournal: func() (*store.Store, error) {
		return nil, fmt.Errorf("%w: this replica does not lead (test)", kv.ErrFenced)
	}})
	e.createUser("app")
	e.command(dev, "grant-role prod app root --for 4h")
	card := e.card("Request #1")
	e.click(alice, card, bot.TextApprove)
	res := e.result(card, "*Done*, journal #1")
	e.click(dev, res, bot.TextRollback)
	e.result(card, "journal #2", "given up early by <@"+dev+">")
	if e.state("app").HasRole(rootRole) {
		t.Fatal("a follower did not give the grant up")
	}
}

// access-end and the Home's End now, on a replica that does not lead, end the access: a
// person's verb is served by whichever replica Slack hands it to.
func TestAccessEndOnAFollower(t *testing.T) {
	follower := envOptions{timerJournal: func() (*store.Store, error) {
		return nil, fmt.Errorf("%w: this replica does not lead (test)", kv.ErrFenced)
	}}
	t.Run("access-end", func(t *testing.T) {
		e := newEnv(t, follower)
		name := e.approvedAccess(dev, "read@shop --for 4h")
		e.command(dev, "access-end 1")
		e.private(dev, "Access #1 has ended", "was dropped from prod")
		if e.exists(name) {
			t.Fatal("access-end on a follower did not drop the user")
		}
	})
	t.Run("End now", func(t *testing.T) {
		e := newEnv(t, follower)
		name := e.approvedAccess(dev, "read@shop --for 4h")
		if _, err := e.slack.HomeOpened(dev); err != nil {
			t.Fatal(err)
		}
		h := e.home(dev, "Your temporary grants and access* (1)")
		end, ok := h.Find("End now", 0)
		if !ok {
			t.Fatalf("no End now on dev's home: %s", h.All())
		}
		id, err := e.slack.Press(dev, h, end)
		if err != nil {
			t.Fatal(err)
		}
		e.acked(id)
		e.private(dev, "Access #1 has ended")
		if e.exists(name) {
			t.Fatal("End now on a follower did not drop the user")
		}
	})
}

// A later grant of the same role, by another person's approved request, is not the temporary
// grant's to take away: after root was revoked and given back for good (#2, #3), giving up #1
// no longer only removes what #1 added, so its Roll back is judged by the policy, says why,
// and nothing is revoked until an approver agrees. A later change of anything else (a
// rotation, another role) leaves the give-up as it was: at once.
func TestGiveUpAfterALaterGrant(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.command(dev, "grant-role prod app root --for 4h")
	c1 := e.card("Request #1")
	e.click(alice, c1, bot.TextApprove)
	r1 := e.result(c1, "*Done*, journal #1")
	e.command(bob, "revoke-role prod app root")
	c2 := e.card("Request #2")
	e.click(alice, c2, bot.TextApprove)
	e.result(c2, "*Done*, journal #2")
	e.command(bob, "grant-role prod app root")
	c3 := e.card("Request #3")
	e.click(alice, c3, bot.TextApprove)
	e.result(c3, "*Done*, journal #3")
	seq := e.emu.AppliedSeq()
	e.click(dev, r1, bot.TextRollback)
	e.private(dev, "Ending journal #1 early cannot skip the vote", "journal #3 (grant-role) changed app@admin since", "judged by the policy")
	c4 := e.card("Request #4", "rollback of #1 (revoke-role)")
	if got := e.roleChanges("app", seq); len(got) != 0 {
		t.Fatalf("the server saw %v before any approval", got)
	}
	if !e.state("app").HasRole(rootRole) {
		t.Fatal("root, given back by #3, was revoked without a vote")
	}
	if orig, _ := e.st.Entry(1); orig.State != store.EntryDone || orig.RolledBackBy != 0 {
		t.Fatalf("journal #1 is %s (by #%d) before any approval", orig.State, orig.RolledBackBy)
	}
	// An approver agrees: the rollback runs as an ordinary one, with its vote on record.
	e.click(alice, c4, bot.TextApprove)
	e.result(c4, "*Done*", "rollback of #1")
	if got := e.roleChanges("app", seq); len(got) != 1 || got[0] != "revoke root@admin" {
		t.Fatalf("the server saw %v after approval, want the revoke of root", got)
	}
	if ends := e.endsOf(1); len(ends) != 1 || ends[0].Args["given_up_by"] != "" || len(ends[0].Approvers) == 0 {
		t.Fatalf("the rollback of #1 is journaled as %+v, want one approved rollback", ends)
	}
}

// What does not touch the role a temporary grant added, done through the bot after it, does
// not stand in the way: a rotation and a grant of another role leave the give-up at once.
func TestGiveUpAfterUnrelatedChanges(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.command(dev, "grant-role prod app root --for 4h")
	c1 := e.card("Request #1")
	e.click(alice, c1, bot.TextApprove)
	r1 := e.result(c1, "*Done*, journal #1")
	e.command(bob, "grant-role prod app read@shop")
	c2 := e.card("Request #2")
	e.click(alice, c2, bot.TextApprove)
	e.result(c2, "*Done*, journal #2")
	seq := e.emu.AppliedSeq()
	e.click(dev, r1, bot.TextRollback)
	e.private(dev, "Ending journal #1 early needs no approval", "running it now")
	e.result(c1, "given up early by <@"+dev+">")
	if got := e.roleChanges("app", seq); len(got) != 1 || got[0] != "revoke root@admin" {
		t.Fatalf("the server saw %v, want exactly the revoke of root", got)
	}
	if !e.state("app").HasRole(readShop) {
		t.Fatal("the later grant of read@shop was taken away")
	}
}

// The invariant checker through a give-up after a later grant of the same role: root granted
// for a time (#1), revoked and given back for good by another person's approved requests; the
// requester's Roll back of #1 must then ask for a vote, not revoke at once, and every check
// (the server as the journal says, each end once) holds as time passes beyond #1's end.
func TestInvariantsGiveUpAfterALaterGrant(t *testing.T) {
	steps := []Step{
		{Kind: "cmd", User: dev, Text: "grant-role prod u2 root --for 4h"},
		{Kind: "approve", User: alice},
		{Kind: "cmd", User: bob, Text: "revoke-role prod u2 root"},
		{Kind: "approve", User: alice},
		{Kind: "cmd", User: bob, Text: "grant-role prod u2 root"},
		{Kind: "approve", User: alice},
		{Kind: "giveup", N: 0, M: 0}, // dev, by the Roll back button: asks for a vote
		{Kind: "approve", User: bob},
		{Kind: "clock", N: 4},
		{Kind: "clock", N: 5},
	}
	var givenUp, approved int
	inspect := func(w *world) {
		for _, e := range w.entries() {
			if e.RollbackOf == 0 || e.Args["user"] != "u2" {
				continue
			}
			if e.Args["given_up_by"] != "" {
				givenUp++
			} else if e.RequestID != 0 && e.State == store.EntryDone {
				approved++
			}
		}
	}
	if v := runStepsWith(t, nil, steps, testing.Verbose(), inspect); len(v) > 0 {
		t.Fatal(v)
	}
	if givenUp != 0 || approved != 1 {
		t.Fatalf("u2's grant: %d given up without a vote (want 0), %d approved rollbacks (want 1)", givenUp, approved)
	}
}
