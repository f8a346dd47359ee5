package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"mongobot/approvals"
	"mongobot/commands"
	"mongobot/connector"
	"mongobot/kv"
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

// ParseSpec reads a cron spec for a rotation, refusing one that never runs (0 3 31 2 *: no
// 31 February) and one that runs more than once a minute (@every 30s).
func ParseSpec(spec string) (cron.Schedule, error) {
	s, err := specParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron spec (%v): write five fields (minute hour day month weekday) such as \"0 3 * * 1\", or @daily, @weekly, @monthly; prefix CRON_TZ=Europe/Paris for a time zone (UTC otherwise)", spec, err)
	}
	// A fixed start keeps the answer the same whenever it is asked. Next looks five years
	// ahead and returns the zero time when nothing matches; the five years from 2026 hold
	// every day of every month (29 February 2028 included), so zero means a day a month
	// never has, and the spec would never run.
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := s.Next(t)
	if a.IsZero() {
		return nil, fmt.Errorf("%q never runs: no date in the next five years matches its day and month", spec)
	}
	// A second run more than five years later is zero too, and is rare, not frequent.
	if b := s.Next(a); !b.IsZero() && b.Sub(a) < time.Minute {
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
	// temporary maps a journal entry to its next attempt at ending it; due to when it
	// should have ended (the entry's UndoAt): past due and still here is overdue.
	temporary map[uint64]time.Time
	due       map[uint64]time.Time
	// deliveries maps a journal entry whose password some target lacks to its next attempt;
	// delivering holds those with an attempt running, which is never doubled.
	deliveries map[uint64]time.Time
	delivering map[uint64]bool
	slots      map[string]chan struct{}
	inFlight   map[string]int
	// MaxInFlight is the most runs seen at once on one connector (for tests).
	maxInFlight int
}

type planned struct {
	spec cron.Schedule
	next time.Time
	// missed, when set, is a slot missed while the bot was down, to run at the next RunDue.
	missed    time.Time
	retryAt   time.Time
	retrySlot time.Time
	failed    int
	running   bool
}

func newTimers() *timers {
	return &timers{ctx: context.Background(), schedules: map[uint64]*planned{}, temporary: map[uint64]time.Time{},
		deliveries: map[uint64]time.Time{}, delivering: map[uint64]bool{}, due: map[uint64]time.Time{}, slots: map[string]chan struct{}{}, inFlight: map[string]int{}}
}

