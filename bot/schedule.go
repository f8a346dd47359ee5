package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"mongobot/approvals"
	"mongobot/commands"
	"mongobot/connector"
	"mongobot/store"
)

// ScheduleConfig is how scheduled rotations run.
type ScheduleConfig struct {
	// Channel receives every run's result; default the approvals channel.
	Channel string
	// MissedWindow: a run missed while the bot was down runs at start-up if it was due at
	// most this long ago, and is skipped (and reported) otherwise. Default 1h.
	MissedWindow time.Duration
	// Retries is how many more attempts a failed run gets, RetryDelay apart (default 5m):
	// 0 means the default, 2; a negative number means none.
	Retries    int
	RetryDelay time.Duration
	// Concurrency is how many scheduled runs may touch one connector at once (default 1).
	Concurrency int
}

func (c ScheduleConfig) withDefaults(approvalsChannel string) ScheduleConfig {
	if c.Channel == "" {
		c.Channel = approvalsChannel
	}
	if c.MissedWindow <= 0 {
		c.MissedWindow = time.Hour
	}
	if c.Retries < 0 {
		c.Retries = 0
	} else if c.Retries == 0 {
		c.Retries = 2
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = 5 * time.Minute
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	return c
}

// specParser reads five-field specs, @daily-style descriptors and a CRON_TZ= prefix.
var specParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSpec reads a cron spec for a rotation, refusing one that runs more than once a minute.
func ParseSpec(spec string) (cron.Schedule, error) {
	s, err := specParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron spec (%v): write five fields (minute hour day month weekday) such as \"0 3 * * 1\", or @daily, @weekly, @monthly; prefix CRON_TZ=Europe/Paris for a time zone (UTC otherwise)", spec, err)
	}
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if a := s.Next(t); s.Next(a).Sub(a) < time.Minute {
		return nil, fmt.Errorf("%q runs more often than once a minute", spec)
	}
	return s, nil
}

// NextRuns are the n run times of s after from.
func NextRuns(s cron.Schedule, from time.Time, n int) []time.Time {
	var out []time.Time
	for t := from; len(out) < n; {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

func runTimes(ts []time.Time) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Format("2006-01-02 15:04 MST"))
	}
	return strings.Join(out, ", ")
}

// timers holds what runs by itself: scheduled rotations and the ends of temporary actions.
type timers struct {
	mu        sync.Mutex
	ctx       context.Context
	schedules map[uint64]*planned
	temporary map[uint64]time.Time // journal entry -> when to undo it
	slots     map[string]chan struct{}
	inFlight  map[string]int
	// MaxInFlight is the most runs seen at once on one connector (for tests).
	maxInFlight int
}

type planned struct {
	spec    cron.Schedule
	next    time.Time
	retryAt time.Time
	failed  int
	job     cron.Job
}

// cronLog lets cron's job wrappers log through slog.
type cronLog struct{ l *slog.Logger }

func (c cronLog) Info(msg string, kv ...any) { c.l.Info("cron: "+msg, kv...) }
func (c cronLog) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(kv, "err", err)...)
}

func newTimers() *timers {
	return &timers{ctx: context.Background(), schedules: map[uint64]*planned{}, temporary: map[uint64]time.Time{},
		slots: map[string]chan struct{}{}, inFlight: map[string]int{}}
}

