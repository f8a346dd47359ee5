package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"mongobot/approvals"
	"mongobot/commands"
	"mongobot/connector"
	"mongobot/kv"
	"mongobot/store"
)

// botActor is the requester of what the bot does by itself (the end of a temporary action):
// journal, cards, history and metrics name the bot, never a person.
const botActor = "bot"

func (b *Bot) rollbackCommand(ctx context.Context, in Invocation, who approvals.Who, cmd commands.Command) {
	b.startRollback(ctx, in.Channel, who, cmd.ID, cmd.Reason)
}

// undoable reads entry id and the change it recorded, or says why it cannot be rolled back.
func (b *Bot) undoable(id uint64) (store.Entry, connector.Change, error) {
	e, err := b.store.Entry(id)
	if err != nil {
		return e, connector.Change{}, fmt.Errorf("there is no journal entry #%d", id)
	}
	var ch connector.Change
	if len(e.Undo) > 0 {
		if err := json.Unmarshal(e.Undo, &ch); err != nil {
			return e, ch, fmt.Errorf("journal entry #%d does not decode: %v", id, err)
		}
	}
	switch {
	case e.State == store.EntryRolledBack:
		return e, ch, fmt.Errorf("journal #%d was already rolled back (by #%d)", id, e.RolledBackBy)
	case e.State != store.EntryDone:
		return e, ch, fmt.Errorf("journal #%d is %s: only a completed action can be rolled back", id, e.State)
	case e.RolledBackBy != 0:
		return e, ch, fmt.Errorf("journal #%d is being rolled back by #%d", id, e.RolledBackBy)
	case ch.Undo == nil:
		why := ch.NoUndo
		if why == "" {
			why = "it has no rollback"
		}
		return e, ch, fmt.Errorf("journal #%d (%s) cannot be rolled back: %s", id, e.Action, why)
	}
	return e, ch, nil
}

// performs is the action an undo performs on MongoDB: what its rollback is judged as.
func performs(u *connector.Undo) string {
	switch u.Action {
	case connector.UndoRevokeRole:
		return commands.RevokeRole
	case connector.UndoGrantRole:
		return commands.GrantRole
	case connector.UndoDropUser:
		return commands.DropUser
	case connector.UndoSetRestrictions:
		if (connector.UserState{Exists: true, Restrictions: u.Restrictions}).Locked() {
			return commands.LockUser
		}
		return commands.UnlockUser
	case connector.UndoRedeliver:
		// Applications get another login: judged as the rotation that gives them one.
		return commands.RotatePassword
	}
	return commands.Rollback
}

// rollbackArgs are the arguments of a rollback of e: what it undoes and what it performs.
func rollbackArgs(e store.Entry, ch connector.Change, reason string) map[string]string {
	args := map[string]string{"id": strconv.FormatUint(e.ID, 10), "user": e.Args["user"], "authdb": e.Args["authdb"],
		"performs": performs(ch.Undo)}
	if ch.Undo.Role != nil {
		args["role"] = ch.Undo.Role.String()
	}
	if ch.Undo.Action == connector.UndoRedeliver {
		// The rollback delivers the user e replaced, in place of e's.
		args["redeliver"], args["replaces"], args["delivery"] = e.Args["replaces"], target(e.Args).String(), "alternating"
	}
	if reason != "" {
		args["reason"] = reason
	}
	return args
}

