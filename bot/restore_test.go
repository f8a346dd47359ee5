package bot_test

import (
	"bytes"
	"os"
	"path/filepath"
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

// restoreFrom backs up the bot's journal as it is now (the bot running), stops the bot,
// restores the backup into a new data folder with a copy of the key file, and starts a bot
// there, the old folder gone as after the loss of its disk.
func (e *env) restoreFrom() {
	e.t.Helper()
	var buf bytes.Buffer
	if _, err := e.st.Backup(&buf, ""); err != nil {
		e.t.Fatal(err)
	}
	e.stop()
	b, err := store.ReadBackup(&buf)
	if err != nil {
		e.t.Fatal(err)
	}
	old := e.dir
	e.dir = filepath.Join(e.t.TempDir(), "restored")
	if err := store.RestoreFile(e.dir, b); err != nil {
		e.t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(old, store.KeyFileName))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, store.KeyFileName), key, 0o600); err != nil {
		e.t.Fatal(err)
	}
	if err := b.CheckKey(e.dir, nil); err != nil {
		e.t.Fatalf("the key file copied with the backup: %v", err)
	}
	if err := os.RemoveAll(old); err != nil {
		e.t.Fatal(err)
	}
	e.start(testPolicy())
}

// A backup taken while MongoDB applies a grant holds its entry executing: the bot started
// on the restored journal settles it from the user's actual state, and never sends the
// grant again.
func TestRestoredExecutingEntryIsSettledNotRerun(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	read := connector.Role{Name: "read", DB: "shop"}
	e.emu.Inject(mongotest.Fault{Command: "grantRolesToUser", DelayAfter: 2 * time.Second, Times: 1})
	e.command(dev, "grant-role prod app read@shop")
	card := e.card("Request #1")
	e.click(alice, card, bot.TextApprove)
	waitUntil(t, "the grant to land", func() bool { return e.emu.Count("grantRolesToUser") == 1 })
	if ex, _ := e.st.Executing(); len(ex) != 1 {
		t.Fatalf("%d entries executing while MongoDB answers, want 1", len(ex))
	}
	e.restoreFrom()
	e.checkUntil("the outcome", slacktest.Containing("Journal #1", "it is now done"))
	if !e.state("app").HasRole(read) {
		t.Fatal("the grant is gone")
	}
	if n := e.emu.Count("grantRolesToUser"); n != 1 {
		t.Fatalf("grantRolesToUser sent %d times: the restored journal ran it again", n)
	}
	if ex, _ := e.st.Executing(); len(ex) != 0 {
		t.Fatalf("%d entries still executing", len(ex))
	}
}

// A journal backed up while the bot runs, with a temporary grant and a just-in-time access
// still to end, is restored into a new data folder (with the same key file); the bot started
// on the restored journal ends each at its time, once: the journal holds one rollback entry
// for each, the roles and the user are gone, and a new request is numbered after the old.
func TestRestoredJournalResumesTemporaryEnds(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	root := connector.Role{Name: "root", DB: "admin"}
	e.command(dev, "grant-role prod app root --for 2h")
	grant := e.card("grant-role", "for 2h")
	e.click(alice, grant, bot.TextApprove)
	e.result(grant, "*Done*")
	e.command(dev, "access prod read@shop --for 3h")
	access := e.card("Request #2", "access `jit-u0dev-")
	e.click(alice, access, bot.TextApprove)
	e.result(access, "*Done*")
	jit := e.accessEntry(2).Args["user"]

	// Online: the bot's own store, open for writing, is backed up from one transaction.
	e.restoreFrom()
	e.advance(2*time.Hour + time.Minute)
	e.result(grant, "rollback of #1", "by the bot (--for 2h ended)")
	if e.state("app").HasRole(root) {
		t.Fatal("root outlived its end on the restored journal")
	}
	if !e.exists(jit) {
		t.Fatal("the access ended an hour early")
	}
	e.advance(time.Hour)
	e.result(access, "rollback of #2", "by the bot (--for 3h ended)")
	if e.exists(jit) {
		t.Fatal("the access outlived its end on the restored journal")
	}
	// Each end ran once, and stays done.
	e.advance(time.Hour)
	ends := map[uint64]int{}
	for id := uint64(1); ; id++ {
		en, err := e.st.Entry(id)
		if err != nil {
			break
		}
		if en.RollbackOf != 0 {
			ends[en.RollbackOf]++
		}
	}
	if ends[1] != 1 || ends[2] != 1 || len(ends) != 2 {
		t.Fatalf("rollback entries per entry: %v, want one each for #1 and #2", ends)
	}
	if n := e.bot.OverdueTemporary(); n != 0 {
		t.Fatalf("%d temporary ends overdue", n)
	}
	e.command(dev, "lock-user prod app")
	e.card("Request #3", "lock-user")
}