// LoadTimers registers the active schedules and pending temporary ends from the store, and
// deals with what fell due while the bot was down: a missed run within the window runs at the
// next RunDue, an older one is skipped and reported; a temporary action whose end has passed
// is ended at the next RunDue. The last slot a schedule claimed (write-ahead, see
// store.BeginRun) decides what was missed, so a slot that started before a crash is never
// run again. Call it once at start-up, after Reconcile.
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
		if sc.State != store.ScheduleActive {
			continue
		}
		p, err := b.plan(sc)
		if err != nil {
			b.announceTo(ctx, b.scfg.Channel, fmt.Sprintf("Schedule #%d (%s) cannot run: %v", sc.ID, code(sc.Spec), err))
			continue
		}
		last := sc.CreatedAt
		if sc.Slot.After(last) {
			last = sc.Slot
		}
		if first := p.spec.Next(last); !first.After(now) {
			missed, count := first, 0
			for t := first; !t.IsZero() && !t.After(now) && count < 100000; t = p.spec.Next(t) {
				missed, count = t, count+1
			}
			if now.Sub(missed) <= b.scfg.MissedWindow {
				p.missed = missed
				b.announceTo(ctx, b.scfg.Channel, fmt.Sprintf("Schedule #%d (rotate-password `%s` on %s) missed its run at %s while the bot was down: running it now.",
					sc.ID, code(sc.User+"@"+sc.DB), sc.Connector, clock(missed)))
			} else {
				b.announceTo(ctx, b.scfg.Channel, fmt.Sprintf("Schedule #%d (rotate-password `%s` on %s) missed %d run(s) while the bot was down, the last at %s: more than %s ago, so skipped. Next run: %s.",
					sc.ID, code(sc.User+"@"+sc.DB), sc.Connector, count, clock(missed), commands.FormatDuration(b.scfg.MissedWindow), clock(p.next)))
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
	for _, e := range es {
		b.scheduleTemporary(e.ID, e.UndoAt, e.UndoAt)
	}
	return b.loadDeliveries()
}

// RefreshTimers brings the in-memory timers up to the journal that several replicas share:
// the schedules, temporary grants and overdue deliveries that other replicas began since
// LoadTimers are added, and the schedules removed or paused there are dropped. The leading replica
// calls it every few seconds; work already planned or running here is left as it is, so
// nothing is attempted twice.
func (b *Bot) RefreshTimers() error {
	scs, err := b.store.Schedules()
	if err != nil {
		return err
	}
	temporary, err := b.store.Temporary()
	if err != nil {
		return err
	}
	undelivered, err := b.store.Undelivered()
	if err != nil {
		return err
	}
	tm := b.tm
	tm.mu.Lock()
	defer tm.mu.Unlock()
	active := map[uint64]bool{}
	for _, sc := range scs {
		if sc.State != store.ScheduleActive {
			continue
		}
		active[sc.ID] = true
		if _, ok := tm.schedules[sc.ID]; ok {
			continue
		}
		if p, err := b.plan(sc); err == nil {
			tm.schedules[sc.ID] = p
		} // else: the replica that created it said why it cannot run
	}
	for id, p := range tm.schedules {
		if !active[id] && !p.running {
			delete(tm.schedules, id)
		}
	}
	for _, e := range temporary {
		// due stays set while an attempt runs (temporary is cleared then): never doubled.
		if _, ok := tm.due[e.ID]; !ok {
			tm.temporary[e.ID], tm.due[e.ID] = e.UndoAt, e.UndoAt
		}
	}
	// Deliveries: the replica that rotated makes the first attempt itself, and its attempt
	// is not visible from here. Only retries are timer work: a delivery is taken over once
	// it is deliveryTakeover past its time, longer than any attempt may run.
	now := b.now()
	for _, e := range undelivered {
		if _, ok := tm.deliveries[e.ID]; !ok && !tm.delivering[e.ID] && now.Sub(e.DeliverAt) >= deliveryTakeover {
			tm.deliveries[e.ID] = now
		}
	}
	return nil
}

// deliveryTakeover is how long past its time a delivery waits before the leader retries it.
// An attempt still running on another replica holds the delivery's claim (attemptDelivery),
// so a takeover never overlaps it, however long a target takes; this only spares the leader
// asking while a first attempt is likely under way.
const deliveryTakeover = 5 * time.Minute

// plan makes the in-memory plan of schedule sc: its parsed spec and next run.
func (b *Bot) plan(sc store.Schedule) (*planned, error) {
	spec, err := ParseSpec(sc.Spec)
	if err != nil {
		return nil, err
	}
	return &planned{spec: spec, next: spec.Next(b.now())}, nil
}

// RunTimers calls RunDue every interval until ctx ends. The ticks fall on whole multiples
// of every on the wall clock (every second, just after it turns): cron slots begin on whole
// minutes, so a slot is seen due within milliseconds of its time, not up to a tick later.
func (b *Bot) RunTimers(ctx context.Context, every time.Duration) {
	now := time.Now()
	select {
	case <-ctx.Done():
		return
	case <-time.After(now.Truncate(every).Add(every).Sub(now)):
	}
	t := time.NewTicker(every) // before the first run, which must not shift the ticks
	b.safely("timers", func() { b.RunDue(ctx) })
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.safely("timers", func() { b.RunDue(ctx) })
		}
	}
}

// markDue journals the slots due, through the timer journal.
func (b *Bot) markDue(due map[uint64]time.Time) error {
	st, err := b.timerStore()
	if err != nil {
		return err
	}
	return st.MarkDue(due)
}