// startRollback checks who may roll back entry id (its requester, its approvers, or an
// approver of the action the rollback performs) and runs it, or asks for approval when the
// policy of that action requires it: undoing a revoke is a grant, and is judged as one.
func (b *Bot) startRollback(ctx context.Context, channel string, who approvals.Who, id uint64, reason string) {
	e, ch, err := b.undoable(id)
	if err != nil {
		b.private(ctx, channel, who.User, text("%s.", capital(err.Error())))
		return
	}
	// Giving up privileges granted for a time never waits for a vote (giveup.go).
	if b.giveUp(ctx, channel, who, e, ch, reason) {
		return
	}
	args := rollbackArgs(e, ch, reason)
	if b.cfg.Via != "" {
		args["via"] = b.cfg.Via
	}
	// One pending rollback of an entry: pressing Roll back again points to it.
	defer b.asks.lock("rollback\x00" + args["id"])()
	if p, ok := b.pendingTwin(commands.Rollback, e.Connector, args); ok {
		b.private(ctx, channel, who.User, text("Request #%d (by <@%s>) to roll back journal #%d is already waiting for approval; approve or cancel it (`%s cancel %d`) instead. Nothing was requested.",
			p.ID, p.Requester, id, b.cfg.Slash, p.ID))
		return
	}
	// A rollback is judged as what it performs, its risk too: undoing a revoke of root grants
	// root. The user's state is the one the action left (journaled).
	var after connector.UserState
	_ = json.Unmarshal(e.After, &after)
	risk := riskOf(args["performs"], args, after)
	if risk != "" {
		args["risk"] = "high"
	}
	eff := b.policyFor(commands.Rollback, e.Connector, args)
	if who.User != e.Requester && !slices.Contains(e.Approvers, who.User) && !eff.Approvers.Has(who) {
		b.private(ctx, channel, who.User, text("Only the requester of journal #%d (<@%s>) or an approver can roll it back.", id, e.Requester))
		return
	}
	if !eff.Required {
		b.private(ctx, channel, who.User, text("Rolling back journal #%d performs %s, which needs no approval under the policy: running it now.", id, args["performs"]))
		b.spawn("rollback", func() { _, _ = b.runRollback(ctx, store.Request{}, e, ch, who.User, reason, false) })
		return
	}
	now := b.now()
	r, err := b.store.CreateRequest(store.Request{Action: commands.Rollback, Connector: e.Connector, Args: args, Requester: who.User,
		Reason: reason, CreatedAt: now, ExpiresAt: now.Add(eff.ExpireAfter),
		Preview: map[string]string{pvNow: "as journal #" + args["id"] + " left it (" + summary(e.Action, e.Connector, e.Args) + ")", pvAfter: "the rollback will " + esc(ch.Undo.Describe),
			pvRollback: "undo this rollback in turn, judged as the action that undo performs", pvRisk: esc(risk)}},
		approvals.Pending, who.User)
	if err != nil {
		if errors.Is(err, store.ErrAmbiguous) {
			b.private(ctx, channel, who.User, text("The journal could not tell whether the rollback request was recorded (%v); nothing was changed yet. Look for it (`%s requests`) before pressing Roll back again.", err, b.cfg.Slash))
		} else {
			b.private(ctx, channel, who.User, text("The rollback request could not be recorded (%v); nothing was changed.", err))
		}
		return
	}
	ref, err := b.chat.Post(ctx, b.cfg.Channel, b.card(r, eff))
	if err == nil {
		if r, err = b.store.UpdateRequest(r.ID, func(x *store.Request) error { x.Card = store.MessageRef{Channel: ref.Channel, TS: ref.TS}; return nil }); err == nil && r.State != approvals.Pending {
			b.refreshCard(ctx, r)
		}
	}
	b.private(ctx, channel, who.User, text("Rolling back journal #%d performs %s, which needs approval under the policy of %s on %s: request #%d is waiting for it.",
		id, args["performs"], args["performs"], e.Connector, r.ID))
}

// executeRollback runs an approved rollback request.
func (b *Bot) executeRollback(ctx context.Context, r store.Request) {
	id, _ := strconv.ParseUint(r.Args["id"], 10, 64)
	e, ch, err := b.undoable(id)
	if err != nil {
		b.failRequest(ctx, r, 0, err.Error())
		return
	}
	if performs(ch.Undo) != r.Args["performs"] {
		// Never run what was not approved: the entry's undo must be what the card showed.
		b.failRequest(ctx, r, 0, fmt.Sprintf("journal #%d's rollback now performs %s, not the %s that was approved", id, performs(ch.Undo), r.Args["performs"]))
		return
	}
	_, _ = b.runRollback(ctx, r, e, ch, r.Requester, r.Reason, false)
}

// rollbackResult says how a rollback ended.
type rollbackResult int

const (
	rollbackDone      rollbackResult = iota
	rollbackFailed                   // not applied; the entry can be rolled back again
	rollbackUncertain                // MongoDB stopped answering: reconciliation decides
	rollbackNotRun                   // refused before anything was journaled
)

