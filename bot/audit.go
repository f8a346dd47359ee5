package bot

import (
	"errors"

	"mongobot/approvals"
	"mongobot/store"
)

// The bot's part of the audit trail. The store records every change of a request or an
// entry by itself; what changes no record is told to it here: a click the bot refused, and a
// password revealed. And a request approved without a vote names the policy rule that did.

// autoRule names the rule of the policy in force that lets the request (action on conn with
// args, by who) run without a vote: the just-in-time rule that gives who its roles, or what
// makes the action need no approval. Made from the config, never from what was typed.
func (b *Bot) autoRule(action, conn string, args map[string]string, who approvals.Who) string {
	if args["auto"] == "jit" {
		if r, ok := b.cfg.Policy.JITRule(conn, who, roleWords(args)); ok {
			return r.String()
		}
	}
	return b.cfg.Policy.NoVoteRule(action, conn, approvals.Risk(args["risk"])).String()
}

// approvedByPolicy is the line a card and a result show for a request the policy approved.
func approvedByPolicy(rule string) string { return "Approved by policy: `" + code(rule) + "`" }

// buttons are the actions a refusal may name; any other is recorded as "unknown", since
// a forged click may carry any text there.
var buttons = map[string]bool{ActApprove: true, ActDeny: true, ActRollback: true, ActReveal: true, ActCancel: true, ActAccessEnd: true}

// refusedClick keeps a refused click in the audit trail: who, which button, on which
// record (the id the value names, if it names one), why. Never the button's value: it may be
// a live token, or anything at all. A failure to record is logged: the refusal stands.
func (b *Bot) refusedClick(c Click, refusal, why string) {
	button := c.Action
	if !buttons[button] {
		button = "unknown"
	}
	rf := store.Refusal{By: c.User, Button: button, Code: refusal, Why: why}
	if id, _, ok := parseButton(c.Value); ok && button != ActReveal {
		if button == ActRollback {
			rf.EntryID = id
		} else if button != "unknown" {
			rf.RequestID = id
		}
	}
	if err := b.store.RecordRefusal(rf); err != nil {
		b.log.Error("record a refused click in the audit trail", "err", err)
	}
}

// voteRefusal is the refusal code of a vote the approvals refused with err.
func voteRefusal(err error) string {
	var decided *approvals.DecidedError
	switch {
	case errors.Is(err, errGroupsUnknown):
		return store.RefusedUnverified
	case errors.Is(err, approvals.ErrNotApprover):
		return store.RefusedNotApprover
	case errors.Is(err, approvals.ErrSelfApproval), errors.Is(err, approvals.ErrSelfDenial):
		return store.RefusedSelfApproval
	case errors.Is(err, approvals.ErrAlreadyVoted):
		return store.RefusedAlreadyVoted
	case errors.Is(err, approvals.ErrExpired):
		return store.RefusedExpired
	case errors.As(err, &decided):
		return store.RefusedDecided
	}
	return store.RefusedOther
}
