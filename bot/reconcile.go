package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"mongobot/approvals"
	"mongobot/commands"
	"mongobot/connector"
	"mongobot/secret"
	"mongobot/store"
)

// Causes of an unfinished entry, as reconciliation reports them.
const (
	afterRestart = "a restart"
	afterOutage  = "MongoDB not answering or failing mid-way"
	// With several replicas, an entry found unclaimed was left by one that stopped, or by
	// an action MongoDB stopped answering: the settling cannot tell which.
	afterReplica = "a replica stopping, or MongoDB not answering or failing mid-way"
	// afterRecreate: a --logout-all rotation dropped the user and creating it again failed.
	afterRecreate = "a failed re-create"
)

// staleReason is why an entry was left executing, as a settling says it: alone, the given
// reason; on a journal several replicas share, possibly another replica stopping.
func (b *Bot) staleReason(alone string) string {
	if b.store.Shared() {
		return afterReplica
	}
	return alone
}

// ReconcileStale settles entries left executing by an action whose MongoDB stopped answering
// mid-way (never those running now). The bot calls it every minute.
func (b *Bot) ReconcileStale(ctx context.Context) {
	entries, releases, err := b.claimExecuting()
	if err != nil {
		b.log.Error("reconcile: list executing entries", "err", err)
		return
	}
	for i, e := range entries {
		b.safely("reconcile", func() {
			defer releases[i]()
			b.reconcileEntry(ctx, e, b.staleReason(afterOutage))
		})
	}
}

// Reconcile settles what a crash left unfinished, and reports it in the approvals channel.
// For every journal entry still executing it reads the user's actual state on the server and
// decides whether the action took effect; it never runs an action a second time. Requests
// left approved (the bot stopped before starting them) are run now; requests left executing
// without an entry were never run and are marked failed. An entry whose server cannot be
// reached stays executing, for the next start.
func (b *Bot) Reconcile(ctx context.Context) {
	entries, releases, err := b.claimExecuting()
	if err != nil {
		b.log.Error("reconcile: list executing entries", "err", err)
		return
	}
	for i, e := range entries {
		b.safely("reconcile", func() {
			defer releases[i]()
			b.reconcileEntry(ctx, e, b.staleReason(afterRestart))
		})
	}
	b.ReconcileRequests(ctx)
}

// ReconcileRequests settles the requests a bot left between approval and their journal
// entry: approved ones are run now; executing ones without an entry were never run and are
// marked failed. Reconcile does it at start; with several replicas the leader does it every
// minute too, for those a replica that died left (the others' are claimed, and skipped).
func (b *Bot) ReconcileRequests(ctx context.Context) {
	rs, _, err := b.store.Requests(0, 1<<20, approvals.Approved, approvals.Executing)
	if err != nil {
		b.log.Error("reconcile: list requests", "err", err)
		return
	}
	var withEntry map[uint64]bool // requests that have a journal entry, read once if needed
	for _, r := range rs {
		if r.State == approvals.Executing && r.EntryID == 0 && withEntry == nil {
			withEntry = b.requestsWithEntry(oldestUnlinked(rs))
		}
		if r.State == approvals.Approved || (r.EntryID == 0 && !withEntry[r.ID]) {
			// On a shared journal another replica may hold it, queued or about to begin
			// its entry: its claim lives as long as that replica's session.
			if err := b.store.ClaimRequest(r.ID); err != nil {
				if !errors.Is(err, store.ErrClaimed) && !errors.Is(err, store.ErrConflict) {
					b.log.Error("reconcile: claim a request", "request", r.ID, "err", err)
				}
				continue
			}
		}
		switch {
		case r.State == approvals.Approved:
			b.start(ctx, r, true, fmt.Sprintf("Request #%d (%s) was approved before the bot stopped and had not started", r.ID, summary(r.Action, r.Connector, r.Args)),
				func(m Message) { b.announce(ctx, m.Text) })
		case r.EntryID == 0 && !withEntry[r.ID]:
			b.failRequest(ctx, r, 0, "the bot stopped before running it; nothing was changed, ask again")
			b.announce(ctx, fmt.Sprintf("Request #%d (%s) was interrupted before it ran: nothing was changed; it is marked failed.", r.ID, summary(r.Action, r.Connector, r.Args)))
		}
	}
}

// oldestUnlinked is when the oldest request left executing without an entry was made.
func oldestUnlinked(rs []store.Request) time.Time {
	var t time.Time
	for _, r := range rs {
		if r.State == approvals.Executing && r.EntryID == 0 && (t.IsZero() || r.CreatedAt.Before(t)) {
			t = r.CreatedAt
		}
	}
	return t
}