// LoadTimers registers the active schedules and pending temporary undos from the store, and
// deals with what fell due while the bot was down: a missed run within the window runs at the
// next RunDue, an older one is skipped and reported; a temporary action whose end has passed
// is undone at the next RunDue. Call it once at start-up, after Reconcile.
func (b *Bot) LoadTimers(ctx context.Context) error {
	tm := b.tm
	tm.mu.Lock()
	tm.ctx = context.WithoutCancel(ctx)
	tm.mu.Unlock()
	scs, err := b.store.Schedules()
	if err != nil {
		return err
	}
	now := b.now()
	for _, sc := range scs {
		p, err := b.plan(sc)
		if err != nil {
			b.announceTo(ctx, b.scfg.Channel, fmt.Sprintf("Schedule #%d (%s) cannot run: %v", sc.ID, sc.Spec, err))
			continue
		}
		last := sc.CreatedAt
		if sc.LastRun.After(last) {
			last = sc.LastRun
		}
		if first := p.spec.Next(last); !first.After(now) {
			missed, count := first, 0
			for t := first; !t.IsZero() && !t.After(now) && count < 100000; t = p.spec.Next(t) {
				missed, count = t, count+1
			}
			if now.Sub(missed) <= b.scfg.MissedWindow {
				p.next = now
				b.announceTo(ctx, b.scfg.Channel, fmt.Sprintf("Schedule #%d (rotate-password `%s@%s` on %s) missed its run at %s while the bot was down: running it now.",
					sc.ID, sc.User, sc.DB, sc.Connector, clock(missed)))
			} else {
				b.announceTo(ctx, b.scfg.Channel, fmt.Sprintf("Schedule #%d (rotate-password `%s@%s` on %s) missed %d run(s) while the bot was down, the last at %s: more than %s ago, so skipped. Next run: %s.",
					sc.ID, sc.User, sc.DB, sc.Connector, count, clock(missed), commands.FormatDuration(b.scfg.MissedWindow), clock(p.next)))
				_, _ = b.store.UpdateSchedule(sc.ID, func(x *store.Schedule) error {
					x.LastResult = fmt.Sprintf("skipped %d missed run(s), the last at %s", count, clock(missed))
					return nil
				})
			}
		}
		tm.mu.Lock()
		tm.schedules[sc.ID] = p
		tm.mu.Unlock()
	}
	es, err := b.store.Temporary()
	if err != nil {
		return err
	}
	tm.mu.Lock()
	for _, e := range es {
		tm.temporary[e.ID] = e.UndoAt
	}
	tm.mu.Unlock()
	return nil
}

// plan makes the in-memory plan of schedule sc: its parsed spec, next run and job. The job is
// wrapped explicitly in cron.Recover (cron's default chain recovers nothing) and
// cron.SkipIfStillRunning, so a panic is logged and an overlapping run is skipped.
func (b *Bot) plan(sc store.Schedule) (*planned, error) {
	spec, err := ParseSpec(sc.Spec)
	if err != nil {
		return nil, err
	}
	id := sc.ID
	log := cronLog{b.log.With("schedule", id)}
	job := cron.NewChain(cron.Recover(log), cron.SkipIfStillRunning(log)).Then(cron.FuncJob(func() { b.runSchedule(id) }))
	return &planned{spec: spec, next: spec.Next(b.now()), job: job}, nil
}

// RunTimers calls RunDue every interval until ctx ends.
func (b *Bot) RunTimers(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.RunDue(ctx)
		}
	}
}

// RunDue starts every scheduled run, retry and temporary undo that is due at the bot's clock,
// each on its own goroutine, and returns a WaitGroup that is done when they have finished.
func (b *Bot) RunDue(ctx context.Context) *sync.WaitGroup {
	tm := b.tm
	now := b.now()
	var wg sync.WaitGroup
	tm.mu.Lock()
	defer tm.mu.Unlock()
	for _, p := range tm.schedules {
		due := !p.next.After(now)
		retry := !p.retryAt.IsZero() && !p.retryAt.After(now)
		if !due && !retry {
			continue
		}
		if due {
			p.next = p.spec.Next(now)
		}
		if retry {
			p.retryAt = time.Time{}
		}
		job := p.job
		wg.Go(job.Run)
	}
	for id, at := range tm.temporary {
		if at.After(now) {
			continue
		}
		delete(tm.temporary, id)
		wg.Go(func() { b.undoTemporary(tm.ctx, id) })
	}
	return &wg
}

