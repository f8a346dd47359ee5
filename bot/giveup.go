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
