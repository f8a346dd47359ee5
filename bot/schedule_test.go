package bot_test

import (
	"context"
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

func TestParseSpecAndNextRuns(t *testing.T) {
	from := time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		spec string
		want []string // RFC 3339 in UTC
	}{
		{"0 3 * * 1", []string{"2026-03-30T03:00:00Z", "2026-04-06T03:00:00Z", "2026-04-13T03:00:00Z"}},
		{"@daily", []string{"2026-03-28T00:00:00Z", "2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z"}},
		// Paris leaves winter time on 29 March 2026: 09:30 is 08:30 UTC before, 07:30 UTC after.
		{"CRON_TZ=Europe/Paris 30 9 * * *", []string{"2026-03-28T08:30:00Z", "2026-03-29T07:30:00Z", "2026-03-30T07:30:00Z"}},
		// New York leaves summer time on 1 November 2026: 06:00 is 10:00 UTC before, 11:00 after.
		{"CRON_TZ=America/New_York 0 6 31,1,2 * *", []string{"2026-03-31T10:00:00Z", "2026-04-01T10:00:00Z", "2026-04-02T10:00:00Z"}},
	}
	for _, tt := range tests {
		s, err := bot.ParseSpec(tt.spec)
		if err != nil {
			t.Fatalf("%s: %v", tt.spec, err)
		}
		var got []string
		for _, r := range bot.NextRuns(s, from, 3) {
			got = append(got, r.UTC().Format(time.RFC3339))
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s: next runs %v, want %v", tt.spec, got, tt.want)
		}
	}
	ny, _ := bot.ParseSpec("CRON_TZ=America/New_York 0 6 * * *")
	got := bot.NextRuns(ny, time.Date(2026, 10, 30, 12, 0, 0, 0, time.UTC), 2)
	if got[0].UTC().Hour() != 10 || got[1].UTC().Hour() != 11 {
		t.Errorf("across the end of summer time: %v", got)
	}
	for _, bad := range []string{"", "every day", "61 * * * *", "* * * *", "CRON_TZ=Mars/Olympus 0 3 * * *", "@every 30s"} {
		if _, err := bot.ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q) accepted", bad)
		}
	}
}

// TestParseSpecSaysWhy checks that a refused spec is refused for its real reason: a day that
// no month has never runs (it used to read as running more than once a minute), and a rare
// but real day such as 29 February is accepted.
func TestParseSpecSaysWhy(t *testing.T) {
	for spec, says := range map[string]string{
		"0 3 31 2 *":                      `"0 3 31 2 *" never runs: no date in the next five years matches its day and month`,
		"0 3 30 2 *":                      "never runs",
		"0 0 31 4,6,9,11 *":               "never runs",
		"CRON_TZ=Europe/Paris 0 3 31 2 *": "never runs",
		"@every 30s":                      `"@every 30s" runs more often than once a minute`,
		"@every 1s":                       "runs more often than once a minute",
		"0 3 * * 1 extra":                 "is not a cron spec",
		"CRON_TZ=Mars/Olympus 0 3 31 2 *": "is not a cron spec",
	} {
		_, err := bot.ParseSpec(spec)
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("ParseSpec(%q) = %v, want it to say %q", spec, err, says)
		}
	}
	leap, err := bot.ParseSpec("0 3 29 2 *")
	if err != nil {
		t.Fatalf("29 February: %v", err)
	}
	var got []string
	for _, r := range bot.NextRuns(leap, time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC), 2) {
		got = append(got, r.Format(time.RFC3339))
	}
	if strings.Join(got, " ") != "2028-02-29T03:00:00Z 2032-02-29T03:00:00Z" {
		t.Errorf("29 February runs %v", got)
	}
	for _, ok := range []string{"* * * * *", "@every 1m", "@yearly", "0 3 31 * *"} {
		if _, err := bot.ParseSpec(ok); err != nil {
			t.Errorf("ParseSpec(%q): %v", ok, err)
		}
	}
}

// schedule makes dev's schedule approved by alice and returns its card.
func (e *env) schedule(user, spec string) slacktest.Message {
	e.t.Helper()
	e.command(dev, "schedule rotate-password prod "+user+` "`+spec+`"`)
	card := e.card("`"+user+"@admin`", "`"+spec+"`", "next runs", bot.TextApprove)
	e.click(alice, card, bot.TextApprove)
	e.message("the schedule confirmed", slacktest.Containing("is active", user+"@admin"))
	return card
}