// requestsWithEntry is the set of requests some journal entry made since since names: a walk
// of the journal newest first, as far back as those requests go, not over all of it.
func (b *Bot) requestsWithEntry(since time.Time) map[uint64]bool {
	out := map[uint64]bool{}
	since = since.Add(-time.Hour) // margin for a wall clock stepped back between them
	var before uint64
	for {
		es, next, err := b.store.History(before, 500)
		if err != nil {
			return out
		}
		for _, e := range es {
			if e.CreatedAt.Before(since) {
				return out
			}
			out[e.RequestID] = true
		}
		if next == 0 {
			return out
		}
		before = next
	}
}

func (b *Bot) announce(ctx context.Context, s string) {
	b.announceTo(ctx, b.cfg.Channel, ":warning: "+s)
}

// reconcileEntry decides the outcome of one entry left executing.
func (b *Bot) reconcileEntry(ctx context.Context, e store.Entry, why string) bool {
	m, err := b.connector(e.Connector)
	if err != nil {
		b.settle(ctx, e, store.EntryUnknown, nil, why, "its connector is no longer configured; check the user by hand")
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.ActionTimeout)
	defer cancel()
	u := target(e.Args)
	now, err := m.State(cctx, u)
	if err != nil {
		b.log.Error("reconcile", "entry", e.ID, "err", err)
		if b.firstNotice(e.ID) {
			b.announce(ctx, fmt.Sprintf("Journal #%d (%s) was interrupted by %s and cannot be checked yet (%s) It stays open and is checked again every minute and at every start.",
				e.ID, summary(e.Action, e.Connector, e.Args), why, sentence(err)))
		}
		return false
	}
	var before connector.UserState
	_ = json.Unmarshal(e.Before, &before)
	settled := true
	applied := func(ok bool, yes, no string) {
		switch {
		case ok:
			b.settleWith(ctx, e, store.EntryDone, &now, why, yes, reconciledChange(e, before, now))
		case b.young(e):
			settled = false
			b.notYet(ctx, e, why)
		default:
			b.settle(ctx, e, store.EntryFailed, &now, why, no)
		}
	}
	if now.Exists && !before.SameUser(now) && e.Action != commands.RotatePassword && e.Action != commands.DropUser {
		// Whatever the server shows belongs to another user of the same name.
		b.settle(ctx, e, store.EntryUnknown, &now, why, "the user was dropped and created again since the action began (it has a new userId), so its state says nothing of this action; check by hand")
		return true
	}
	switch e.Action {
	case commands.RotatePassword:
		settled = b.reconcileRotation(ctx, m, e, u, before, now, why)
	case commands.GrantRole, commands.RevokeRole:
		role, _ := connector.ParseRole(e.Args["role"])
		has := now.HasRole(role)
		applied(has == (e.Action == commands.GrantRole), "the server shows the change applied", "the server shows it was not applied; nothing changed")
	case commands.CreateReadOnlyUser, commands.Access:
		// An access found applied keeps its end (the journaled start plus --for): its user
		// is dropped on time like any other.
		settled = b.reconcileCreate(ctx, m, e, u, before, now, why)
	case actionCreateTwin:
		applied(now.Exists, "the twin exists (the next rotation of the pair gives it its password)", "the twin was not created; nothing changed")
	case commands.DropUser:
		applied(!now.Exists || !before.SameUser(now), "the user is gone (a user of the same name may have been created since)", "the user still exists; nothing changed")
	case commands.LockUser:
		applied(now.Locked(), "the user is locked", "the user is not locked; nothing changed")
	case commands.UnlockUser:
		applied(now.Exists && !now.Locked(), "the user is unlocked", "the user is still locked; nothing changed")
	case commands.Schedule:
		found := false
		if scs, err := b.store.Schedules(); err == nil {
			for _, sc := range scs {
				found = found || sc.RequestID == e.RequestID
			}
		}
		applied(found, "the schedule exists", "the schedule was not created")
	case commands.Unschedule:
		id, _ := strconv.ParseUint(e.Args["id"], 10, 64)
		sc, err := b.store.Schedule(id)
		applied(err == nil && sc.State == store.ScheduleRemoved, "the schedule is removed", "the schedule is still active")
	case commands.Rollback:
		settled = b.reconcileRollback(ctx, e, now, why)
	default:
		b.settle(ctx, e, store.EntryUnknown, &now, why, "the bot does not know this action; check the user by hand")
	}
	return settled
}