// runRollback undoes entry e: a new journal entry, claimed against e in one transaction so
// that two clicks give one rollback, then the undo. A person's rollback is drift-checked
// (it refuses when the user changed since); the bot's end of a temporary action (auto)
// checks only what it undoes, and offers no Roll back of its own.
func (b *Bot) runRollback(ctx context.Context, r store.Request, e store.Entry, ch connector.Change, by, reason string, auto bool) (rollbackResult, error) {
	m, err := b.connector(e.Connector)
	if err != nil {
		b.dm(ctx, b.humanOf(by, e), text("%s.", capital(err.Error())))
		return rollbackNotRun, err
	}
	args := rollbackArgs(e, ch, reason)
	switch {
	case auto && by == botActor:
		args["automatic"] = "--for " + e.Args["for"] + " ended"
	case auto:
		// A person's early end of a temporary action (access-end, giving up a grant): it only
		// removes, so it ran without a vote, which the journal says, with who gave it up.
		args["ended_early"], args["given_up_by"] = "true", by
		if b.cfg.Via != "" {
			args["via"] = b.cfg.Via
		}
	case b.cfg.Via != "":
		args["via"] = b.cfg.Via
	}
	if d := b.deliveryFor(e.Connector, target(e.Args)); d != nil && d.Alternating && ch.Undo.Action == connector.UndoRedeliver {
		defer b.pairs.lock(d.key())() // before the user's lock, in the order execute takes them
	}
	unlock, why, ok := b.lockTarget(e.Connector, target(e.Args))
	if !ok {
		err := errors.New(why)
		if who := b.humanOf(by, e); who != "" {
			b.dm(ctx, who, text("Journal #%d was not rolled back: %s.", e.ID, err))
		}
		if r.ID != 0 {
			b.failRequest(ctx, r, 0, err.Error())
		}
		return rollbackNotRun, err
	}
	defer unlock()
	re := store.Entry{RequestID: r.ID, Requester: by, Approvers: approvals.Approvers(votes(r.Votes)), Connector: e.Connector,
		Action: commands.Rollback, Args: args, Before: e.After, Server: m.ServerLine()}
	if ch.Undo.Action == connector.UndoRedeliver {
		for _, d := range e.Deliveries {
			re.Deliveries = append(re.Deliveries, store.Delivery{Target: d.Target, Index: d.Index, State: store.DeliveryPending})
		}
	}
	re, release, err := b.beginClaimed(func() (store.Entry, error) {
		st := b.store
		if auto && by == botActor { // a temporary grant's due end: timer work; a person's works on any replica
			var err error
			if st, err = b.timerStore(); err != nil {
				return store.Entry{}, err
			}
		}
		return st.BeginRollback(e.ID, re, by)
	})
	if err != nil {
		who := b.humanOf(by, e)
		var ce *store.ConflictError
		if errors.As(err, &ce) {
			if who != "" {
				b.dm(ctx, who, text("Journal #%d cannot be rolled back now: it is %s.", e.ID, ce.Got))
			}
			if r.ID != 0 {
				b.failRequest(ctx, r, 0, "journal #"+args["id"]+" is "+ce.Got)
			}
			return rollbackNotRun, err
		}
		if who != "" && !errors.Is(err, kv.ErrFenced) {
			b.dm(ctx, who, text("The rollback could not be journaled (%v), so nothing was changed.", err))
		}
		if r.ID != 0 {
			b.failRequest(ctx, r, 0, "the journal could not record it")
		}
		return rollbackNotRun, err
	}
	defer release()
	if r.ID != 0 {
		_, _ = b.store.UpdateRequest(r.ID, func(x *store.Request) error { x.EntryID = re.ID; return nil })
	}
	// Without a card of its own (no approval), the result goes in the thread of the
	// original action's card.
	if r.Card.TS == "" && e.RequestID != 0 {
		if orig, err := b.store.Request(e.RequestID); err == nil {
			r.Card = orig.Card
		}
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.ActionTimeout)
	var undo connector.Change
	var uerr error
	var kept store.PairUser // for a redelivery: the kept password it delivers
	switch {
	case ch.Undo.Action == connector.UndoRedeliver:
		undo, kept, uerr = b.redeliver(cctx, m, e)
	case auto:
		undo, uerr = b.endTemporary(cctx, m, ch)
	default:
		undo, uerr = m.Undo(cctx, ch)
	}
	cancel()
	if maybeApplied(uerr) {
		// Whether the server applied it is unknown: the entry stays executing and its claim
		// on e stays, and reconciliation decides from the server's state.
		b.uncertain(ctx, r.Card, re, uerr)
		return rollbackUncertain, uerr
	}
	if uerr != nil {
		if err := b.store.ReleaseRollback(e.ID, re.ID); err != nil {
			b.log.Error("release rollback", "entry", e.ID, "err", err)
		}
	} else {
		switch {
		case auto && by == botActor:
			undo.Undo, undo.NoUndo = nil, "this was the bot ending a temporary action because its --for ran out; ask again with a new request to have it back"
		case auto:
			undo.Undo, undo.NoUndo = nil, "this ended a temporary action early; ask again with a new request to have it back"
		}
		if ch.Undo.Action != connector.UndoRedeliver {
			// A redelivery rolls e back when every target has the other user again:
			// deliveryDone marks it then, so a crash before leaves nothing half-said.
			b.markRolledBack(ctx, e, re.ID, by)
		}
	}
	b.finish(ctx, r, re, outcome{change: undo, err: uerr, secretID: kept.Secret, secretOwner: kept.Owner})
	if uerr != nil {
		return rollbackFailed, uerr
	}
	return rollbackDone, nil
}

