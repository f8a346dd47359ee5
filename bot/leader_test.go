package bot_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mongobot/approvals"
	"mongobot/bot/slack/slacktest"
	"mongobot/kv"
	"mongobot/store"
)

// With several replicas, timer work writes its write-ahead steps through the journal fenced by
// the replica's term (Config.TimerJournal). A replica whose fence no longer holds writes none
// of them and raises no alarm: the temporary end and the expiry wait, and are done once
// the fence holds again (here: the same replica leading again), and each exactly once.
func TestTimerWorkFenced(t *testing.T) {
	p := testPolicy()
	j := p.JIT["prod"]
	j.AutoApprove = []approvals.JITAuto{{Roles: []string{"read@*"}, Who: approvals.Group{Users: []string{dev}}}}
	p.JIT["prod"] = j
	var fenced atomic.Bool
	var e *env
	e = newEnv(t, envOptions{policy: &p, timerJournal: func() (*store.Store, error) {
		if fenced.Load() {
			return nil, fmt.Errorf("%w: this replica does not lead (test)", kv.ErrFenced)
		}
		return e.st, nil
	}})
	e.command(dev, "access prod read@shop --for 30m")
	card := e.card("Request #1", "access `jit-u0dev-")
	e.result(card, "*Done*")
	name := e.accessEntry(1).Args["user"]
	e.createUser("app")
	e.command(dev, "grant-role prod app readWrite@shop") // waits for a vote, and expires in 1h
	e.card("Request #2", "grant-role")

	fenced.Store(true)
	e.advance(2 * time.Hour)
	if !e.exists(name) {
		t.Fatal("a fenced replica ended the access")
	}
	if r, _ := e.st.Request(2); r.State != approvals.Pending {
		t.Fatalf("a fenced replica expired request #2: %s", r.State)
	}
	for _, m := range e.slack.Messages() {
		if strings.Contains(m.Text, "OVERDUE") || strings.Contains(m.Text, "could not be journaled") {
			t.Fatalf("a fenced replica alarmed: %s", m.Text)
		}
	}
	if es, _, _ := e.st.History(0, 10); len(es) != 1 {
		t.Fatalf("%d journal entries: the fenced replica wrote a write-ahead step", len(es))
	}

	fenced.Store(false)
	e.advance(time.Minute)
	e.bot.ExpireDue(t.Context())
	e.result(card, "*Done*", "by the bot (--for 30m ended)")
	if e.exists(name) {
		t.Fatal("the access was not ended once the fence held again")
	}
	e.message("request #2 expired", slacktest.Containing("Request #2", "expired"))
	if es, _, _ := e.st.History(0, 10); len(es) != 2 {
		t.Fatalf("%d journal entries, want the access and its one end", len(es))
	}
}

// The leader's timers follow the journal other replicas write to: a schedule made elsewhere
// runs once RefreshTimers has seen it, and one removed elsewhere no longer does.
func TestRefreshTimersFollowsTheJournal(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("svc")
	e.createUser("other")
	// As another replica would: straight into the shared journal, unknown to this bot.
	made, err := e.st.CreateSchedule(store.Schedule{Connector: "prod", User: "svc", DB: "admin", Spec: "0 3 * * *", Owner: dev}, "replica-b")
	if err != nil {
		t.Fatal(err)
	}
	gone, err := e.st.CreateSchedule(store.Schedule{Connector: "prod", User: "other", DB: "admin", Spec: "0 3 * * *", Owner: dev}, "replica-b")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.bot.RefreshTimers(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.TransitionSchedule(gone.ID, []string{store.ScheduleActive}, store.Step{State: store.ScheduleRemoved, By: "replica-b"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.bot.RefreshTimers(); err != nil {
		t.Fatal(err)
	}
	e.advance(18 * time.Hour) // 03:00 the next day
	e.message("the run's result", slacktest.Containing(fmt.Sprintf("(schedule #%d)", made.ID), "*Done*"))
	if sc, _ := e.st.Schedule(gone.ID); sc.SlotEntry != 0 {
		t.Fatalf("the removed schedule ran: %+v", sc)
	}
	if n := e.emu.Count("updateUser"); n != 1 {
		t.Fatalf("%d updateUser, want the one run", n)
	}
}