// acquire takes one of the connector's run slots (Concurrency at most), waiting for one.
func (b *Bot) acquire(conn string) func() {
	tm := b.tm
	tm.mu.Lock()
	slot, ok := tm.slots[conn]
	if !ok {
		slot = make(chan struct{}, b.scfg.Concurrency)
		tm.slots[conn] = slot
	}
	tm.mu.Unlock()
	slot <- struct{}{}
	tm.mu.Lock()
	tm.inFlight[conn]++
	tm.maxInFlight = max(tm.maxInFlight, tm.inFlight[conn])
	tm.mu.Unlock()
	return func() {
		tm.mu.Lock()
		tm.inFlight[conn]--
		tm.mu.Unlock()
		<-slot
	}
}

// MaxConcurrentRuns is the most scheduled runs seen at once on one connector.
func (b *Bot) MaxConcurrentRuns() int {
	tm := b.tm
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.maxInFlight
}

// runSchedule runs schedule id once: a rotation through the same journaled path as a manual
// one, the entry naming the schedule, the password sealed for the schedule's owner.
func (b *Bot) runSchedule(id uint64) {
	if !b.begin() {
		return
	}
	defer b.working.Done()
	tm := b.tm
	ctx := tm.ctx
	sc, err := b.store.Schedule(id)
	if err != nil || sc.State != store.ScheduleActive {
		tm.mu.Lock()
		delete(tm.schedules, id)
		tm.mu.Unlock()
		return
	}
	m, err := b.connector(sc.Connector)
	if err != nil {
		b.announceTo(ctx, b.scfg.Channel, fmt.Sprintf(":rotating_light: Schedule #%d cannot run: %v.", id, err))
		return
	}
	release := b.acquire(sc.Connector)
	defer release()
	actx, cancel := context.WithTimeout(ctx, b.cfg.ActionTimeout)
	defer cancel()
	args := map[string]string{"user": sc.User, "authdb": sc.DB, "schedule": strconv.FormatUint(id, 10)}
	e := store.Entry{ScheduleID: id, RequestID: sc.RequestID, Requester: sc.Owner, Connector: sc.Connector,
		Action: commands.RotatePassword, Args: args}
	if r, err := b.store.Request(sc.RequestID); err == nil {
		e.Approvers = approvals.Approvers(votes(r.Votes))
	}
	if pre, err := m.State(actx, target(args)); err == nil {
		e.Before, _ = json.Marshal(pre)
	}
	e, err = b.store.BeginEntry(e, "schedule")
	if err != nil {
		b.announceTo(ctx, b.scfg.Channel, fmt.Sprintf(":rotating_light: Schedule #%d did not run: the journal could not record it (%v).", id, err))
		return
	}
	unclaim, _ := b.claim(e.ID)
	out := b.apply(actx, m, e)
	if maybeApplied(out.err) || errors.Is(out.err, connector.ErrRecreateFailed) {
		b.uncertain(ctx, store.MessageRef{Channel: b.scfg.Channel}, e, out.err)
	} else {
		b.finish(ctx, store.Request{Card: store.MessageRef{Channel: b.scfg.Channel}}, e, out)
	}
	unclaim()
	result := "done"
	switch {
	case maybeApplied(out.err) || errors.Is(out.err, connector.ErrRecreateFailed):
		// Reconciliation decides; a retry now could rotate twice.
		_, _ = b.store.UpdateSchedule(id, func(x *store.Schedule) error {
			x.LastRun, x.LastResult, x.LastEntry = b.now(), "outcome being checked: MongoDB stopped answering", e.ID
			return nil
		})
		return
	case out.err != nil:
		result = "failed: " + sentence(out.err)
	}
	_, _ = b.store.UpdateSchedule(id, func(x *store.Schedule) error {
		x.LastRun, x.LastResult, x.LastEntry = b.now(), result, e.ID
		return nil
	})
	tm.mu.Lock()
	p := tm.schedules[id]
	var msg string
	if p != nil {
		if out.err == nil {
			p.failed = 0
		} else {
			p.failed++
			if p.failed <= b.scfg.Retries {
				p.retryAt = b.now().Add(b.scfg.RetryDelay)
				msg = fmt.Sprintf(":rotating_light: Scheduled rotation #%d of `%s@%s` on %s FAILED (attempt %d of %d): %s Retrying at %s.",
					id, sc.User, sc.DB, sc.Connector, p.failed, b.scfg.Retries+1, sentence(out.err), clock(p.retryAt))
			} else {
				msg = fmt.Sprintf(":rotating_light: Scheduled rotation #%d of `%s@%s` on %s FAILED %d times; giving up until its next run at %s. Last error: %s",
					id, sc.User, sc.DB, sc.Connector, p.failed, clock(p.next), sentence(out.err))
				p.failed = 0
			}
		}
	}
	tm.mu.Unlock()
	if msg != "" {
		b.announceTo(ctx, b.scfg.Channel, msg)
		b.dm(ctx, sc.Owner, text("%s", msg))
	}
}