// A backup taken while a scheduled rotation's delivery is pending: the bot on the restored
// journal keeps retrying it until the application has the password (which logs in), and the
// schedule runs at its next slot, once, numbered after the journal's last entry.
func TestRestoredJournalKeepsDeliveryAndSchedule(t *testing.T) {
	app := newAppSide(t)
	e := newEnv(t, envOptions{schedules: bot.ScheduleConfig{Channel: "C0SCHED"}, deliveries: func(e *env) []bot.Delivery {
		return []bot.Delivery{{Connector: "prod", Users: []connector.UserRef{{User: "app", DB: "admin"}}, Targets: []bot.Target{app.target(t)}}}
	}})
	e.createUser("app")
	app.down(t, true)
	e.schedule("app", "0 3 * * *")
	e.advance(18 * time.Hour) // 03:00
	e.message("the first alarm", slacktest.Containing("DELIVERY PENDING, journal #2 (attempt 1)"))

	e.restoreFrom()
	if e.bot.DeliveryPending() != 1 {
		t.Fatalf("after the restore, mongobot_delivery_pending = %d, want 1", e.bot.DeliveryPending())
	}
	e.advance(time.Minute)
	e.message("the second alarm", slacktest.Containing("DELIVERY PENDING, journal #2 (attempt 2)"))
	app.down(t, false)
	e.advance(10 * time.Minute)
	e.message("delivered at last", slacktest.Containing("Journal #2: the password of `app@admin` on prod is now delivered to every target"))
	user, pw := app.cred(t)
	e.secrets = append(e.secrets, pw)
	if err := e.login(user, pw); err != nil {
		t.Fatalf("the delivery after the restore does not log in: %v", err)
	}
	// The next slot: one run, journal #3.
	e.advance(24 * time.Hour)
	e.message("the next run", func(m slacktest.Message) bool {
		return m.Channel == "C0SCHED" && strings.Contains(m.All(), "*Done*, journal #3")
	})
	e.advance(time.Hour)
	if runs := e.entriesOf("rotate-password"); len(runs) != 2 {
		t.Fatalf("%d rotations in the journal, want the one before the backup and the next slot's", len(runs))
	}
}

// A backup taken while a request is approved but has not begun (queued, or the bot stopped
// before it ran): the old bot may have run it after the backup, so the bot started on the
// restored journal does not run it on that old approval. It is failed, by "restore", and
// MongoDB never sees the grant.
func TestRestoredApprovedRequestIsNotRun(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	r, err := e.st.CreateRequest(store.Request{Action: "grant-role", Connector: "prod", Requester: dev,
		Args: map[string]string{"user": "app", "db": "admin", "roles": "read@shop"}}, approvals.Pending, dev)
	if err != nil {
		t.Fatal(err)
	}
	// Approved in the journal only: this bot's queue never holds it, as if it waited
	// behind a busy connector when the backup was taken.
	if _, err := e.st.TransitionRequest(r.ID, []string{approvals.Pending}, store.Step{State: approvals.Approved, By: alice}, func(r *store.Request) {
		r.Votes = append(r.Votes, store.Vote{User: alice, Approve: true, At: r.CreatedAt})
	}); err != nil {
		t.Fatal(err)
	}
	e.restoreFrom()
	got, err := e.st.Request(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := got.History[len(got.History)-1]; got.State != approvals.Failed || last.By != "restore" {
		t.Fatalf("the request approved before the backup: %s, last step %+v; want failed by restore", got.State, last)
	}
	e.advance(time.Minute)
	if n := e.emu.Count("grantRolesToUser"); n != 0 {
		t.Fatalf("grantRolesToUser sent %d times on an approval from before the backup", n)
	}
	if e.state("app").HasRole(connector.Role{Name: "read", DB: "shop"}) {
		t.Fatal("the restored journal ran the old approval")
	}
}