func TestScheduledRotationEndToEnd(t *testing.T) {
	e := newEnv(t, envOptions{})
	old := e.createUser("svc")
	e.command(dev, `schedule rotate-password prod svc "0 3 * * *"`)
	card := e.card("Request #1", "schedule rotate-password `svc@admin` on prod `0 3 * * *`",
		"next runs: 2026-11-28 03:00 UTC, 2026-11-29 03:00 UTC, 2026-11-30 03:00 UTC")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "Schedule #1 is active")
	e.cardSays(card, "*Done*")
	e.command(dev, "schedules")
	e.private(dev, "#1 rotate-password `svc@admin` on prod `0 3 * * *`", "next 2026-11-28 03:00 UTC; never run")

	e.advance(17*time.Hour + 59*time.Minute) // 02:59: not yet
	if n := e.emu.Count("updateUser"); n != 0 {
		t.Fatalf("ran early: %d updateUser", n)
	}
	e.advance(time.Minute) // 03:00
	e.message("the run's result", func(m slacktest.Message) bool {
		return m.Channel == appr && strings.Contains(m.All(), "*Done*, journal #2: rotate-password `svc@admin` on prod (schedule #1)")
	})
	if err := e.login("svc", old); err == nil {
		t.Fatal("the old password still works after the scheduled rotation")
	}
	pw := e.reveal(dev, "svc")
	if err := e.login("svc", pw); err != nil {
		t.Fatal(err)
	}
	ent, _ := e.st.Entry(2)
	if ent.ScheduleID != 1 || ent.State != store.EntryDone || ent.Approvers[0] != alice {
		t.Fatalf("journal #2: %+v", ent)
	}
	e.advance(time.Hour) // the same day again: nothing more
	if n := e.emu.Count("updateUser"); n != 1 {
		t.Fatalf("%d rotations, want 1", n)
	}
	e.command(dev, "schedules")
	e.private(dev, "last run 2026-11-28 03:00 UTC: done (journal #2)", "next 2026-11-29 03:00 UTC")

	// A second schedule of the same user is refused; unschedule goes through approval.
	e.command(dev, `schedule rotate-password prod svc "@weekly"`)
	e.private(dev, "already has schedule #1")
	// Someone else removes it: its owner is told.
	e.command(bob, "unschedule 1")
	un := e.card("unschedule", "removed")
	e.click(alice, un, bot.TextApprove)
	e.result(un, "Schedule #1", "is removed")
	e.private(dev, "Your schedule #1", "was removed at the request of <@"+bob+">")
	e.advance(24 * time.Hour)
	if n := e.emu.Count("updateUser"); n != 1 {
		t.Fatalf("an unscheduled rotation ran: %d", n)
	}
}

func TestScheduledRotationOnFerretDB(t *testing.T) {
	e := newEnv(t, envOptions{ferret: true})
	old := e.createUser("svc")
	e.schedule("svc", "@hourly")
	e.advance(time.Hour)
	e.message("the run's result", slacktest.Containing("*Done*", "(schedule #1)", "verified: logged in as svc@admin"))
	if err := e.login("svc", old); err == nil {
		t.Fatal("FerretDB still accepts the old password")
	}
	if err := e.login("svc", e.reveal(dev, "svc")); err != nil {
		t.Fatalf("FerretDB refuses the scheduled password: %v", err)
	}
}

func TestMissedRunsAcrossRestart(t *testing.T) {
	e := newEnv(t, envOptions{schedules: bot.ScheduleConfig{MissedWindow: time.Hour}})
	e.createUser("a")
	e.createUser("b")
	e.schedule("a", "0 3 * * *")  // next: 2026-11-28 03:00
	e.schedule("b", "0 12 * * *") // next: 2026-11-27 12:00

	// The bot is down from 09:00 to 03:30 the next day: a's 03:00 run is 30 minutes late,
	// within the window; b's 12:00 run is 15h30 late, outside it.
	e.stop()
	e.clock.Add(18*time.Hour + 30*time.Minute)
	e.start(testPolicy())
	e.message("the late run announced", slacktest.Containing("Schedule #1", "missed its run at 2026-11-28 03:00 UTC", "running it now"))
	e.message("the skip announced", slacktest.Containing("Schedule #2", "missed 1 run(s)", "2026-11-27 12:00 UTC", "skipped", "Next run: 2026-11-28 12:00 UTC"))
	e.advance(0)
	e.message("a's late run", slacktest.Containing("*Done*", "`a@admin`", "(schedule #1)"))
	if n := e.emu.Count("updateUser"); n != 1 {
		t.Fatalf("%d rotations after the restart, want 1 (a only)", n)
	}
	e.advance(9 * time.Hour) // 12:30: b runs on its calendar again
	e.message("b's next run", slacktest.Containing("*Done*", "`b@admin`", "(schedule #2)"))
}