// RunDue starts every scheduled run, retry and temporary end that is due at the bot's clock,
// each on its own goroutine, and returns a WaitGroup that is done when they have finished.
// A run still going when its schedule falls due again is not doubled: the slot is skipped.
func (b *Bot) RunDue(ctx context.Context) *sync.WaitGroup {
	b.announceTampered(ctx)
	tm := b.tm
	now := b.now()
	var wg sync.WaitGroup
	// The slots that fell due are journaled as due together, in one transaction, before
	// their runs wait for turns on their connectors.
	due := map[uint64]time.Time{}
	var runs []func()
	defer func() {
		if len(due) > 0 {
			if err := b.markDue(due); err != nil {
				b.log.Error("journal due schedules", "schedules", len(due), "err", err)
			}
		}
		for _, run := range runs {
			wg.Go(run)
		}
	}()
	tm.mu.Lock()
	defer tm.mu.Unlock()
	for id, p := range tm.schedules {
		var slot time.Time
		retry := false
		switch {
		case !p.missed.IsZero():
			slot, p.missed = p.missed, time.Time{}
		case !p.next.After(now):
			// The latest slot due: a clock jump over several runs one rotation, not many.
			slot = p.next
			for t := p.spec.Next(slot); !t.IsZero() && !t.After(now); t = p.spec.Next(t) {
				slot = t
			}
			p.next = p.spec.Next(now)
		case !p.retryAt.IsZero() && !p.retryAt.After(now):
			slot, retry = p.retrySlot, true
			p.retryAt = time.Time{}
		default:
			continue
		}
		if p.running {
			b.log.Warn("scheduled run skipped: the previous one is still running", "schedule", id, "slot", slot)
			continue
		}
		p.running = true
		if !retry {
			due[id] = slot
		}
		runs = append(runs, func() {
			defer func() {
				tm.mu.Lock()
				p.running = false
				tm.mu.Unlock()
			}()
			b.safely("scheduled run", func() { b.runSchedule(id, slot, retry) })
		})
	}
	for id, at := range tm.deliveries {
		if at.After(now) || tm.delivering[id] {
			continue
		}
		// Registered again by the attempt when it fails; a panic registers it here.
		tm.deliveries[id] = now.Add(deliveryRetry(1))
		tm.delivering[id] = true
		wg.Go(func() {
			defer func() {
				tm.mu.Lock()
				delete(tm.delivering, id)
				tm.mu.Unlock()
			}()
			b.safely("delivery", func() { b.retryDelivery(tm.ctx, id) })
		})
	}
	for id, at := range tm.temporary {
		if at.After(now) {
			continue
		}
		delete(tm.temporary, id)
		due := tm.due[id]
		wg.Go(func() {
			if b.safely("temporary end", func() { b.undoTemporary(tm.ctx, id) }) {
				// Still an obligation: try again after the usual wait.
				b.scheduleTemporary(id, b.now().Add(temporaryRetry(1)), due)
			}
		})
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

// pauseSchedule stops schedule sc from running, saying why, in the journal and the channel.
func (b *Bot) pauseSchedule(ctx context.Context, sc store.Schedule, why string) {
	_, err := b.store.TransitionSchedule(sc.ID, []string{store.ScheduleActive}, store.Step{State: store.SchedulePaused, By: botActor, Note: why},
		func(x *store.Schedule) { x.Paused = why })
	tm := b.tm
	tm.mu.Lock()
	delete(tm.schedules, sc.ID)
	tm.mu.Unlock()
	if err != nil {
		return
	}
	b.announceTo(ctx, b.scfg.Channel, fmt.Sprintf(":double_vertical_bar: Schedule #%d (rotate-password `%s` on %s) is PAUSED: %s. No password is made while it is paused; `%s unschedule %d` removes it.",
		sc.ID, code(sc.User+"@"+sc.DB), sc.Connector, why, b.cfg.Slash, sc.ID))
}

// runSchedule runs schedule id once for its cron slot: a rotation through the same journaled
// path as a manual one, the entry naming the schedule and the slot, the password sealed for
// the schedule's owner. The owner's access is checked now: someone removed from access gets
// no more production passwords, and the schedule is paused.
func (b *Bot) runSchedule(id uint64, slot time.Time, retry bool) {
	if !b.begin() {
		return
	}
	defer b.done()
	tm := b.tm
	ctx := tm.ctx
	sc, err := b.store.Schedule(id)
	if err != nil || sc.State != store.ScheduleActive {
		tm.mu.Lock()
		delete(tm.schedules, id)
		tm.mu.Unlock()
		return
	}
	if _, err := b.mayRequest(ctx, sc.Owner); err != nil {
		if errors.Is(err, approvals.ErrNotAllowed) {
			b.pauseSchedule(ctx, sc, fmt.Sprintf("its owner <@%s> may no longer use the bot, so the run of %s did not happen", sc.Owner, clock(slot)))
			return
		}
		b.failedRun(ctx, sc, slot, fmt.Errorf("whether its owner may still use the bot could not be checked (%v)", err))
		return
	}
	m, err := b.connector(sc.Connector)
	if err != nil {
		b.announceTo(ctx, b.scfg.Channel, fmt.Sprintf(":rotating_light: Schedule #%d cannot run: %v.", id, err))
		return
	}
	release := b.acquire(sc.Connector)
	defer release()
	args := map[string]string{"user": sc.User, "authdb": sc.DB, "schedule": strconv.FormatUint(id, 10)}
	if d := b.deliveryFor(sc.Connector, target(args)); d != nil && d.Alternating {
		defer b.pairs.lock(d.key())() // the pair's current user must not change under us
	}
	actx, cancel := context.WithTimeout(ctx, b.cfg.ActionTimeout)
	defer cancel()
	args, deliveries, err := b.planDelivery(actx, m, args)
	if err != nil {
		b.failedRun(ctx, sc, slot, err)
		return
	}
	unlock, why, ok := b.lockTarget(sc.Connector, target(args))
	if !ok {
		b.failedRun(ctx, sc, slot, errors.New(why))
		return
	}
	defer unlock()
	e := store.Entry{RequestID: sc.RequestID, Requester: sc.Owner, Connector: sc.Connector,
		Action: commands.RotatePassword, Args: args, Server: m.ServerLine(), Deliveries: deliveries}
	if r, err := b.store.Request(sc.RequestID); err == nil {
		e.Approvers = approvals.Approvers(votes(r.Votes))
	}
	if args["twin_of"] != "" {
		e.ScheduleID = sc.ID
		note, err := b.createTwin(actx, m, e, args)
		if err != nil {
			b.failedRun(ctx, sc, slot, err)
			return
		}
		e.ScheduleID, e.Args["twin_note"] = 0, note
	}
	if pre, err := m.State(actx, target(args)); err == nil {
		e.Before, _ = json.Marshal(pre)
		if err := lockedSince(args, pre); err != nil {
			b.failedRun(ctx, sc, slot, err)
			return
		}
		// Approved for an ordinary user, a schedule does not rotate an administrator's
		// password (and hand it to its owner) unless the policy for high risk is met.
		if r, err := b.store.Request(sc.RequestID); err == nil {
			if err := b.stillLowRisk(ctx, r, args, pre); err != nil {
				b.failedRun(ctx, sc, slot, err)
				return
			}
		}
	}
	// The entry is the claim on the slot: committed before MongoDB is touched, refused for
	// a slot already claimed, whatever happened to the process since.
	// A retry of a slot that was claimed (its run failed) re-claims it; a retry of a run that
	// never got as far as its claim (refused before it) claims it for the first time.
	reclaim := retry && sc.Slot.Equal(slot)
	e, unclaim, err := b.beginClaimed(func() (store.Entry, error) {
		st, err := b.timerStore()
		if err != nil {
			return store.Entry{}, err
		}
		return st.BeginRun(id, slot, reclaim, e, "schedule")
	})
	if errors.Is(err, store.ErrSlotTaken) {
		b.log.Info("scheduled run skipped: slot already run", "schedule", id, "slot", slot, "err", err)
		return
	}
	if errors.Is(err, kv.ErrFenced) {
		// The lead moved between the tick and the claim: the new leader finds the slot
		// unrun when it loads the schedules, and runs it as a missed one.
		b.log.Info("scheduled run left to the leader", "schedule", id, "slot", slot)
		return
	}
	if err != nil {
		b.announceTo(ctx, b.scfg.Channel, fmt.Sprintf(":rotating_light: Schedule #%d did not run: the journal could not record it (%v).", id, err))
		return
	}
	released := false
	defer func() {
		if !released {
			unclaim() // a panic below: the periodic check must be able to settle the entry
		}
	}()
	out := b.apply(actx, m, e)
	uncertain := maybeApplied(out.err) || errors.Is(out.err, connector.ErrRecreateFailed)
	if uncertain {
		b.uncertain(ctx, store.MessageRef{Channel: b.scfg.Channel}, e, out.err)
	} else {
		b.finish(ctx, store.Request{Card: store.MessageRef{Channel: b.scfg.Channel}}, e, out)
	}
	unclaim()
	released = true
	switch {
	case uncertain:
		// Reconciliation decides; a retry now could rotate twice.
		_, _ = b.store.UpdateSchedule(id, func(x *store.Schedule) error {
			x.LastRun, x.LastResult, x.LastEntry = b.now(), "outcome being checked: MongoDB stopped answering", e.ID
			return nil
		})
	case out.err != nil:
		b.failedRun(ctx, sc, slot, out.err)
	default:
		_, _ = b.store.UpdateSchedule(id, func(x *store.Schedule) error {
			x.LastRun, x.LastResult, x.LastEntry = b.now(), "done", e.ID
			return nil
		})
		tm.mu.Lock()
		if p := tm.schedules[id]; p != nil {
			p.failed = 0
		}
		tm.mu.Unlock()
	}
}

// failedRun records a run of sc for slot that changed nothing, and plans its retry.
func (b *Bot) failedRun(ctx context.Context, sc store.Schedule, slot time.Time, cause error) {
	tm := b.tm
	_, _ = b.store.UpdateSchedule(sc.ID, func(x *store.Schedule) error {
		x.LastRun, x.LastResult = b.now(), "failed: "+sentence(cause)
		return nil
	})
	who := code(sc.User + "@" + sc.DB)
	state := ""
	if b.deliveryFor(sc.Connector, connector.UserRef{User: sc.User, DB: sc.DB}) != nil {
		// Where everything is, for whoever reads this at 03:00.
		state = " MongoDB was not changed and nothing was delivered: applications keep the login they have."
	}
	tm.mu.Lock()
	p := tm.schedules[sc.ID]
	var msg string
	if p != nil {
		p.failed++
		if p.failed <= b.scfg.Retries {
			p.retryAt, p.retrySlot = b.now().Add(b.scfg.RetryDelay), slot
			msg = fmt.Sprintf(":rotating_light: Scheduled rotation #%d of `%s` on %s FAILED (attempt %d of %d): %s%s Retrying at %s.",
				sc.ID, who, sc.Connector, p.failed, b.scfg.Retries+1, sentence(cause), state, clock(p.retryAt))
		} else {
			msg = fmt.Sprintf(":rotating_light: Scheduled rotation #%d of `%s` on %s FAILED %d times; giving up until its next run at %s. Last error: %s%s",
				sc.ID, who, sc.Connector, p.failed, clock(p.next), sentence(cause), state)
			p.failed = 0
		}
	}
	tm.mu.Unlock()
	if msg != "" {
		b.announceTo(ctx, b.scfg.Channel, msg)
		b.dm(ctx, sc.Owner, text("%s", msg))
	}
}

// temporaryRetry is how long the bot waits before trying again to end a temporary action,
// after tries failed attempts: 30s, 1m, 2m, ... at most 10m.
func temporaryRetry(tries int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < tries && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// undoTemporary ends a --for action whose time is up. It is an obligation: it is done by the
// bot (journaled as such), checks only what it undoes, and is retried with backoff until it
// succeeds or the thing is found gone, loudly while overdue. The entry's UndoAt stays set
// until then, so a restart picks it up again.
func (b *Bot) undoTemporary(ctx context.Context, id uint64) {
	if !b.begin() {
		return // shutting down: the journal still has UndoAt, the next start does it
	}
	defer b.done()
	e, ch, err := b.undoable(id)
	due := e.UndoAt
	switch {
	case err == nil:
	case e.State == store.EntryDone && e.RolledBackBy != 0:
		// A rollback of it is running or being checked against the server (MongoDB stopped
		// answering during it): the end waits for it, and is overdue meanwhile, so it says so.
		b.temporaryFailed(ctx, e, due, fmt.Sprintf("a rollback of it (journal #%d) is still being settled; the bot ends it, if it is not already ended, once that is known.", e.RolledBackBy))
		return
	case e.ID == 0:
		// The journal could not be read: the obligation stands; look again soon.
		b.log.Error("temporary end: read the journal", "entry", id, "err", err)
		b.scheduleTemporary(id, b.now().Add(temporaryRetry(1)), due)
		return
	default:
		b.forgetTemporary(id) // rolled back already, or otherwise settled
		return
	}
	res, rerr := b.runRollback(ctx, store.Request{}, e, ch, botActor, "", true)
	if res == rollbackDone {
		b.forgetTemporary(id)
		return
	}
	if errors.Is(rerr, kv.ErrFenced) {
		// This replica lost the lead between the tick and the write-ahead step: the leader
		// ends it. Kept, for if the lead comes back here; no alarm, nothing was late.
		b.log.Info("temporary end left to the leader", "entry", id)
		b.scheduleTemporary(id, b.now().Add(temporaryRetry(1)), due)
		return
	}
	why := "the rollback could not start"
	if rerr != nil {
		why = sentence(rerr)
	}
	if res == rollbackUncertain {
		why = "MongoDB stopped answering while the bot ended it (" + why + "); whether it ended is being checked against the server."
	}
	b.temporaryFailed(ctx, e, due, why)
}

// temporaryFailed records a failed attempt at ending temporary entry e, schedules the next with
// backoff, and raises the OVERDUE alarm in the approvals channel and to the requester.
func (b *Bot) temporaryFailed(ctx context.Context, e store.Entry, due time.Time, why string) {
	id := e.ID
	cur, err := b.store.UpdateEntry(id, func(x *store.Entry) error { x.UndoTries++; x.UndoError = why; return nil })
	if err != nil {
		b.log.Error("record failed temporary end", "entry", id, "err", err)
	}
	next := b.now().Add(temporaryRetry(cur.UndoTries))
	b.scheduleTemporary(id, next, due)
	msg := fmt.Sprintf(":rotating_light: OVERDUE: journal #%d (%s) should have ended at %s, but ending it did not succeed (attempt %d): %s The bot tries again at %s and keeps trying until it is done.",
		id, summary(e.Action, e.Connector, e.Args), clock(due), cur.UndoTries, why, clock(next))
	b.announceTo(ctx, b.cfg.Channel, msg)
	b.dm(ctx, e.Requester, text("%s", msg))
}

// scheduleTemporary registers the next attempt at ending temporary entry id, due at due.
func (b *Bot) scheduleTemporary(id uint64, next, due time.Time) {
	tm := b.tm
	tm.mu.Lock()
	tm.temporary[id] = next
	tm.due[id] = due
	tm.mu.Unlock()
}

func (b *Bot) forgetTemporary(id uint64) {
	tm := b.tm
	tm.mu.Lock()
	delete(tm.temporary, id)
	delete(tm.due, id)
	tm.mu.Unlock()
}

// overdueIDs are the journal entries of temporary actions past their end, not yet ended.
func (b *Bot) overdueIDs() []uint64 {
	tm := b.tm
	now := b.now()
	tm.mu.Lock()
	defer tm.mu.Unlock()
	var out []uint64
	for id, due := range tm.due {
		if !due.After(now) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// OverdueTemporary is how many temporary actions are past their end and not yet ended (the
// mongobot_temporary_overdue gauge).
func (b *Bot) OverdueTemporary() int { return len(b.overdueIDs()) }

// activeSchedule finds a schedule of the same user that is not removed (active or paused).
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
func (b *Bot) journalBotAction(r store.Request) (store.Entry, func(), error) {
	e, release, err := b.beginClaimed(func() (store.Entry, error) {
		return b.store.BeginEntry(store.Entry{RequestID: r.ID, Requester: r.Requester, Approvers: approvals.Approvers(votes(r.Votes)),
			Connector: r.Connector, Action: r.Action, Args: r.Args}, "bot")
	})
	if err == nil {
		_, _ = b.store.UpdateRequest(r.ID, func(x *store.Request) error { x.EntryID = e.ID; return nil })
	}
	return e, release, err
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
	e, release, err := b.journalBotAction(r)
	if err != nil {
		b.failRequest(ctx, r, 0, "the journal could not record it: "+err.Error())
		return
	}
	defer release()
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
	goes := fmt.Sprintf("Each new password goes to <@%s>", sc.Owner)
	if d := b.deliveryFor(sc.Connector, u); d != nil {
		goes = "Each new password is delivered to " + esc(d.where()) + ", with no one to wake"
		if d.Alternating {
			goes = fmt.Sprintf("Each run changes whichever of `%s` and `%s` applications do not use, and delivers it to %s, with no one to wake",
				code(d.Users[0].String()), code(d.Users[1].String()), esc(d.where()))
		}
	}
	msg := text(":calendar: Schedule #%d is active: rotate-password `%s` on %s, `%s`. Next runs: %s. %s; `%s unschedule %d` removes it.",
		sc.ID, code(u.String()), sc.Connector, code(sc.Spec), runTimes(NextRuns(p.spec, b.now(), 3)), goes, b.cfg.Slash, sc.ID)
	b.tell(ctx, r.Card, r.Requester, msg)
}

// executeUnschedule removes an approved schedule.
func (b *Bot) executeUnschedule(ctx context.Context, r store.Request) {
	id, _ := strconv.ParseUint(r.Args["id"], 10, 64)
	e, release, err := b.journalBotAction(r)
	if err != nil {
		b.failRequest(ctx, r, 0, "the journal could not record it: "+err.Error())
		return
	}
	defer release()
	sc, err := b.store.TransitionSchedule(id, []string{store.ScheduleActive, store.SchedulePaused}, store.Step{State: store.ScheduleRemoved, By: r.Requester}, nil)
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
	msg := text("Schedule #%d (rotate-password `%s` on %s, `%s`) is removed.", id, code(sc.User+"@"+sc.DB), sc.Connector, code(sc.Spec))
	b.tell(ctx, r.Card, r.Requester, msg)
	if sc.Owner != "" && sc.Owner != r.Requester {
		// Its passwords went to its owner, who should not learn of its end by their absence.
		b.dm(ctx, sc.Owner, text("Your schedule #%d (rotate-password `%s` on %s, `%s`) was removed at the request of <@%s>, approved under the policy: no more scheduled rotations of that user.",
			id, code(sc.User+"@"+sc.DB), sc.Connector, code(sc.Spec), r.Requester))
	}
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
		if sc.State == store.SchedulePaused {
			next = "PAUSED (" + sc.Paused + ")"
		}
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
		if sc.DueSlot.After(sc.Slot) {
			// Journaled as due, not yet claimed: it waits for a turn on its connector.
			last = fmt.Sprintf("due since %s, waiting for a turn on %s; %s", clock(sc.DueSlot), sc.Connector, last)
		}
		lines = append(lines, fmt.Sprintf("• #%d rotate-password `%s` on %s `%s`, owner <@%s>: next %s; %s", sc.ID, code(sc.User+"@"+sc.DB), sc.Connector, code(sc.Spec), sc.Owner, esc(unescape.Replace(next)), esc(unescape.Replace(last))))
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
