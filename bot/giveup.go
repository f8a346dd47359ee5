package bot

import (
	"context"
	"fmt"

	"mongobot/approvals"
	"mongobot/commands"
	"mongobot/connector"
	"mongobot/store"
)

// Giving up a privilege never waits. A vote exists to stop privileges being added; ending a
// temporary grant early only takes away what the bot itself added for a while, and leaving
// it in place until a second person approves its removal is the unsafe choice. So a rollback
// that only gives up runs at once, for the requester of the temporary action or an approver
// of it, through the path the bot's own end takes (checking only what it undoes, claiming the
// entry once against the bot's timer), and is journaled as given up, by whom, without a vote.
//
// Only removing is, exactly:
//   - the Roll back (or `rollback <id>`) of a grant-role made with --for that is still in
//     force: it revokes the one role that grant added (the journal shows the user without it
//     before and with it after), nothing else;
//   - the end of a temporary access (Roll back of its entry, or access-end): its user, which
//     the access created, is dropped.
//
// Everything else still follows the policy: rolling back a revoke (it grants), a permanent
// grant, a rotation, a lock or unlock (a temporary lock's end gives a login back), a
// create-readonly-user (a drop the policy judges), or anyone's temporary grant by someone who
// is neither its requester nor an approver of it. Nothing of this is read from a button or a
// payload: the entry and its undo come from the journal (authenticated), who may act from the
// policy now, and what is revoked from the server at the moment of acting.

// givingUp is why rolling back e (whose undo is ch) only gives up privileges granted for a
// time, or "" when it does not. It says nothing of who asks: see mayGiveUp.
func givingUp(e store.Entry, ch connector.Change) string {
	if e.State != store.EntryDone || e.RolledBackBy != 0 || e.UndoAt.IsZero() || e.Args["for"] == "" || ch.Undo == nil {
		return "" // not a temporary action still in force
	}
	u := ch.Undo
	switch {
	case e.Action == commands.GrantRole && u.Action == connector.UndoRevokeRole && u.Role != nil:
		// The role revoked must be the one this grant added: absent before, present after.
		r := *u.Role
		if ch.Role == nil || *ch.Role != r || ch.Before.HasRole(r) || !ch.After.HasRole(r) {
			return ""
		}
		return fmt.Sprintf("it only revokes %s, which journal #%d granted for %s", r, e.ID, e.Args["for"])
	case e.Action == commands.Access && u.Action == connector.UndoDropUser:
		if ch.Before.Exists || !ch.After.Exists {
			return "" // the access did not create this user: dropping it is not giving up
		}
		return fmt.Sprintf("it only drops %s, which access #%d created for %s", ch.User, e.RequestID, e.Args["for"])
	}
	return ""
}

// mayGiveUp reports whether who may give up e's privileges without a vote: its requester,
// or an approver of e's action under the policy in force now.
func (b *Bot) mayGiveUp(e store.Entry, who approvals.Who) bool {
	if e.Requester != "" && e.Requester != botActor && who.User == e.Requester {
		return true
	}
	return b.policyFor(e.Action, e.Connector, e.Args).Approvers.Has(who)
}

// giveUp runs the rollback of e by who at once, when it only gives up privileges granted for
// a time and who may do so; it reports whether it took the request (false: judge it as any
// rollback).
func (b *Bot) giveUp(ctx context.Context, channel string, who approvals.Who, e store.Entry, ch connector.Change, reason string) bool {
	why := givingUp(e, ch)
	if why == "" || !b.mayGiveUp(e, who) {
		return false
	}
	if later, err := b.touchedSince(e, ch); err != nil || later.ID != 0 {
		because := fmt.Sprintf("journal #%d (%s) changed %s since", later.ID, later.Action, code(ch.User.String()))
		if err != nil {
			b.log.Error("give up: read the journal", "entry", e.ID, "err", err)
			because = "the journal could not be read to make sure nothing changed it since"
		}
		b.private(ctx, channel, who.User, text("Ending journal #%d early cannot skip the vote: %s, so it may no longer only remove what #%d added. It is judged by the policy as any rollback.", e.ID, because, e.ID))
		return false
	}
	if reason == "" {
		reason = "given up early"
	}
	b.log.Info("give up", "entry", e.ID, "by", who.User)
	b.private(ctx, channel, who.User, text("Ending journal #%d early needs no approval (%s; giving up never waits): running it now.", e.ID, why))
	b.spawn("give up", func() {
		if res, _ := b.runRollback(ctx, store.Request{}, e, ch, who.User, reason, true); res == rollbackDone {
			b.forgetTemporary(e.ID)
		}
	})
	return true
}

