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
	"mongobot/store"
)

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

// startRollback checks who may roll back entry id (its requester, its approvers, or an
// approver under the policy) and runs the rollback, or asks for approval when the policy
// requires it for "rollback".
func (b *Bot) startRollback(ctx context.Context, channel string, who approvals.Who, id uint64, reason string) {
	e, ch, err := b.undoable(id)
	if err != nil {
		b.private(ctx, channel, who.User, text("%s.", capital(err.Error())))
		return
	}
	eff := b.cfg.Policy.For(commands.Rollback, e.Connector)
	if who.User != e.Requester && !slices.Contains(e.Approvers, who.User) && !eff.Approvers.Has(who) {
		b.private(ctx, channel, who.User, text("Only the requester of journal #%d (<@%s>) or an approver can roll it back.", id, e.Requester))
		return
	}
	args := map[string]string{"id": strconv.FormatUint(id, 10), "user": e.Args["user"], "authdb": e.Args["authdb"]}
	if !eff.Required {
		b.runRollback(ctx, store.Request{}, e, ch, who.User, reason)
		return
	}
	now := b.now()
	r, err := b.store.CreateRequest(store.Request{Action: commands.Rollback, Connector: e.Connector, Args: args, Requester: who.User,
		Reason: reason, CreatedAt: now, ExpiresAt: now.Add(eff.ExpireAfter),
		Preview: map[string]string{pvNow: "journal #" + args["id"] + ": " + summary(e.Action, e.Connector, e.Args), pvRollback: ch.Undo.Describe}},
		approvals.Pending, who.User)
	if err != nil {
		b.private(ctx, channel, who.User, text("The rollback request could not be recorded (%v); nothing was changed.", err))
		return
	}
	ref, err := b.chat.Post(ctx, b.cfg.Channel, b.card(r, eff))
	if err == nil {
		_, _ = b.store.UpdateRequest(r.ID, func(x *store.Request) error { x.Card = store.MessageRef{Channel: ref.Channel, TS: ref.TS}; return nil })
	}
	b.private(ctx, channel, who.User, text("Rolling back journal #%d needs approval under the policy: request #%d is waiting for it.", id, r.ID))
}

// executeRollback runs an approved rollback request.
func (b *Bot) executeRollback(ctx context.Context, r store.Request) {
	id, _ := strconv.ParseUint(r.Args["id"], 10, 64)
	e, ch, err := b.undoable(id)
	if err != nil {
		b.failRequest(ctx, r, 0, err.Error())
		return
	}
	b.runRollback(ctx, r, e, ch, r.Requester, r.Reason)
}

// runRollback undoes entry e: a new journal entry, claimed against e in one transaction so
// that two clicks give one rollback, then the connector's drift-checked undo.
func (b *Bot) runRollback(ctx context.Context, r store.Request, e store.Entry, ch connector.Change, by, reason string) {
	m, err := b.connector(e.Connector)
	if err != nil {
		b.dm(ctx, by, text("%s.", capital(err.Error())))
		return
	}
	args := map[string]string{"id": strconv.FormatUint(e.ID, 10), "user": e.Args["user"], "authdb": e.Args["authdb"]}
	if reason != "" {
		args["reason"] = reason
	}
	re := store.Entry{RequestID: r.ID, Requester: by, Approvers: approvals.Approvers(votes(r.Votes)), Connector: e.Connector,
		Action: commands.Rollback, Args: args, Before: e.After}
	re, err = b.store.BeginRollback(e.ID, re, by)
	if err != nil {
		var ce *store.ConflictError
		if errors.As(err, &ce) {
			b.dm(ctx, by, text("Journal #%d cannot be rolled back now: it is %s.", e.ID, ce.Got))
			if r.ID != 0 {
				b.failRequest(ctx, r, 0, "journal #"+args["id"]+" is "+ce.Got)
			}
			return
		}
		b.dm(ctx, by, text("The rollback could not be journaled (%v), so nothing was changed.", err))
		return
	}
	if r.ID != 0 {
		_, _ = b.store.UpdateRequest(r.ID, func(x *store.Request) error { x.EntryID = re.ID; return nil })
	}
	release, _ := b.claim(re.ID)
	defer release()
	cctx, cancel := context.WithTimeout(ctx, b.cfg.ActionTimeout)
	undo, uerr := m.Undo(cctx, ch)
	cancel()
	if uerr != nil {
		if err := b.store.ReleaseRollback(e.ID, re.ID); err != nil {
			b.log.Error("release rollback", "entry", e.ID, "err", err)
		}
	} else {
		b.markRolledBack(ctx, e, re.ID, by)
	}
	// Without a card of its own (no approval), the result goes in the thread of the
	// original action's card.
	if r.Card.TS == "" && e.RequestID != 0 {
		if orig, err := b.store.Request(e.RequestID); err == nil {
			r.Card = orig.Card
		}
	}
	b.finish(ctx, r, re, outcome{change: undo, err: uerr})
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