// young reports whether e's command could still reach the server: a command sent before an
// interruption may land after it (the server finishes what it received), so "not applied" is
// only final once the action's timeout and a margin have passed. "Applied" is final at once.
func (b *Bot) young(e store.Entry) bool {
	return b.now().Sub(e.CreatedAt) < b.cfg.ActionTimeout+30*time.Second
}

func (b *Bot) notYet(ctx context.Context, e store.Entry, why string) {
	b.log.Info("reconcile: not applied so far", "entry", e.ID)
	if b.firstNotice(e.ID) {
		b.announce(ctx, fmt.Sprintf("Journal #%d (%s), interrupted by %s, shows no effect on the server so far; it is checked again in a minute, in case the command still lands.",
			e.ID, summary(e.Action, e.Connector, e.Args), why))
	}
}

// reconcileRollback settles a rollback from what its undo would have done to the user.
func (b *Bot) reconcileRollback(ctx context.Context, e store.Entry, now connector.UserState, why string) bool {
	orig, err := b.store.Entry(e.RollbackOf)
	var ch connector.Change
	if err == nil {
		err = json.Unmarshal(orig.Undo, &ch)
	}
	if err != nil || ch.Undo == nil {
		_ = b.store.ReleaseRollback(e.RollbackOf, e.ID)
		b.settle(ctx, e, store.EntryUnknown, &now, why, "the action it undoes cannot be read; check the user's state and roll back again if needed")
		return true
	}
	var done bool
	switch u := ch.Undo; u.Action {
	case connector.UndoRevokeRole:
		done = u.Role != nil && !now.HasRole(*u.Role)
	case connector.UndoGrantRole:
		done = u.Role != nil && now.HasRole(*u.Role)
	case connector.UndoDropUser:
		done = !now.Exists
	case connector.UndoSetRestrictions:
		done = now.Exists && now.Locked() == (len(u.Restrictions) > 0 && connector.UserState{Exists: true, Restrictions: u.Restrictions}.Locked())
	}
	if !done && b.young(e) {
		b.notYet(ctx, e, why)
		return false
	}
	if !done {
		_ = b.store.ReleaseRollback(e.RollbackOf, e.ID)
		b.settle(ctx, e, store.EntryFailed, &now, why, "the server shows the rollback was not applied; Roll back can be tried again")
		return true
	}
	b.settle(ctx, e, store.EntryDone, &now, why, "the server shows the rollback applied")
	b.markRolledBack(ctx, orig, e.ID, "bot")
	return true
}

// reconciledChange rebuilds, for an action found applied after an interruption, the undo plan
// the connector would have returned, from the state journaled before it and the state now, so
// that Roll back still works. Nil when there is none (rotations, drops) or the state before
// is unknown.
func reconciledChange(e store.Entry, before, now connector.UserState) *connector.Change {
	if !before.Exists && e.Action != commands.CreateReadOnlyUser && e.Action != commands.Access {
		return nil
	}
	ch := &connector.Change{Action: e.Action, Connector: e.Connector, User: target(e.Args), Before: before, After: now}
	role, _ := connector.ParseRole(e.Args["role"])
	switch e.Action {
	case commands.GrantRole:
		if before.HasRole(role) {
			ch.NoUndo = "the user already had the role"
			return ch
		}
		ch.Undo = &connector.Undo{Action: connector.UndoRevokeRole, Role: &role, Describe: fmt.Sprintf("revoke %s from %s", role, ch.User)}
	case commands.RevokeRole:
		if !before.HasRole(role) {
			return nil
		}
		ch.Undo = &connector.Undo{Action: connector.UndoGrantRole, Role: &role, Describe: fmt.Sprintf("grant %s to %s again", role, ch.User)}
	case commands.CreateReadOnlyUser, commands.Access:
		ch.Undo = &connector.Undo{Action: connector.UndoDropUser, Describe: fmt.Sprintf("drop %s", ch.User)}
	case commands.LockUser:
		ch.Undo = &connector.Undo{Action: connector.UndoSetRestrictions, Restrictions: before.Restrictions, Describe: fmt.Sprintf("unlock %s (restore its previous authentication restrictions)", ch.User)}
	case commands.UnlockUser:
		ch.Undo = &connector.Undo{Action: connector.UndoSetRestrictions, Restrictions: connector.LockRestrictions(), Describe: fmt.Sprintf("lock %s again", ch.User)}
	default:
		return nil
	}
	return ch
}