// undoTemporary undoes a --for action whose time is up, through the drift-checked rollback,
// and reports it where the action was reported.
func (b *Bot) undoTemporary(ctx context.Context, id uint64) {
	if !b.begin() {
		return
	}
	defer b.working.Done()
	e, ch, err := b.undoable(id)
	_, _ = b.store.UpdateEntry(id, func(x *store.Entry) error { x.UndoAt = time.Time{}; return nil })
	if err != nil {
		return // rolled back by hand already, or otherwise settled
	}
	b.runRollback(ctx, store.Request{}, e, ch, e.Requester, "automatic: its --for "+e.Args["for"]+" ended")
}

// scheduleTemporary registers the end of a temporary action.
func (b *Bot) scheduleTemporary(id uint64, at time.Time) {
	tm := b.tm
	tm.mu.Lock()
	tm.temporary[id] = at
	tm.mu.Unlock()
}

// activeSchedule finds an active schedule of the same user, if any.
func (b *Bot) activeSchedule(conn string, u connector.UserRef) (store.Schedule, bool) {
	scs, err := b.store.Schedules()
	if err != nil {
		return store.Schedule{}, false
	}
	for _, sc := range scs {
		if sc.Connector == conn && sc.User == u.User && sc.DB == u.DB {
			return sc, true
		}
	}
	return store.Schedule{}, false
}

// journalBotAction journals an approved change of the bot's own state (a schedule created or
// removed): MongoDB is not touched, but the audit trail must show it.
func (b *Bot) journalBotAction(r store.Request) (store.Entry, error) {
	e, err := b.store.BeginEntry(store.Entry{RequestID: r.ID, Requester: r.Requester, Approvers: approvals.Approvers(votes(r.Votes)),
		Connector: r.Connector, Action: r.Action, Args: r.Args}, "bot")
	if err == nil {
		_, _ = b.store.UpdateRequest(r.ID, func(x *store.Request) error { x.EntryID = e.ID; return nil })
	}
	return e, err
}

func (b *Bot) endBotAction(e store.Entry, err error, note string) {
	state, msg := store.EntryDone, ""
	if err != nil {
		state, msg = store.EntryFailed, err.Error()
	}
	if _, err := b.store.TransitionEntry(e.ID, []string{store.EntryExecuting}, store.Step{State: state, By: "bot", Note: note}, func(x *store.Entry) {
		x.Error = msg
		if msg == "" {
			x.Notes = append(x.Notes, note)
		}
	}); err != nil {
		b.log.Error("journal", "entry", e.ID, "err", err)
	}
}

