package bot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mongobot/bot"
	"mongobot/bot/slack/slacktest"
	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/delivery/command"
	"mongobot/store"
)

// appSide is a real program as a delivery target: a shell script that keeps what it receives
// on its standard input in a file with mode 0600, where the application reads it, and that
// refuses (exit 3) while a "down" file exists beside it.
type appSide struct {
	dir string
}

func newAppSide(t testing.TB) *appSide {
	t.Helper()
	a := &appSide{dir: t.TempDir()}
	script := filepath.Join(a.dir, "deliver.sh")
	body := `#!/bin/sh
umask 077
if [ -e "$APP_DIR/down" ]; then echo "the application's secret store is down" >&2; exit 3; fi
cat > "$APP_DIR/cred.json.tmp" && mv "$APP_DIR/cred.json.tmp" "$APP_DIR/cred.json"
`
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	return a
}

// target is the script as the bot's delivery target.
func (a *appSide) target(t testing.TB) bot.Target {
	t.Helper()
	c, err := command.New(command.Config{Argv: []string{filepath.Join(a.dir, "deliver.sh")}, Env: map[string]string{"APP_DIR": a.dir}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// down makes the target refuse (true) or accept (false).
func (a *appSide) down(t testing.TB, down bool) {
	t.Helper()
	p := filepath.Join(a.dir, "down")
	if down {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	_ = os.Remove(p)
}

// cred is what the application reads: the user and password last delivered.
func (a *appSide) cred(t testing.TB) (user, pw string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(a.dir, "cred.json"))
	if err != nil {
		return "", ""
	}
	var c struct{ Username, Password string }
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("the delivered document: %v", err)
	}
	return c.Username, c.Password
}

func TestRotationDeliveredToACommand(t *testing.T) {
	app := newAppSide(t)
	e := newEnv(t, envOptions{deliveries: func(e *env) []bot.Delivery {
		return []bot.Delivery{{Connector: "prod", Users: []connector.UserRef{{User: "app", DB: "admin"}}, Targets: []bot.Target{app.target(t)}}}
	}})
	old := e.createUser("app", connector.Role{Name: "readWrite", DB: "shop"})
	e.command(dev, `rotate-password prod app --reason "quarterly"`)
	card := e.card("Request #1", "delivered to command", "read back from each", "nobody is shown it", "new logins fail until applications read")
	e.click(alice, card, bot.TextApprove)
	res := e.result(card, "*Done*, journal #1", "*Delivered to*", "a command cannot be read back: it exited with status 0",
		"Nobody can reveal it (reveal: none)", "Alternating users (strategy: alternating) avoid that window")
	if strings.Contains(res.All(), bot.TextReveal) {
		t.Fatalf("a delivered password with reveal: none was offered for Reveal: %s", res.All())
	}
	user, pw := app.cred(t)
	e.secrets = append(e.secrets, pw)
	if user != "app" || pw == "" {
		t.Fatalf("the application got user %q", user)
	}
	if err := e.login("app", pw); err != nil {
		t.Fatalf("the delivered password does not log in: %v", err)
	}
	if err := e.login("app", old); err == nil {
		t.Fatal("the old password still works")
	}
	ent, _ := e.st.Entry(1)
	if ent.AwaitsDelivery() || ent.DeliverySecret != "" || len(ent.Deliveries) != 1 || ent.Deliveries[0].State != store.DeliveryVerified {
		t.Fatalf("journal #1 after delivery: %+v", ent)
	}
	var steps []string
	for _, s := range ent.History {
		steps = append(steps, s.State)
	}
	if got := strings.Join(steps, ","); !strings.Contains(got, "executing,done,delivering,delivered,delivery verified,delivered everywhere") {
		t.Fatalf("journal #1 steps: %s", got)
	}
	if n, _ := e.st.SecretCount(); n != 0 {
		t.Fatalf("%d sealed secret(s) left after delivery; want none", n)
	}
	if _, ok := e.slack.Find(func(m slacktest.Message) bool { _, ok := m.Find(bot.TextReveal); return ok }); ok {
		t.Fatal("a Reveal button was posted")
	}
}

func TestDeliveryRetriedUntilDeliveredAcrossRestart(t *testing.T) {
	app := newAppSide(t)
	e := newEnv(t, envOptions{schedules: bot.ScheduleConfig{Channel: "C0SCHED"}, deliveries: func(e *env) []bot.Delivery {
		return []bot.Delivery{{Connector: "prod", Users: []connector.UserRef{{User: "app", DB: "admin"}}, Targets: []bot.Target{app.target(t)}}}
	}})
	e.createUser("app")
	app.down(t, true)
	e.schedule("app", "0 3 * * *")
	e.advance(18 * time.Hour) // 03:00
	e.message("the run's result with the pending delivery", func(m slacktest.Message) bool {
		return m.Channel == "C0SCHED" && strings.Contains(m.All(), "*Done*, journal #2") && strings.Contains(m.All(), ": not delivered: ") &&
			strings.Contains(m.All(), "exited with status 3: the application's secret store is down") && strings.Contains(m.All(), "Delivery is PENDING")
	})
	e.message("the alarm in the schedule's channel", func(m slacktest.Message) bool {
		return m.Channel == "C0SCHED" && strings.Contains(m.All(), "DELIVERY PENDING, journal #2 (attempt 1)") &&
			strings.Contains(m.All(), "MongoDB has the new password of `app@admin` on prod") && strings.Contains(m.All(), "does NOT have it")
	})
	e.message("the alarm to the owner", func(m slacktest.Message) bool {
		return m.Channel == "D"+dev && strings.Contains(m.All(), "DELIVERY PENDING, journal #2")
	})
	if e.bot.DeliveryPending() != 1 {
		t.Fatalf("mongobot_delivery_pending = %d, want 1", e.bot.DeliveryPending())
	}
	if n, _ := e.st.SecretCount(); n != 1 {
		t.Fatalf("%d sealed secrets while the delivery is pending; want 1", n)
	}
	// A restart keeps the obligation: it is in the journal, not only in memory.
	e.stop()
	e.start(testPolicy())
	if e.bot.DeliveryPending() != 1 {
		t.Fatalf("after a restart, mongobot_delivery_pending = %d, want 1", e.bot.DeliveryPending())
	}
	e.advance(time.Minute) // still down: a second failure
	e.message("the second alarm", slacktest.Containing("DELIVERY PENDING, journal #2 (attempt 2)"))
	app.down(t, false)
	e.advance(10 * time.Minute)
	e.message("delivered at last", func(m slacktest.Message) bool {
		return m.Channel == "C0SCHED" && strings.Contains(m.All(), "Journal #2: the password of `app@admin` on prod is now delivered to every target (after 2 failed attempt(s))")
	})
	user, pw := app.cred(t)
	e.secrets = append(e.secrets, pw)
	if user != "app" {
		t.Fatalf("delivered user %q", user)
	}
	if err := e.login("app", pw); err != nil {
		t.Fatalf("the late delivery does not log in: %v", err)
	}
	if e.bot.DeliveryPending() != 0 {
		t.Fatalf("mongobot_delivery_pending = %d after delivery", e.bot.DeliveryPending())
	}
	if n, _ := e.st.SecretCount(); n != 0 {
		t.Fatalf("%d sealed secrets left after the delivery; want 0", n)
	}
}

func TestAlternatingUsersAndRollback(t *testing.T) {
	app := newAppSide(t)
	pair := []connector.UserRef{{User: "orders_a", DB: "admin"}, {User: "orders_b", DB: "admin"}}
	e := newEnv(t, envOptions{deliveries: func(e *env) []bot.Delivery {
		return []bot.Delivery{{Connector: "prod", Users: pair, Alternating: true, Targets: []bot.Target{app.target(t)}}}
	}})
	oldA := e.createUser("orders_a", connector.Role{Name: "readWrite", DB: "orders"})

	// First use: the twin does not exist; the card says it is made with orders_a's roles.
	e.command(dev, "rotate-password prod orders_a")
	card := e.card("Request #1", "`orders_b@admin` does not exist yet: it is created first with the roles of `orders_a@admin`",
		"the bot never had the password of `orders_a@admin`")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*, journal #2", "created orders_b@admin as the alternating twin of orders_a@admin", "No rollback: the bot does not hold the password of orders_a@admin")
	user, pwB := app.cred(t)
	e.secrets = append(e.secrets, pwB)
	if user != "orders_b" {
		t.Fatalf("first rotation delivered %q, want orders_b", user)
	}
	if st := e.state("orders_b"); !st.HasRole(connector.Role{Name: "readWrite", DB: "orders"}) {
		t.Fatalf("the twin lacks orders_a's role: %s", st.Describe())
	}
	if err := e.login("orders_a", oldA); err != nil {
		t.Fatalf("orders_a stopped working after the first rotation: %v", err)
	}

	// Second: orders_a changes, orders_b keeps working; Roll back is real now.
	e.command(dev, "rotate-password prod orders_b") // either name of the pair
	card2 := e.card("Request #2", "applications use `orders_b@admin` now, so `orders_a@admin` gets a new password",
		"give applications `orders_b@admin` again")
	e.click(alice, card2, bot.TextApprove)
	res := e.result(card2, "*Done*, journal #3", "rotate-password `orders_a@admin`", "Roll back will give applications orders_b@admin again")
	user, pwA := app.cred(t)
	e.secrets = append(e.secrets, pwA)
	if user != "orders_a" || e.login("orders_a", pwA) != nil || e.login("orders_b", pwB) != nil {
		t.Fatalf("after the second rotation: app uses %q; both users must work", user)
	}
	if e.login("orders_a", oldA) == nil {
		t.Fatal("orders_a's first password still works")
	}
	// Different roles on the twins show on the next card.
	if _, err := e.admin.GrantRole(t.Context(), pair[0], connector.Role{Name: "read", DB: "audit"}); err != nil {
		t.Fatal(err)
	}
	e.command(dev, "rotate-password prod orders_a")
	drift := e.card("Request #3", "Twins differ", "only orders_a@admin has read@audit")
	e.command(dev, "cancel 3")
	e.cardSays(drift, "Cancelled")

	e.click(dev, res, bot.TextRollback)
	e.approveRollback(3, alice)
	e.message("the rollback's result", slacktest.Containing("*Done*, journal #4", "*Delivered to*"))
	user, pw := app.cred(t)
	if user != "orders_b" || pw != pwB {
		t.Fatalf("after the rollback the application has %q (same password: %v); want orders_b with its kept password", user, pw == pwB)
	}
	if err := e.login("orders_b", pw); err != nil {
		t.Fatalf("the redelivered password does not log in: %v", err)
	}
	ent, _ := e.st.Entry(3)
	if ent.State != store.EntryRolledBack {
		t.Fatalf("journal #3 is %s after its rollback", ent.State)
	}
	if twin, _ := e.st.Entry(1); twin.Action != "create-twin" || twin.State != store.EntryDone || twin.RequestID != 1 {
		t.Fatalf("journal #1 should be the twin's creation for request #1: %+v", twin)
	}
	// The next rotation changes orders_a again (applications use orders_b).
	e.command(dev, "rotate-password prod orders_a")
	e.card("Request #5", "applications use `orders_b@admin` now, so `orders_a@admin` gets a new password")
}

func TestRevealOwnerAndSupersededDelivery(t *testing.T) {
	app := newAppSide(t)
	e := newEnv(t, envOptions{deliveries: func(e *env) []bot.Delivery {
		return []bot.Delivery{{Connector: "prod", Users: []connector.UserRef{{User: "app", DB: "admin"}}, Reveal: true, Targets: []bot.Target{app.target(t)}}}
	}})
	e.createUser("app")
	app.down(t, true)
	e.command(dev, "rotate-password prod app")
	card := e.card("Request #1", "its owner may also reveal it once")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*, journal #1", "Delivery is PENDING", "Its owner can also reveal it once (reveal: owner)")
	first := e.reveal(dev, "app") // the owner's own copy, whatever the delivery's state
	if err := e.login("app", first); err != nil {
		t.Fatalf("the revealed password does not log in: %v", err)
	}
	// A second rotation before the first reached the target: the first's delivery is
	// superseded (its password no longer works) and only the second is delivered.
	e.command(dev, "rotate-password prod app")
	card2 := e.card("Request #2")
	e.click(alice, card2, bot.TextApprove)
	e.result(card2, "*Done*, journal #2")
	e.message("the superseded delivery", slacktest.Containing("Journal #1's password of `app@admin` on prod was never delivered everywhere; journal #2 replaced it"))
	app.down(t, false)
	e.advance(time.Minute)
	e.message("journal #2 delivered", slacktest.Containing("Journal #2: the password of `app@admin` on prod is now delivered to every target"))
	user, pw := app.cred(t)
	e.secrets = append(e.secrets, pw)
	if user != "app" || e.login("app", pw) != nil || pw == first {
		t.Fatal("the application does not have the second rotation's working password")
	}
	one, _ := e.st.Entry(1)
	if one.AwaitsDelivery() || one.Deliveries[0].State != store.DeliverySuperseded {
		t.Fatalf("journal #1 after being superseded: %+v", one.Deliveries)
	}
	if e.bot.DeliveryPending() != 0 {
		t.Fatalf("%d deliveries pending", e.bot.DeliveryPending())
	}
}

func TestScheduledRunFailingOnMongoDBSaysNothingWasDelivered(t *testing.T) {
	app := newAppSide(t)
	e := newEnv(t, envOptions{schedules: bot.ScheduleConfig{Channel: "C0SCHED"}, deliveries: func(e *env) []bot.Delivery {
		return []bot.Delivery{{Connector: "prod", Users: []connector.UserRef{{User: "app", DB: "admin"}}, Targets: []bot.Target{app.target(t)}}}
	}})
	e.createUser("app")
	e.schedule("app", "0 3 * * *")
	e.emu.Inject(mongotestFault("updateUser", 13))
	e.advance(18 * time.Hour)
	e.message("the failure with the state of everything", func(m slacktest.Message) bool {
		return m.Channel == "C0SCHED" && strings.Contains(m.All(), "Scheduled rotation #1 of `app@admin` on prod FAILED (attempt 1 of 3)") &&
			strings.Contains(m.All(), "MongoDB was not changed and nothing was delivered: applications keep the login they have.")
	})
	if user, _ := app.cred(t); user != "" {
		t.Fatal("a failed rotation delivered something")
	}
}

// editJournal changes the stopped bot's journal as a crash at some instant would have left it.
func (e *env) editJournal(fn func(st *store.Store)) {
	e.t.Helper()
	e.stop()
	st, err := store.Open(e.dir, store.Options{Now: e.clock.Now, NoSync: true})
	if err != nil {
		e.t.Fatal(err)
	}
	fn(st)
	st.Close()
	e.start(testPolicy())
}

func alternating(app *appSide, t *testing.T) func(*env) []bot.Delivery {
	return func(*env) []bot.Delivery {
		return []bot.Delivery{{Connector: "prod", Users: []connector.UserRef{{User: "orders_a", DB: "admin"}, {User: "orders_b", DB: "admin"}},
			Alternating: true, Targets: []bot.Target{app.target(t)}}}
	}
}

// A crash after the last target verified and before the delivery was recorded as finished:
// the next start finishes it (the pair records the delivered user), instead of forgetting it.
func TestDeliveryFinishedAfterACrashBeforeItWasRecorded(t *testing.T) {
	app := newAppSide(t)
	e := newEnv(t, envOptions{deliveries: alternating(app, t)})
	e.createUser("orders_a", connector.Role{Name: "read", DB: "orders"})
	app.down(t, true)
	e.command(dev, "rotate-password prod orders_a")
	e.click(alice, e.card("Request #1"), bot.TextApprove)
	e.message("the pending delivery", slacktest.Containing("DELIVERY PENDING, journal #2"))
	app.down(t, false)
	e.editJournal(func(st *store.Store) {
		if _, err := st.UpdateEntry(2, func(x *store.Entry) error {
			for i := range x.Deliveries {
				x.Deliveries[i].State = store.DeliveryVerified // every target had it; then the crash
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	if e.bot.DeliveryPending() != 1 {
		t.Fatalf("after the restart, %d deliveries pending; the unfinished one must be held", e.bot.DeliveryPending())
	}
	e.advance(time.Minute)
	if e.bot.DeliveryPending() != 0 {
		t.Fatal("the delivery was not finished at the next attempt")
	}
	ent, _ := e.st.Entry(2)
	if ent.DeliverySecret != "" || ent.History[len(ent.History)-1].State != "delivered everywhere" {
		t.Fatalf("journal #2 after its finish: %+v", ent.History[len(ent.History)-1])
	}
	p, ok, _ := e.st.Pair("prod/orders_a@admin+orders_b@admin")
	if !ok || p.Current.User != "orders_b@admin" || p.Current.Entry != 2 || p.Current.Secret == "" {
		t.Fatalf("the pair after the finish: %+v", p)
	}
	e.command(dev, "rotate-password prod orders_b")
	e.card("Request #2", "applications use `orders_b@admin` now, so `orders_a@admin` gets a new password")
}

// While a delivery to a pair is unfinished, some applications may use the user the next
// rotation would change: it is refused until the delivery is done. --kill-sessions and
// --logout-all would act on the other user: refused with what to do instead.
func TestPairRotationWaitsForItsDelivery(t *testing.T) {
	app := newAppSide(t)
	e := newEnv(t, envOptions{deliveries: alternating(app, t)})
	e.createUser("orders_a")
	e.command(dev, "rotate-password prod orders_a --logout-all")
	e.private(dev, "Users orders_a@admin and orders_b@admin alternate", "--logout-all would not act on orders_a@admin", "lock it (lock-user), or rotate twice", "Nothing was requested")
	app.down(t, true)
	e.command(dev, "rotate-password prod orders_a")
	e.click(alice, e.card("Request #1"), bot.TextApprove)
	e.message("the pending delivery", slacktest.Containing("DELIVERY PENDING, journal #2"))
	e.command(dev, "rotate-password prod orders_a")
	e.private(dev, "The delivery of journal #2 (orders_b@admin) is not finished", "the pair's next rotation waits for it", "Nothing was requested")
	app.down(t, false)
	e.advance(time.Minute)
	e.command(dev, "rotate-password prod orders_a")
	e.card("Request #2", "applications use `orders_b@admin` now")
}

// After a crash between a second rotation's change and its delivery superseding the first's,
// both are unfinished at the next start: the older password must never be the one left on
// the target.
func TestOlderDeliveryNeverWinsAfterARestart(t *testing.T) {
	app := newAppSide(t)
	e := newEnv(t, envOptions{deliveries: func(*env) []bot.Delivery {
		return []bot.Delivery{{Connector: "prod", Users: []connector.UserRef{{User: "app", DB: "admin"}}, Targets: []bot.Target{app.target(t)}}}
	}})
	e.createUser("app")
	app.down(t, true)
	for i := range 2 {
		e.command(dev, "rotate-password prod app")
		e.click(alice, e.card(fmt.Sprintf("Request #%d", i+1)), bot.TextApprove)
		e.message("the pending delivery", slacktest.Containing(fmt.Sprintf("DELIVERY PENDING, journal #%d", i+1)))
	}
	// Journal #1 as if #2 had not superseded it yet: pending, with a sealed (old) password.
	e.editJournal(func(st *store.Store) {
		one, _ := st.Entry(1)
		id, err := st.PutSecret(one.Requester, []byte("the-older-password"), store.RecoveryTTL)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.UpdateEntry(1, func(x *store.Entry) error {
			x.DeliverySecret, x.DeliveryOwner, x.DeliverAt = id, one.Requester, e.clock.Now()
			for i := range x.Deliveries {
				x.Deliveries[i].State = store.DeliveryPending
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	e.secrets = append(e.secrets, "the-older-password")
	app.down(t, false)
	e.advance(time.Minute)
	user, pw := app.cred(t)
	e.secrets = append(e.secrets, pw)
	if user != "app" || e.login("app", pw) != nil {
		t.Fatalf("the application was left with a password that does not log in (older: %v)", pw == "the-older-password")
	}
	one, _ := e.st.Entry(1)
	if one.AwaitsDelivery() || one.Deliveries[0].State != store.DeliverySuperseded {
		t.Fatalf("journal #1: %+v", one.Deliveries)
	}
	if n, _ := e.st.SecretCount(); n != 0 {
		t.Fatalf("%d sealed secrets left", n)
	}
}

// A target taken out of the config while a delivery waits for it is dropped, loudly, and the
// delivery finishes with the others: a pair must not wait forever for it.
func TestTargetRemovedFromTheConfigIsDropped(t *testing.T) {
	app, gone := newAppSide(t), newAppSide(t)
	pair := []connector.UserRef{{User: "orders_a", DB: "admin"}, {User: "orders_b", DB: "admin"}}
	e := newEnv(t, envOptions{deliveries: func(*env) []bot.Delivery {
		return []bot.Delivery{{Connector: "prod", Users: pair, Alternating: true, Targets: []bot.Target{app.target(t), gone.target(t)}}}
	}})
	e.createUser("orders_a")
	gone.down(t, true)
	e.command(dev, "rotate-password prod orders_a")
	e.click(alice, e.card("Request #1"), bot.TextApprove)
	e.message("the pending delivery", slacktest.Containing("DELIVERY PENDING, journal #2"))
	e.deliveries = func(*env) []bot.Delivery {
		return []bot.Delivery{{Connector: "prod", Users: pair, Alternating: true, Targets: []bot.Target{app.target(t)}}}
	}
	e.editJournal(func(*store.Store) {})
	e.advance(time.Minute)
	e.message("the dropped target said", slacktest.Containing("is no longer among the configured targets of `orders_b@admin` on prod, so the new password was NOT delivered there"))
	if e.bot.DeliveryPending() != 0 {
		t.Fatal("the delivery still waits for a target that is no longer configured")
	}
	e.command(dev, "rotate-password prod orders_a")
	e.card("Request #2", "applications use `orders_b@admin` now")
}

// An alternating rotation whose updateUser is applied but answered too late, with MongoDB back
// when the action's own reconciliation looks: the delivery must still start (reconciliation
// runs under the pair's lock, which it must not take again).
func TestAlternatingRotationSettledAfterATimeoutIsDelivered(t *testing.T) {
	app := newAppSide(t)
	e := newEnv(t, envOptions{actionTimeout: 300 * time.Millisecond, deliveries: alternating(app, t)})
	e.createUser("orders_a")
	e.createUser("orders_b")
	e.command(dev, "rotate-password prod orders_a")
	card := e.card("Request #1")
	e.emu.Inject(mongotest.Fault{Command: "updateUser", DelayAfter: time.Second, Times: 1})
	e.emu.Inject(mongotest.Fault{Command: "saslStart", Drop: true, Times: 1}) // the action's own login check fails once
	e.click(alice, card, bot.TextApprove)
	e.message("reconciled done", slacktest.Containing("Journal #1", "it is now done"))
	waitUntil(t, "the delivery after reconciliation", func() bool {
		e.bot.RunDue(context.Background()).Wait()
		user, _ := app.cred(t)
		return user == "orders_b"
	})
	_, pw := app.cred(t)
	e.secrets = append(e.secrets, pw)
	if err := e.login("orders_b", pw); err != nil {
		t.Fatalf("the delivered password does not log in: %v", err)
	}
	e.command(dev, "rotate-password prod orders_a")
	e.card("Request #2", "applications use `orders_b@admin` now")
}

// A pair's pending delivery whose user was locked meanwhile is abandoned, not finished:
// applications must not move to a user that cannot log in.
func TestPendingPairDeliveryOfALockedUserIsAbandoned(t *testing.T) {
	app := newAppSide(t)
	e := newEnv(t, envOptions{deliveries: alternating(app, t)})
	e.createUser("orders_a")
	e.createUser("orders_b")
	app.down(t, true)
	e.command(dev, "rotate-password prod orders_a") // changes orders_b
	card := e.card("Request #1")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*, journal #1", "Delivery is PENDING")
	e.command(dev, "lock-user prod orders_b")
	card2 := e.card("Request #2")
	e.click(alice, card2, bot.TextApprove)
	e.result(card2, "*Done*, journal #2")
	app.down(t, false)
	e.advance(time.Minute)
	e.message("the abandoned delivery", slacktest.Containing("Journal #1: The new password of orders_b@admin no longer logs in", "Nothing was delivered: applications keep using `orders_a@admin`"))
	if user, _ := app.cred(t); user != "" {
		t.Fatalf("the application was given %q", user)
	}
	if p, _, _ := e.st.Pair("prod/orders_a@admin+orders_b@admin"); p.Current.User == "orders_b@admin" {
		t.Fatal("the pair records the locked user as the one applications use")
	}
	if e.bot.DeliveryPending() != 0 {
		t.Fatal("the abandoned delivery is still pending")
	}
	if n, _ := e.st.SecretCount(); n != 0 {
		t.Fatalf("%d sealed secrets left", n)
	}
}

// A crash in the rollback of an alternating rotation after it was journaled and before its
// redelivery was recorded: the next start finds it not applied and the rotation can be rolled
// back again (it is not marked rolled back before the redelivery is recorded).
func TestRedeliveryRollbackInterruptedCanBeTriedAgain(t *testing.T) {
	app := newAppSide(t)
	e := newEnv(t, envOptions{deliveries: alternating(app, t)})
	e.createUser("orders_a")
	e.createUser("orders_b")
	var res slacktest.Message
	for i := range 2 {
		e.command(dev, "rotate-password prod orders_a")
		card := e.card(fmt.Sprintf("Request #%d", i+1))
		e.click(alice, card, bot.TextApprove)
		res = e.result(card, fmt.Sprintf("*Done*, journal #%d", i+1))
	}
	e.editJournal(func(st *store.Store) {
		if _, err := st.BeginRollback(2, store.Entry{Requester: dev, Connector: "prod", Action: "rollback",
			Args:       map[string]string{"id": "2", "user": "orders_a", "authdb": "admin", "performs": "rotate-password", "redeliver": "orders_b@admin", "replaces": "orders_a@admin", "delivery": "alternating"},
			Deliveries: []store.Delivery{{Target: "x", State: store.DeliveryPending}}}, dev); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(5 * time.Minute) // past the time its action could still land
	})
	two, _ := e.st.Entry(2)
	if two.State != store.EntryDone || two.RolledBackBy != 0 {
		t.Fatalf("journal #2 after the interrupted rollback was settled: %s, rolled back by #%d", two.State, two.RolledBackBy)
	}
	e.click(dev, res, bot.TextRollback)
	e.click(alice, e.card("Request #3", "rollback of #2"), bot.TextApprove)
	waitUntil(t, "the redelivery of orders_b", func() bool { user, _ := app.cred(t); return user == "orders_b" })
	waitUntil(t, "journal #2 marked rolled back", func() bool { two, _ = e.st.Entry(2); return two.State == store.EntryRolledBack })
}

// A locked alternating pair is not rotated: the user it would change is locked, or would be
// created as a locked twin (a twin takes the lock, or rotating would undo it). Rotating anyway
// left a password no application could be given, a locked twin no lock entry would ever end,
// and an alarm at every scheduled run. Found by the invariant checker (seed 7013) on both
// backends. A scheduled rotation accepted while the pair is locked says so, fails loudly
// while it lasts, and runs again once it has ended.
func TestLockedPairIsNotRotated(t *testing.T) {
	app := newAppSide(t)
	// No retries: a failed run's retry 5 minutes later would race the lock's end for the
	// same clock jump, and this test is about the lock.
	e := newEnv(t, envOptions{schedules: bot.ScheduleConfig{Channel: "C0SCHED", Retries: -1}, deliveries: alternating(app, t)})
	e.createUser("orders_a", connector.Role{Name: "read", DB: "shop"})
	e.clock.Add(-e.clock.Now().Sub(e.clock.Now().Truncate(time.Hour))) // on the hour

	// Asked before the lock, approved after it: refused when it would act.
	e.command(dev, `rotate-password prod orders_a --reason "OPS-1"`)
	rotation := e.card("Request #1", "`orders_b@admin` does not exist yet")
	// 90m: the lock ends between two hourly runs. Ending at a run's own slot would leave the
	// order of the two timers, when the clock jumps past both, to chance.
	e.command(dev, `lock-user prod orders_a --for 90m --reason "OPS-2"`)
	e.click(alice, e.card("Request #2"), bot.TextApprove)
	e.result(e.card("Request #2"), "*Done*")
	e.click(alice, rotation, bot.TextApprove)
	e.private(dev, "Request #1 (rotate-password `orders_a@admin` on prod) failed: The user applications use now, orders_a@admin, is locked, and orders_b@admin would be created as its twin, locked too")

	// Asked while locked: refused at once.
	e.command(dev, `rotate-password prod orders_a --reason "OPS-3"`)
	e.private(dev, "The user applications use now, orders_a@admin, is locked", "Nothing was requested")

	// A schedule is accepted, with the lock said on its card.
	e.command(dev, `schedule rotate-password prod orders_a "0 * * * *"`)
	sc := e.card("schedule rotate-password", "*Locked*", "Its runs fail until then")
	e.click(alice, sc, bot.TextApprove)
	e.message("the schedule confirmed", slacktest.Containing("Schedule #1 is active"))
	e.advance(time.Hour)
	e.message("a run failing loudly", slacktest.Containing(":rotating_light:", "Scheduled rotation #1", "FAILED", "is locked", "MongoDB was not changed and nothing was delivered"))
	if e.state("orders_b").Exists {
		t.Fatal("a twin of the locked user was created")
	}
	if n := len(e.entriesOf("create-twin")) + len(e.entriesOf("rotate-password")); n != 0 {
		t.Fatalf("%d entries rotating or making a twin while the pair was locked", n)
	}
	if user, _ := app.cred(t); user != "" {
		t.Fatalf("the application was given %q", user)
	}

	// The lock ends (its --for), and the next run makes the twin, unlocked, and delivers it.
	e.advance(30 * time.Minute)
	waitUntil(t, "the lock's end", func() bool { return !e.state("orders_a").Locked() })
	e.advance(30 * time.Minute)
	waitUntil(t, "the delivery of the twin", func() bool { user, _ := app.cred(t); return user == "orders_b" })
	_, pw := app.cred(t)
	e.secrets = append(e.secrets, pw)
	if st := e.state("orders_b"); st.Locked() || !st.HasRole(connector.Role{Name: "read", DB: "shop"}) {
		t.Fatalf("the twin: %+v", st)
	}
	if err := e.login("orders_b", pw); err != nil {
		t.Fatalf("the delivered password does not log in: %v", err)
	}
}

// With both users of a pair existing: a rotation that would change a locked user is refused;
// one that changes the unlocked user while the one in use is locked goes ahead, which is how a
// compromised user is cut off with applications kept running (lock it, then rotate).
func TestLockedPairWithBothUsers(t *testing.T) {
	app := newAppSide(t)
	e := newEnv(t, envOptions{deliveries: alternating(app, t)})
	e.createUser("orders_a")
	e.createUser("orders_b")
	e.command(dev, `lock-user prod orders_b --reason "OPS-1"`)
	e.click(alice, e.card("Request #1"), bot.TextApprove)
	e.result(e.card("Request #1"), "*Done*")
	e.command(dev, `rotate-password prod orders_a --reason "OPS-2"`) // would change orders_b
	e.private(dev, "The user this rotation would change and give applications, orders_b@admin, is locked", "Nothing was requested")
	if n := len(e.entriesOf("rotate-password")); n != 0 {
		t.Fatalf("%d rotations of a locked user", n)
	}

	e.command(dev, `unlock-user prod orders_b --reason "OPS-3"`)
	e.click(alice, e.card("Request #2"), bot.TextApprove)
	e.result(e.card("Request #2"), "*Done*")
	e.command(dev, `lock-user prod orders_a --reason "OPS-4: leaked"`)
	e.click(alice, e.card("Request #3"), bot.TextApprove)
	e.result(e.card("Request #3"), "*Done*")
	e.command(dev, `rotate-password prod orders_a --reason "OPS-4: leaked"`)
	card := e.card("Request #4", "applications use `orders_a@admin` now")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*")
	waitUntil(t, "the delivery of orders_b", func() bool { user, _ := app.cred(t); return user == "orders_b" })
	_, pw := app.cred(t)
	e.secrets = append(e.secrets, pw)
	if err := e.login("orders_b", pw); err != nil {
		t.Fatalf("the delivered password does not log in: %v", err)
	}
	if !e.state("orders_a").Locked() {
		t.Fatal("the leaked user was unlocked by the rotation")
	}
}