// touchedSince is the first entry after e (newest first) on e's connector and user that may
// have changed what giving e up undoes: for a grant, the role it added (granted again, revoked
// and given back, the user dropped or created); for an access, the user itself (dropped and
// created again). After one, the role or user in place may be someone else's doing, and
// removing it is no longer only giving up e: the policy judges it. Its ID is 0 when there is
// none. Only entries after e are read, newest first, down to e: at most the --for window (90
// days at most) of the journal, which the journal's own end of e reads at the same cost.
func (b *Bot) touchedSince(e store.Entry, ch connector.Change) (store.Entry, error) {
	user := target(e.Args)
	for before := uint64(0); ; {
		es, next, err := b.store.History(before, 200)
		if err != nil {
			return store.Entry{}, err
		}
		for _, x := range es {
			if x.ID <= e.ID {
				return store.Entry{}, nil
			}
			if x.Connector == e.Connector && target(x.Args) == user && x.RollbackOf != e.ID && x.State != store.EntryFailed && touches(x, ch) {
				return x, nil
			}
		}
		if next == 0 {
			return store.Entry{}, nil
		}
		before = next
	}
}

// touches reports whether entry x, on the same user as the temporary change ch, may have
// changed what ch's end removes. Only what cannot is let through: a password, a lock, or a
// grant, revoke or rollback of another role; anything else (a new action included) counts.
func touches(x store.Entry, ch connector.Change) bool {
	does := x.Action
	if x.Action == commands.Rollback {
		does = x.Args["performs"]
	}
	switch does {
	case commands.RotatePassword, commands.LockUser, commands.UnlockUser:
		return false
	case commands.GrantRole, commands.RevokeRole:
		// A role changed on the user: it matters to a grant's end when it is that role, and
		// never to an access's end, which drops the user whatever its roles.
		return ch.Undo.Action == connector.UndoRevokeRole && ch.Undo.Role != nil && x.Args["role"] == ch.Undo.Role.String()
	}
	return true
}

// sameAccessUser reports whether now may be the user an access created, whose state then was
// was, when the server cannot say by userId (Atlas's API reports none, and SameUser then
// answers yes): the access wrote its marker (owner, request, end) into the user's customData,
// and a user someone created again under the name carries another or none. Dropping is only
// safe on that evidence. With a userId on both sides SameUser has decided already; an access
// whose state recorded no customData leaves nothing to compare, and its user, named by the
// bot for that one access, is taken as it.
func sameAccessUser(was, now connector.UserState) bool {
	if (was.UserID != "" && now.UserID != "") || was.CustomData == "" {
		return was.SameUser(now)
	}
	return now.CustomData == was.CustomData
}

// givingUpNote is what a grant's card adds to its Roll back: with --for, how it is given up.
func givingUpNote(args map[string]string) string {
	if args["for"] == "" {
		return ""
	}
	return "; with --for, its requester or an approver can end it early at once, without a vote"
}

// givenUpNote is what a given-up rollback's args say of it, in the journal and on cards.
func givenUpNote(args map[string]string) string {
	if args["given_up_by"] == "" {
		return ""
	}
	return fmt.Sprintf(", given up early by <@%s> (no vote was needed: it only removes privileges granted for a time)", args["given_up_by"])
}

// temporaryNote is the result's line on a temporary action e ending at end: when, and how to
// end it early. A grant or an access is given up at once; a lock's early end gives a login
// back, which the policy judges.
func (b *Bot) temporaryNote(e store.Entry, end string) string {
	s := fmt.Sprintf("temporary: the bot undoes it by itself at %s (%s)", end, e.Args["for"])
	switch e.Action {
	case commands.GrantRole, commands.Access:
		return s + fmt.Sprintf("; to give it up sooner, its requester or an approver presses Roll back (or `%s rollback %d`): that ends it at once, with no approval, since it only removes", b.cfg.Slash, e.ID)
	}
	return s + fmt.Sprintf("; Roll back (or `%s rollback %d`) ends it early, judged by the policy like any %s", b.cfg.Slash, e.ID, performsOfEnd(e.Action))
}

// performsOfEnd is the action ending a temporary action early performs, as a person reads it.
func performsOfEnd(action string) string {
	if action == commands.LockUser {
		return commands.UnlockUser
	}
	return "rollback"
}