// executeSchedule creates an approved schedule and registers it.
func (b *Bot) executeSchedule(ctx context.Context, r store.Request) {
	u := target(r.Args)
	if sc, ok := b.activeSchedule(r.Connector, u); ok {
		b.failRequest(ctx, r, 0, fmt.Sprintf("%s on %s already has schedule #%d (%s): two rotations racing would break the application using it", u, r.Connector, sc.ID, sc.Spec))
		return
	}
	e, err := b.journalBotAction(r)
	if err != nil {
		b.failRequest(ctx, r, 0, "the journal could not record it: "+err.Error())
		return
	}
	sc, err := b.store.CreateSchedule(store.Schedule{Connector: r.Connector, User: u.User, DB: u.DB, Spec: r.Args["spec"],
		Owner: r.Requester, RequestID: r.ID}, r.Requester)
	b.endBotAction(e, err, fmt.Sprintf("schedule #%d", sc.ID))
	var p *planned
	if err == nil {
		if p, err = b.plan(sc); err == nil {
			tm := b.tm
			tm.mu.Lock()
			tm.schedules[sc.ID] = p
			tm.mu.Unlock()
		}
	}
	if err != nil {
		b.failRequest(ctx, r, 0, "the schedule could not be saved: "+err.Error())
		return
	}
	r, _ = b.store.TransitionRequest(r.ID, []string{approvals.Executing}, store.Step{State: approvals.Done, By: "bot", Note: fmt.Sprintf("schedule #%d", sc.ID)}, nil)
	b.refreshCard(ctx, r)
	msg := text(":calendar: Schedule #%d is active: rotate-password `%s` on %s, `%s`. Next runs: %s. Each new password goes to <@%s>; `%s unschedule %d` removes it.",
		sc.ID, u, sc.Connector, sc.Spec, runTimes(NextRuns(p.spec, b.now(), 3)), sc.Owner, b.cfg.Slash, sc.ID)
	b.tell(ctx, r.Card, r.Requester, msg)
}

// executeUnschedule removes an approved schedule.
func (b *Bot) executeUnschedule(ctx context.Context, r store.Request) {
	id, _ := strconv.ParseUint(r.Args["id"], 10, 64)
	e, err := b.journalBotAction(r)
	if err != nil {
		b.failRequest(ctx, r, 0, "the journal could not record it: "+err.Error())
		return
	}
	sc, err := b.store.TransitionSchedule(id, []string{store.ScheduleActive}, store.Step{State: store.ScheduleRemoved, By: r.Requester}, nil)
	b.endBotAction(e, err, fmt.Sprintf("schedule #%d removed", id))
	if err != nil {
		b.failRequest(ctx, r, 0, fmt.Sprintf("schedule #%d is not active", id))
		return
	}
	tm := b.tm
	tm.mu.Lock()
	delete(tm.schedules, id)
	tm.mu.Unlock()
	r, _ = b.store.TransitionRequest(r.ID, []string{approvals.Executing}, store.Step{State: approvals.Done, By: "bot"}, nil)
	b.refreshCard(ctx, r)
	msg := text("Schedule #%d (rotate-password `%s@%s` on %s, `%s`) is removed.", id, sc.User, sc.DB, sc.Connector, sc.Spec)
	b.tell(ctx, r.Card, r.Requester, msg)
}

func (b *Bot) schedulesMessage() Message {
	scs, err := b.store.Schedules()
	if err != nil {
		return text("Could not read the schedules: %v", err)
	}
	if len(scs) == 0 {
		return text("No rotation is scheduled.")
	}
	tm := b.tm
	sort.Slice(scs, func(i, j int) bool { return scs[i].ID < scs[j].ID })
	var lines []string
	for _, sc := range scs {
		next := "-"
		tm.mu.Lock()
		if p := tm.schedules[sc.ID]; p != nil {
			next = p.next.Format("2006-01-02 15:04 MST")
		}
		tm.mu.Unlock()
		last := "never run"
		if !sc.LastRun.IsZero() {
			last = fmt.Sprintf("last run %s: %s", clock(sc.LastRun), sc.LastResult)
			if sc.LastEntry != 0 {
				last += fmt.Sprintf(" (journal #%d)", sc.LastEntry)
			}
		} else if sc.LastResult != "" {
			last = sc.LastResult
		}
		lines = append(lines, fmt.Sprintf("• #%d rotate-password `%s@%s` on %s `%s`, owner <@%s>: next %s; %s", sc.ID, sc.User, sc.DB, sc.Connector, sc.Spec, sc.Owner, next, last))
	}
	return paged("*Scheduled rotations*", lines)
}

func (b *Bot) announceTo(ctx context.Context, channel, s string) {
	if _, err := b.chat.Post(ctx, orDefault(channel, b.cfg.Channel), text("%s", s)); err != nil {
		b.log.Error("announce", "err", err)
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