// reconcileRotation settles a rotation: the password sealed before the server was asked
// decides whether it took effect (log in with it). A --logout-all rotation that dropped the
// user but did not re-create it is finished from the journaled pre-image.
func (b *Bot) reconcileRotation(ctx context.Context, m Mongo, e store.Entry, u connector.UserRef, before, now connector.UserState, why string) bool {
	if !now.Exists && before.Exists && e.Args["logout_all"] == "true" {
		if b.young(e) {
			b.notYet(ctx, e, why) // its createUser may still land
			return false
		}
		// The same password the rotation sealed before it dropped the user: whichever
		// attempt created it, logging in with it tells.
		var pw secret.String
		if e.PendingSecret != "" {
			if raw, err := b.store.PeekSecret(e.PendingSecret, e.Requester); err == nil {
				pw = secret.New(string(raw))
			}
		}
		ch, made, err := m.Recreate(ctx, u, before, pw)
		if err != nil {
			// The user is gone and its pre-image is in the journal: keep the entry open and
			// keep trying rather than give up on it.
			b.log.Error("reconcile: re-create", "entry", e.ID, "err", err)
			if b.firstNotice(e.ID) {
				b.announce(ctx, fmt.Sprintf(":rotating_light: Journal #%d: `%s` is still missing on %s and re-creating it from its journaled pre-image failed (%s) The bot retries every minute; `mongobot journal show %d` has the pre-image.",
					e.ID, code(u.String()), e.Connector, sentence(err), e.ID))
			}
			return false
		}
		id := e.PendingSecret
		if pw.Empty() {
			// No sealed password was left (an entry from an older version): keep the new one.
			var perr error
			if id, perr = b.store.PutSecret(e.Requester, []byte(made.Reveal()), store.RecoveryTTL); perr != nil {
				id = ""
			}
		}
		b.settle(ctx, e, store.EntryDone, &ch.After, why, "the user had been dropped; it was re-created from its journaled pre-image with the new password")
		if id != "" {
			b.offerOrDeliver(ctx, e, id)
		}
		return true
	}
	if e.PendingSecret == "" {
		b.settle(ctx, e, store.EntryFailed, &now, why, "the bot stopped before a new password was made; nothing changed")
		return true
	}
	raw, err := b.store.PeekSecret(e.PendingSecret, e.Requester)
	if err != nil {
		b.settle(ctx, e, store.EntryUnknown, &now, why, "the sealed new password is gone ("+err.Error()+"); rotate again to be sure of the password")
		return true
	}
	if err := m.Login(ctx, u, secret.New(string(raw))); err != nil {
		if now.LoginRestricted() {
			// Authentication restrictions (the bot's lock among them, or a role's) may refuse a login,
			// so a failed login says nothing of the password: a person must look. The
			// sealed password is offered, since it may well be the one in force.
			if len(e.Deliveries) > 0 {
				// Delivering a password that may not be in force could break applications that
				// work now; revealing it is for reveal: owner only.
				d := b.deliveryFor(e.Connector, u)
				b.settle(ctx, e, store.EntryUnknown, &now, why, "the user has authentication restrictions (it may be locked), so logging in cannot tell whether the new password was set; it was NOT delivered (applications keep what they have, which may no longer work): rotate again once the user can log in")
				if d != nil && d.Reveal {
					b.offerReveal(ctx, e, e.PendingSecret)
				} else {
					b.forgetSecret(e)
				}
				return true
			}
			b.settle(ctx, e, store.EntryUnknown, &now, why, "the user has authentication restrictions (it may be locked), so logging in cannot tell whether the new password was set; the new password is offered to its owner, and the old one may still be the one in force: rotate again once the user can log in")
			b.offerReveal(ctx, e, e.PendingSecret)
			return true
		}
		if b.young(e) {
			b.notYet(ctx, e, why) // the updateUser may still land; the sealed copy stays
			return false
		}
		b.forgetSecret(e)
		b.settle(ctx, e, store.EntryFailed, &now, why, "logging in with the new password fails, so it was not set; the old password still works")
		return true
	}
	b.settle(ctx, e, store.EntryDone, &now, why, "logging in with the new password works, so the rotation took effect")
	b.offerOrDeliver(ctx, e, e.PendingSecret)
	return true
}