func TestOverlappingRunSkippedAndConcurrencyLimit(t *testing.T) {
	e := newEnv(t, envOptions{schedules: bot.ScheduleConfig{Concurrency: 1}})
	for _, u := range []string{"a", "b", "c"} {
		e.createUser(u)
		e.schedule(u, "* * * * *")
	}
	// Each rotation waits 300ms at the server: the three due at once must run one at a time.
	e.emu.Inject(mongotest.Fault{Command: "updateUser", Delay: 300 * time.Millisecond})
	e.advance(time.Minute)
	if got := e.bot.MaxConcurrentRuns(); got != 1 {
		t.Fatalf("%d runs at once on one connector, limit 1", got)
	}
	if n := e.emu.Count("updateUser"); n != 3 {
		t.Fatalf("%d rotations, want 3", n)
	}
	// A run still going when its next time comes is skipped, not run twice.
	e.clock.Add(time.Minute)
	first := e.bot.RunDue(context.Background())
	waitUntil(t, "a rotation in flight", func() bool { return e.emu.Received("updateUser") > 3 })
	e.clock.Add(time.Minute)
	second := e.bot.RunDue(context.Background())
	first.Wait()
	second.Wait()
	e.emu.ClearFaults()
	if n := e.emu.Count("updateUser"); n != 6 {
		t.Fatalf("%d rotations, want 6: the overlapping second tick runs nothing", n)
	}
	if !strings.Contains(e.logs.String(), "the previous one is still running") {
		t.Error("the skipped run is not logged")
	}
}

// waitUntil polls cond (state outside the stand-in, such as the emulator's counters) until
// it holds, failing at the deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(wait)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("waited %s for %s", wait, what)
		}
	}
}

func TestFailingRunReportedAndRetried(t *testing.T) {
	e := newEnv(t, envOptions{schedules: bot.ScheduleConfig{Retries: 1, RetryDelay: 5 * time.Minute}})
	e.createUser("svc")
	e.schedule("svc", "@hourly")
	e.emu.Inject(mongotest.Fault{Command: "updateUser", Code: 13, Message: "not authorized", Times: 2})
	e.advance(time.Hour)
	e.message("a loud failure", slacktest.Containing(":rotating_light:", "Scheduled rotation #1", "FAILED (attempt 1 of 2)", "lacks the privilege", "Retrying at 2026-11-27 10:05 UTC"))
	e.private(dev, "FAILED (attempt 1 of 2)")
	e.advance(5 * time.Minute)
	e.message("giving up", slacktest.Containing("FAILED 2 times; giving up until its next run at 2026-11-27 11:00 UTC"))
	e.advance(55 * time.Minute)
	e.message("the next run works", slacktest.Containing("*Done*", "(schedule #1)"))
	e.command(dev, "schedules")
	e.private(dev, "last run 2026-11-27 11:00 UTC: done")
}

func TestTemporaryGrantAndLock(t *testing.T) {
	e := newEnv(t, envOptions{})
	pw := e.createUser("app")
	read := connector.Role{Name: "read", DB: "shop"}
	e.command(dev, "grant-role prod app read@shop --for 4h")
	card := e.card("grant-role", "for 4h", "temporary: undone automatically 4h after it runs")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*", "the bot undoes it by itself at 2026-11-27 13:00 UTC")
	e.advance(3 * time.Hour)
	if !e.state("app").HasRole(read) {
		t.Fatal("revoked early")
	}
	// The pending end survives a restart.
	e.stop()
	e.clock.Add(90 * time.Minute)
	e.start(testPolicy())
	e.advance(0)
	e.result(card, "*Done*, journal #2", "rollback of #1", "by the bot (--for 4h ended)", "No rollback")
	if e.state("app").HasRole(read) {
		t.Fatal("the temporary grant was not undone")
	}

	// A lock for 30 minutes, rolled back by hand after 10: the timer does nothing more.
	e.command(dev, "lock-user prod app --for 30m")
	lc := e.card("lock-user", "for 30m")
	e.click(bob, lc, bot.TextApprove)
	res := e.result(lc, "*Done*, journal #3")
	e.advance(10 * time.Minute)
	e.click(dev, res, bot.TextRollback)
	rc := e.approveRollback(3, alice)
	e.result(rc, "*Done*, journal #4")
	if err := e.login("app", pw); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Hour)
	if es, _, _ := e.st.History(0, 100); len(es) != 4 {
		t.Fatalf("%d journal entries, want 4: the cancelled timer ran", len(es))
	}
}

// A schedule approved for an ordinary user does not rotate the password of one made an
// administrator since (outside the bot): its runs fail, saying the policy for high risk
// is not met, and the password is not changed.
func TestScheduleOfAnAdministratorDoesNotRun(t *testing.T) {
	p := testPolicy()
	p.Rules = append(p.Rules, approvals.Rule{Risk: approvals.RiskHigh, Quorum: 2})
	e := newEnv(t, envOptions{policy: &p})
	old := e.createUser("svc")
	e.schedule("svc", "@hourly")
	if _, err := e.admin.GrantRole(t.Context(), connector.UserRef{User: "svc", DB: "admin"}, connector.Role{Name: "root", DB: "admin"}); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Hour)
	e.message("the run's failure", slacktest.Containing("Scheduled rotation #1", "FAILED", "became high-risk after it was approved", "needs 2 approvals"))
	if err := e.login("svc", old); err != nil {
		t.Errorf("the administrator's password was changed: %v", err)
	}
}