// humanOf is the person to tell about a rollback by by of e: by itself, or for the bot's
// own rollbacks the requester of e.
func (b *Bot) humanOf(by string, e store.Entry) string {
	if by == botActor {
		return e.Requester
	}
	return by
}

// endTemporary ends a temporary grant or lock, checking only what it undoes: the role still
// granted, the lock still the bot's lock. Anything else about the user may have changed
// since; that is no reason to leave a grant of root in place. Already gone counts as done.
func (b *Bot) endTemporary(ctx context.Context, m Mongo, ch connector.Change) (connector.Change, error) {
	now, err := m.State(ctx, ch.User)
	if err != nil {
		return connector.Change{}, err
	}
	gone := func(what string) (connector.Change, error) {
		return connector.Change{Action: "end " + ch.Action, Connector: ch.Connector, User: ch.User, Before: now, After: now,
			Notes: []string{what + " already, so there was nothing to undo"}}, nil
	}
	if now.Exists && !ch.After.SameUser(now) {
		return gone(fmt.Sprintf("%s was dropped since and a different user now has its name", ch.User))
	}
	if now.Exists && ch.Undo.Action == connector.UndoDropUser && !sameAccessUser(ch.After, now) {
		return gone(fmt.Sprintf("%s no longer carries the marker the access wrote into its customData, and the server reports no userId to tell whether it is the same user, so it was left in place", ch.User))
	}
	switch u := ch.Undo; u.Action {
	case connector.UndoRevokeRole:
		if !now.Exists || !now.HasRole(*u.Role) {
			return gone(fmt.Sprintf("%s no longer had %s", ch.User, u.Role))
		}
		return m.RevokeRole(ctx, ch.User, *u.Role)
	case connector.UndoSetRestrictions:
		if !now.Exists || !now.Locked() {
			return gone(fmt.Sprintf("%s was no longer locked by the bot", ch.User))
		}
		return m.UnlockUser(ctx, ch.User, u.Restrictions)
	case connector.UndoDropUser:
		// The end of an access: the user goes, whatever was done to it since (roles granted
		// to it meanwhile are no reason to keep it).
		if !now.Exists {
			return gone(fmt.Sprintf("%s was dropped", ch.User))
		}
		return m.DropUser(ctx, ch.User, nil)
	}
	return m.Undo(ctx, ch)
}

// markRolledBack records that rollback entry by undid orig: orig and its request move to
// rolled back, and the request's card says so.
func (b *Bot) markRolledBack(ctx context.Context, orig store.Entry, rollback uint64, by string) {
	if _, err := b.store.TransitionEntry(orig.ID, []string{store.EntryDone}, store.Step{State: store.EntryRolledBack, By: by, Note: fmt.Sprintf("by #%d", rollback)}, nil); err != nil {
		b.log.Error("mark rolled back", "entry", orig.ID, "err", err)
	}
	if orig.RequestID != 0 {
		if r, err := b.store.TransitionRequest(orig.RequestID, []string{approvals.Done}, store.Step{State: approvals.RolledBack, By: by}, nil); err == nil {
			b.refreshCard(ctx, r)
		}
	}
}