// reconcileCreate settles a create-readonly-user: the user exists or not, and the password
// sealed before it was created is offered when logging in with it works.
func (b *Bot) reconcileCreate(ctx context.Context, m Mongo, e store.Entry, u connector.UserRef, before, now connector.UserState, why string) bool {
	if !now.Exists {
		if b.young(e) {
			b.notYet(ctx, e, why)
			return false
		}
		b.forgetSecret(e)
		b.settle(ctx, e, store.EntryFailed, &now, why, "the user was not created")
		return true
	}
	ch := reconciledChange(e, before, now)
	if e.PendingSecret != "" {
		if raw, err := b.store.PeekSecret(e.PendingSecret, e.Requester); err == nil && m.Login(ctx, u, secret.New(string(raw))) == nil {
			b.settleWith(ctx, e, store.EntryDone, &now, why, "the user exists and logging in with its sealed password works", ch)
			b.offerReveal(ctx, e, e.PendingSecret)
			return true
		}
	}
	b.forgetSecret(e)
	b.settleWith(ctx, e, store.EntryDone, &now, why, "the user exists, but its password is not the one the bot made: rotate it to get one", ch)
	return true
}

// forgetSecret deletes the sealed password of entry e, which will never be offered.
func (b *Bot) forgetSecret(e store.Entry) {
	if e.PendingSecret != "" {
		_, _ = b.store.TakeSecret(e.PendingSecret, e.Requester)
	}
}

// settle closes entry e (and its request) after a restart, and reports it.
func (b *Bot) settle(ctx context.Context, e store.Entry, state string, now *connector.UserState, why, note string) {
	b.settleWith(ctx, e, state, now, why, note, nil)
}

// settleWith is settle recording ch, when not nil, as the entry's change (and so its undo).
func (b *Bot) settleWith(ctx context.Context, e store.Entry, state string, now *connector.UserState, why, note string, ch *connector.Change) {
	note = "reconciled after " + why + ": " + note
	if state == store.EntryDone {
		// What the action does after its write, it did not get to: routers, sessions.
		if m, err := b.connector(e.Connector); err == nil {
			kill := e.Action == commands.LockUser || e.Args["performs"] == commands.LockUser || e.Args["kill_sessions"] == "true"
			if more := m.Aftercare(ctx, target(e.Args), kill); len(more) > 0 {
				note += " (" + strings.Join(more, "; ") + ")"
			}
		}
	}
	var undoAt time.Time
	if d, err := commands.ParseDuration(e.Args["for"]); err == nil && ch != nil && ch.Undo != nil && state == store.EntryDone {
		undoAt = e.CreatedAt.Add(d)
	}
	settled, err := b.store.TransitionEntry(e.ID, []string{store.EntryExecuting}, store.Step{State: state, By: "bot", Note: note}, func(x *store.Entry) {
		if now != nil {
			x.After, _ = json.Marshal(*now)
		}
		if ch != nil {
			x.Undo, _ = json.Marshal(*ch)
		}
		x.UndoAt = undoAt
		x.Notes = append(x.Notes, note)
		if state == store.EntryDone && x.PendingSecret != "" && len(x.Deliveries) > 0 {
			// As in finish: the obligation to deliver is recorded with the outcome.
			x.DeliverySecret, x.DeliveryOwner, x.DeliverAt = x.PendingSecret, x.Requester, b.now()
		}
		x.PendingSecret = ""
		if state != store.EntryDone {
			x.Error = note
		}
	})
	if err != nil {
		b.log.Error("reconcile settle", "entry", e.ID, "err", err)
		return
	}
	if settled.AwaitsDelivery() {
		b.scheduleDelivery(e.ID, b.now().Add(deliveryRetry(1))) // the obligation, from its commit on
	}
	b.mu.Lock()
	delete(b.noticed, e.ID)
	b.mu.Unlock()
	b.cfg.Metrics.Action(e.Connector, metricAction(e), state, b.now().Sub(e.CreatedAt))
	if !undoAt.IsZero() {
		b.scheduleTemporary(e.ID, undoAt, undoAt)
	}
	if e.RequestID != 0 {
		b.closeRequest(ctx, e.RequestID, state == store.EntryDone, note)
	}
	desc := ""
	if now != nil {
		desc = " The user now: " + esc(now.Describe()) + "."
	}
	b.announce(ctx, fmt.Sprintf("Journal #%d (%s) was interrupted by %s; it is now %s: %s.%s",
		e.ID, summary(e.Action, e.Connector, e.Args), why, state, note, desc))
	if who := b.told(e); who != "" {
		b.dm(ctx, who, text("Journal #%d (%s) was interrupted by %s; it is now %s: %s.", e.ID, summary(e.Action, e.Connector, e.Args), why, state, note))
	}
}
