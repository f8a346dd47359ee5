package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"mongobot/approvals"
	"mongobot/commands"
	"mongobot/connector"
	"mongobot/secret"
	"mongobot/store"
)

// outcome is what running one action gave.
type outcome struct {
	change   connector.Change
	err      error
	secretID string // the sealed new password, for its owner
	// secretOwner is whom secretID is sealed for, when not the entry's requester (the kept
	// password a rollback of alternating users delivers again).
	secretOwner string
	// quiet: the entry is a step of a larger action, which reports it: no message of its own.
	quiet bool
}

// execute runs approved request id: it moves it approved → executing (so it runs once however
// many callers arrive), journals the entry write-ahead, runs the action and reports.
func (b *Bot) execute(ctx context.Context, id uint64) {
	r, err := b.store.TransitionRequest(id, []string{approvals.Approved}, store.Step{State: approvals.Executing, By: "bot"}, nil)
	if err != nil {
		if !errors.Is(err, store.ErrConflict) {
			b.log.Error("start request", "id", id, "err", err)
		}
		return
	}
	b.refreshCard(ctx, r)
	if err := b.stillApproved(ctx, r); err != nil {
		b.failRequest(ctx, r, 0, err.Error())
		return
	}
	switch r.Action {
	case commands.Rollback:
		b.executeRollback(ctx, r)
		return
	case commands.Schedule:
		b.executeSchedule(ctx, r)
		return
	case commands.Unschedule:
		b.executeUnschedule(ctx, r)
		return
	}
	m, err := b.connector(r.Connector)
	if err != nil {
		b.failRequest(ctx, r, 0, capital(err.Error()))
		return
	}
	if h := m.Health(); h.Down {
		// Known not to answer: fail now, with nothing sent, rather than wait out a timeout
		// and leave an uncertain entry behind.
		b.failRequest(ctx, r, 0, downSentence(r.Connector, h)+" Nothing was changed; ask again once it answers")
		return
	}
	args, deliveries := r.Args, []store.Delivery(nil)
	if r.Action == commands.RotatePassword {
		if d := b.deliveryFor(r.Connector, target(r.Args)); d != nil && d.Alternating {
			defer b.pairs.lock(d.key())() // the pair's current user must not change under us
		}
		pctx, cancel := context.WithTimeout(ctx, b.cfg.ActionTimeout)
		args, deliveries, err = b.planDelivery(pctx, m, r.Args)
		cancel()
		if err != nil {
			b.failRequest(ctx, r, 0, capital(sentence(err)))
			return
		}
	}
	unlock, why, ok := b.lockTarget(r.Connector, target(args))
	if !ok {
		b.failRequest(ctx, r, 0, why)
		return
	}
	defer unlock()
	// actx bounds the work on MongoDB; reporting afterwards uses ctx, which the action's
	// timeout does not end.
	actx, cancel := context.WithTimeout(ctx, b.cfg.ActionTimeout)
	defer cancel()
	if m.ServerLine() == "" {
		_, _ = m.Discover(actx) // now and then: the journal names the server it acted on
	}
	e := store.Entry{RequestID: r.ID, Requester: r.Requester, Approvers: approvals.Approvers(votes(r.Votes)),
		Connector: r.Connector, Action: r.Action, Args: args, Server: m.ServerLine(), Deliveries: deliveries, AutoApproved: r.AutoApproved}
	if args["twin_of"] != "" {
		note, err := b.createTwin(actx, m, e, args)
		if err != nil {
			b.failRequest(ctx, r, 0, capital(sentence(err)))
			return
		}
		e.Args["twin_note"] = note
	}
	// The state before, read now, journaled with the write-ahead step: reconciliation after a
	// crash compares with it.
	if pre, err := m.State(actx, target(args)); err == nil {
		e.Before, _ = json.Marshal(pre)
		if err := lockedSince(args, pre); err != nil {
			b.failRequest(ctx, r, 0, capital(sentence(err)))
			return
		}
		if err := b.stillLowRisk(ctx, r, args, pre); err != nil {
			b.failRequest(ctx, r, 0, capital(sentence(err)))
			return
		}
	}
	// The entry is claimed as it is created, and stays claimed until its outcome is recorded
	// or checked, so the periodic check never runs beside it.
	e, release, err := b.beginClaimed(func() (store.Entry, error) { return b.store.BeginEntry(e, "bot") })
	if err != nil {
		b.log.Error("journal write-ahead", "request", r.ID, "err", err)
		b.failRequest(ctx, r, 0, fmt.Sprintf("the journal could not record it (%v), so it was not run", err))
		return
	}
	defer release()
	r, _ = b.store.UpdateRequest(r.ID, func(x *store.Request) error { x.EntryID = e.ID; return nil })
	out := b.apply(actx, m, e)
	if maybeApplied(out.err) || errors.Is(out.err, connector.ErrRecreateFailed) {
		b.uncertain(ctx, r.Card, e, out.err)
		return
	}
	b.finish(ctx, r, e, out)
}

// uncertain handles an action whose server stopped answering mid-way: a timeout or a lost
// connection says nothing of whether the change was applied. The entry stays executing (with
// its sealed password, if any), the requester is told, and reconciliation decides from the
// server's state: now if it answers again, otherwise every minute and at every start.
func (b *Bot) uncertain(ctx context.Context, card store.MessageRef, e store.Entry, err error) {
	why := afterOutage
	m := text(":hourglass: Journal #%d (%s): MongoDB stopped answering in the middle (%s) Whether it took effect is being checked against the server; you will be told.",
		e.ID, summary(e.Action, e.Connector, e.Args), sentence(err))
	if errors.Is(err, connector.ErrRecreateFailed) {
		why = afterRecreate
		m = text(":rotating_light: Journal #%d (%s): %s The bot keeps trying from the journal and tells you when it is back.",
			e.ID, summary(e.Action, e.Connector, e.Args), sentence(err))
	}
	b.tell(ctx, card, b.told(e), m)
	cur, gerr := b.store.Entry(e.ID)
	if gerr != nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	b.reconcileEntry(rctx, cur, why)
}

// apply calls the connector for entry e. The new password of a rotation is sealed before the
// server is asked to set it; that of a new user right after it exists.
func (b *Bot) apply(ctx context.Context, m Mongo, e store.Entry) outcome {
	u := target(e.Args)
	var out outcome
	var sealedPw secret.String // the new password, as sealed for its owner
	seal := func(pw secret.String) error {
		sealedPw = pw
		// The recovery copy lives until the outcome is settled; the owner's reveal window
		// starts when they are offered it (finish, or reconciliation).
		id, err := b.store.PutSecret(e.Requester, []byte(pw.Reveal()), store.RecoveryTTL)
		if err != nil {
			return fmt.Errorf("the new password could not be sealed in the store (%v), so nothing was changed", err)
		}
		out.secretID = id
		_, err = b.store.UpdateEntry(e.ID, func(x *store.Entry) error { x.PendingSecret = id; return nil })
		return err
	}
	journalPre := func(pre connector.UserState) error {
		raw, _ := json.Marshal(pre)
		_, err := b.store.UpdateEntry(e.ID, func(x *store.Entry) error { x.Before = raw; return nil })
		if err != nil {
			return fmt.Errorf("the user's pre-image could not be journaled (%v), so it was not dropped", err)
		}
		return nil
	}
	switch e.Action {
	case commands.RotatePassword:
		out.change, _, out.err = m.RotatePassword(ctx, connector.RotateOptions{User: u,
			KillSessions: e.Args["kill_sessions"] == "true", LogoutAll: e.Args["logout_all"] == "true",
			BeforeDrop: journalPre, BeforeApply: seal})
		if out.err != nil && out.secretID != "" && maybeApplied(out.err) {
			// A timeout or a lost connection says nothing of whether the server applied it:
			// the sealed password decides.
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			ok := m.Login(lctx, u, sealedPw) == nil
			var after connector.UserState
			var rerr error
			if ok {
				after, rerr = m.State(lctx, u) // the state the change left, for the journal
			}
			cancel()
			if ok && rerr == nil {
				out.err = nil
				out.change.After = after
				out.change.Notes = append(out.change.Notes, "the server did not confirm the change, but logging in with the new password works")
				out.change.NoUndo = "the old password was never stored"
			}
		}
		if errors.Is(out.err, connector.ErrRecreateFailed) {
			out = b.recover(ctx, m, e, u, out, sealedPw)
		}
		if t := e.Args["twin_note"]; t != "" {
			out.change.Notes = append([]string{t}, out.change.Notes...)
		}
	case commands.GrantRole, commands.RevokeRole:
		role, err := connector.ParseRole(e.Args["role"])
		if err != nil {
			return outcome{err: err}
		}
		if e.Action == commands.GrantRole {
			out.change, out.err = m.GrantRole(ctx, u, role)
		} else {
			out.change, out.err = m.RevokeRole(ctx, u, role)
		}
	case commands.CreateReadOnlyUser:
		out.change, _, out.err = m.CreateReadOnlyUser(ctx, u, e.Args["db"], seal)
	case commands.Access:
		roles, err := accessRoles(e.Args)
		if err != nil {
			return outcome{err: err}
		}
		d, _ := commands.ParseDuration(e.Args["for"])
		owner := connector.AccessOwner{ChatUser: e.Requester, Request: e.RequestID, Until: b.now().Add(d)}
		out.change, _, out.err = m.CreateAccessUser(ctx, u, roles, owner, seal)
	case commands.DropUser:
		out.change, out.err = m.DropUser(ctx, u, journalPre)
	case commands.LockUser:
		out.change, out.err = m.LockUser(ctx, u)
	case commands.UnlockUser:
		out.change, out.err = m.UnlockUser(ctx, u, b.restrictionsBeforeLock(e.Connector, u))
	default:
		out.err = fmt.Errorf("the bot does not know the action %q", e.Action)
	}
	return out
}

// recover answers a --logout-all rotation whose user was dropped and not re-created: it tries
// once more, at once, from the pre-image the connector returned (and the journal holds), with
// the same password, already sealed for the owner: whichever attempt took, logging in with it
// tells. If that fails too the entry stays executing, and reconciliation re-creates the user
// from the journal later, with that password again.
func (b *Bot) recover(ctx context.Context, m Mongo, e store.Entry, u connector.UserRef, out outcome, pw secret.String) outcome {
	pre := out.change.Before
	ch, _, err := m.Recreate(ctx, u, pre, pw)
	if err != nil {
		b.log.Error("re-create after --logout-all", "entry", e.ID, "err", err)
		return out
	}
	ch.Action, ch.Before = commands.RotatePassword, pre
	ch.NoUndo = "the old password was never stored"
	ch.Notes = append([]string{"re-creating the user after the drop failed once (" + sentence(out.err) + "); the second attempt, from its journaled pre-image, worked: every existing connection loses its authentication at its next command"}, ch.Notes...)
	return outcome{change: ch, secretID: out.secretID}
}

func maybeApplied(err error) bool {
	return errors.Is(err, connector.ErrTimeout) || errors.Is(err, connector.ErrUnavailable)
}

// restrictionsBeforeLock finds, in the journal, the restrictions u had before the bot's most
// recent lock of it, so that unlock-user puts exactly those back. Nil when the journal has
// no such lock in force (the user was locked some other way, or the bot's lock was already
// undone): the lock is then simply removed.
func (b *Bot) restrictionsBeforeLock(conn string, u connector.UserRef) []connector.Restriction {
	e, ok, err := b.store.LatestLock(conn, u.User, u.DB)
	if err != nil || !ok {
		return nil
	}
	var ch connector.Change
	if json.Unmarshal(e.Undo, &ch) == nil && ch.Undo != nil {
		return ch.Undo.Restrictions
	}
	return nil
}

// finish records the outcome of entry e (of request r) and tells everyone concerned.
func (b *Bot) finish(ctx context.Context, r store.Request, e store.Entry, out outcome) {
	ch := out.change
	state, errText := store.EntryDone, ""
	if out.err != nil {
		state, errText = store.EntryFailed, sentence(out.err)
	}
	if out.err == nil && e.Args["delivery"] == "alternating" && e.Args["redeliver"] == "" {
		b.alternatingUndo(e, &ch)
	}
	var undoAt time.Time
	if d, err := commands.ParseDuration(e.Args["for"]); err == nil && out.err == nil && ch.Undo != nil {
		undoAt = b.now().Add(d)
		ch.Notes = append(ch.Notes, b.temporaryNote(e, clock(undoAt)))
	}
	e, err := b.store.TransitionEntry(e.ID, []string{store.EntryExecuting}, store.Step{State: state, By: "bot"}, func(x *store.Entry) {
		x.UndoAt = undoAt
		if ch.Before.Exists || len(x.Before) == 0 {
			x.Before, _ = json.Marshal(ch.Before)
		}
		x.After, _ = json.Marshal(ch.After)
		if out.err == nil {
			x.Undo, _ = json.Marshal(ch)
		}
		x.Notes = append(append([]string{}, ch.Notes...), ch.Warnings...)
		x.Error = errText
		x.PendingSecret = ""
		if out.err == nil && out.secretID != "" && len(x.Deliveries) > 0 {
			// In the transaction that records the change: from here the password is an
			// obligation to deliver, which a crash cannot lose.
			x.DeliverySecret, x.DeliveryOwner, x.DeliverAt = out.secretID, orDefault(out.secretOwner, e.Requester), b.now()
		}
	})
	if err != nil {
		// The entry stays executing: start-up reconciliation settles it.
		b.log.Error("journal outcome", "entry", e.ID, "err", err)
	}
	if out.err != nil && out.secretID != "" {
		_, _ = b.store.TakeSecret(out.secretID, e.Requester) // never set: forget it
	}
	if !undoAt.IsZero() && err == nil {
		b.scheduleTemporary(e.ID, undoAt, undoAt)
	}
	if err == nil && e.AwaitsDelivery() {
		b.scheduleDelivery(e.ID, b.now().Add(deliveryRetry(1))) // the obligation, from its commit on
	}
	b.log.Info("action", "entry", e.ID, "action", e.Action, "connector", e.Connector, "state", state)
	b.cfg.Metrics.Action(e.Connector, metricAction(e), state, b.now().Sub(e.CreatedAt))
	if r.ID != 0 {
		if r2, ok := b.closeRequest(ctx, r.ID, out.err == nil, errText); ok {
			r = r2
		}
	}
	if !out.quiet {
		b.report(ctx, r, e, ch, out)
	}
}

// metricAction is the action label of e in metrics: the bot's own end of a temporary action
// is counted apart from rollbacks people asked for.
func metricAction(e store.Entry) string {
	if e.Args["automatic"] != "" {
		return "temporary-end"
	}
	return e.Action
}

// report posts the result in the card's thread (or the approvals channel) with Roll back
// where there is an undo, tells the requester, and hands a new password to its owner.
func (b *Bot) report(ctx context.Context, r store.Request, e store.Entry, ch connector.Change, out outcome) {
	if out.err == nil && len(e.Deliveries) > 0 {
		// Delivered first (one attempt at every target), so that the result says where the
		// password went and what was checked.
		e = b.handOver(ctx, e.ID)
		m := b.result(e, ch, nil)
		m.Blocks = insertBefore(m.Blocks, deliveryResult(e, b.deliveryFor(e.Connector, deliveredUser(e))))
		b.tell(ctx, r.Card, b.told(e), m)
		return
	}
	b.tell(ctx, r.Card, b.told(e), b.result(e, ch, out.err))
	if out.err == nil && out.secretID != "" {
		b.offerReveal(ctx, e, out.secretID)
	}
}

// told is who hears about entry e: its requester, or for the bot's own end of a temporary
// action, the requester of the action it ended.
func (b *Bot) told(e store.Entry) string {
	if e.Requester != botActor {
		return e.Requester
	}
	if orig, err := b.store.Entry(e.RollbackOf); err == nil {
		return orig.Requester
	}
	return ""
}

// tell posts m in the thread of card (top level in the approvals channel when there is no
// card) and sends it to user directly.
func (b *Bot) tell(ctx context.Context, card store.MessageRef, user string, m Message) {
	m.Thread = card.TS
	if _, err := b.chat.Post(ctx, orDefault(card.Channel, b.cfg.Channel), m); err != nil {
		b.log.Error("post", "err", err)
	}
	m.Thread = ""
	if user != "" {
		b.dm(ctx, user, m)
	}
}

// closeRequest moves request id from executing to done or failed, as its entry ended, and
// updates its card. It returns the request as stored, and false if it was not executing.
func (b *Bot) closeRequest(ctx context.Context, id uint64, ok bool, note string) (store.Request, bool) {
	next := approvals.Failed
	if ok {
		next = approvals.Done
	}
	r, err := b.store.TransitionRequest(id, []string{approvals.Executing}, store.Step{State: next, By: "bot", Note: note}, nil)
	if err != nil {
		return r, false
	}
	b.refreshCard(ctx, r)
	return r, true
}

// result is the message that says what an entry did.
func (b *Bot) result(e store.Entry, ch connector.Change, err error) Message {
	s := summary(e.Action, e.Connector, e.Args)
	if err != nil {
		m := Message{Text: fmt.Sprintf("Journal #%d: %s failed", e.ID, s), Blocks: []Block{
			{Text: fmt.Sprintf(":x: *Failed*, journal #%d: %s\n%s", e.ID, s, sentence(err))},
		}}
		if why := e.Args["reason"]; why != "" {
			m.Blocks = append(m.Blocks, Block{Context: "Reason: " + esc(why)})
		}
		m.Blocks = append(m.Blocks, b.emulatedNote(e.Connector)...)
		return m
	}
	fields := []Field{{"Before", esc(ch.Before.Describe())}, {"After", esc(ch.After.Describe())}}
	if why := e.Args["reason"]; why != "" {
		fields = append(fields, Field{"Reason", esc(why)})
	}
	if e.AutoApproved != "" {
		fields = append(fields, Field{"Approved by", "policy: `" + code(e.AutoApproved) + "`"})
	}
	if len(ch.Notes) > 0 {
		fields = append(fields, Field{"Notes", esc(strings.Join(ch.Notes, "\n"))})
	}
	if len(ch.Warnings) > 0 {
		fields = append(fields, Field{"Warnings", esc(strings.Join(ch.Warnings, "\n"))})
	}
	m := Message{Text: fmt.Sprintf("Journal #%d: %s done", e.ID, s), Blocks: []Block{
		{Text: fmt.Sprintf(":white_check_mark: *Done*, journal #%d: %s", e.ID, s)}, {Fields: fields}}}
	m.Blocks = append(m.Blocks, b.emulatedNote(e.Connector)...)
	if ch.Undo != nil {
		m.Blocks = append(m.Blocks, Block{Context: "Roll back will " + esc(ch.Undo.Describe) + ", under the policy of " + performs(ch.Undo)},
			Block{Buttons: []Button{{Text: TextRollback, Action: ActRollback, Value: buttonValue(e.ID, e.Token)}}})
	} else if ch.NoUndo != "" {
		m.Blocks = append(m.Blocks, Block{Context: "No rollback: " + esc(ch.NoUndo)})
	}
	return m
}

// failRequest ends request r as failed before anything was run, and says so.
func (b *Bot) failRequest(ctx context.Context, r store.Request, entry uint64, why string) {
	r2, err := b.store.TransitionRequest(r.ID, []string{approvals.Executing, approvals.Approved}, store.Step{State: approvals.Failed, By: "bot", Note: why}, nil)
	if err == nil {
		b.refreshCard(ctx, r2)
	}
	b.dm(ctx, r.Requester, text("Request #%d (%s) failed: %s.", r.ID, summary(r.Action, r.Connector, r.Args), strings.TrimSuffix(why, ".")))
}

// offerReveal sends the owner of entry e's new password a private message with Reveal
// password. The owner's window starts now: the sealed copy is given the reveal TTL from this
// moment. Earlier passwords of the same user still waiting to be revealed no longer work: they
// are deleted, and their buttons say which entry replaced them.
func (b *Bot) offerReveal(ctx context.Context, e store.Entry, secretID string) {
	owner, u, conn := e.Requester, target(e.Args), e.Connector
	if err := b.store.ExtendSecret(secretID, owner, b.cfg.RevealTTL); err != nil {
		b.log.Error("start the reveal window", "err", err)
	}
	label := conn + "/" + u.String()
	gone, err := b.store.SupersedeSecrets(label, secretID, e.ID)
	if err != nil {
		b.log.Error("supersede earlier passwords", "err", err)
	}
	for _, o := range gone {
		// The older offer's button would show a password that no longer works: say so there.
		if o.TS != "" {
			if err := b.chat.Update(ctx, Ref{Channel: o.Channel, TS: o.TS}, text("A later change (journal #%d) replaced this password of `%s` on %s: it no longer works and is not kept. Use the newer one.", e.ID, code(u.String()), esc(conn))); err != nil {
				b.log.Warn("mark a superseded offer", "err", err)
			}
		}
	}
	offered := b.dm(ctx, owner, Message{Text: fmt.Sprintf("A new password for %s on %s is ready", esc(u.String()), esc(conn)), Blocks: []Block{
		{Text: fmt.Sprintf(":key: A new password for `%s` on *%s* is ready. Only you can reveal it, once, until %s; then it is gone for good.",
			code(u.String()), esc(conn), clock(b.now().Add(b.cfg.RevealTTL)))},
		{Buttons: []Button{{Text: TextReveal, Action: ActReveal, Value: secretID, Style: "primary"}}},
	}})
	if offered.TS != "" {
		if err := b.store.NoteOffer(label, secretID, offered.Channel, offered.TS); err != nil {
			b.log.Warn("note where a password was offered", "err", err)
		}
	}
	b.refreshHome(ctx, owner)
}

// reveal shows a sealed password to the one who clicked, if they own it and may still use
// the bot, once. It delivers first and deletes after: a failed delivery leaves the password
// sealed and the button working. One reveal of a secret at a time, so two fast clicks
// cannot both deliver it.
func (b *Bot) reveal(ctx context.Context, c Click) {
	defer b.reveals.lock(c.Value)()
	// Once across replicas too: the secret is claimed in the shared journal while it is
	// shown and deleted (nothing to claim on bbolt, where the lock above is enough).
	release, err := b.store.Claim("reveal/" + c.Value)
	if err != nil {
		b.log.Warn("claim a password to reveal it", "err", err)
		if errors.Is(err, store.ErrClaimed) {
			b.private(ctx, c.Channel, c.User, text("This password is being revealed by another press of the button right now; if it does not appear, press Reveal password again in a moment."))
		} else {
			b.private(ctx, c.Channel, c.User, text("The journal could not be reached to reveal the password (%v); it is still sealed: press Reveal password again in a moment.", err))
		}
		return
	}
	defer release()
	if _, err := b.mayRequest(ctx, c.User); err != nil {
		b.refusedClick(c, store.RefusedNotAllowed, fmt.Sprintf("Sorry, %v. The password stays sealed until it expires.", err))
		b.private(ctx, c.Channel, c.User, text("Sorry, %v. The password stays sealed until it expires.", err))
		if errors.Is(err, approvals.ErrNotAllowed) {
			b.log.Warn("reveal refused: the owner lost access", "user", c.User)
			b.announce(ctx, fmt.Sprintf("<@%s> pressed Reveal password but may no longer use the bot, so the password was not shown; it expires unrevealed. Rotate the password again if an application needs a new one.", c.User))
		}
		return
	}
	pw, err := b.store.RevealSecret(c.Value, c.User)
	var msg string
	switch {
	case err == nil:
		m := Message{Text: "Your new password", Blocks: []Block{
			{Text: "Your new password (shown once; it is no longer stored anywhere, and this message disappears when you reload):"},
			{Text: "```" + string(pw) + "```"},
		}}
		if err := b.chat.Ephemeral(ctx, c.Channel, c.User, m); err != nil {
			b.log.Error("reveal: delivery failed; the password stays sealed", "err", err)
			b.private(ctx, c.Channel, c.User, text("The password could not be shown just now (%v); it is still sealed: press Reveal password again.", err))
			return
		}
		// Deleted, and the reveal kept in the audit trail (who and when, never the value).
		if err := b.store.Revealed(c.Value, c.User); err != nil {
			b.log.Error("reveal: delete after delivery", "err", err)
		}
		msg = fmt.Sprintf("Revealed to <@%s> %s; it is no longer stored.", c.User, clock(b.now()))
	case errors.Is(err, store.ErrNotOwner):
		b.refusedClick(c, store.RefusedNotOwner, "This password is not for you: only the person it was made for can reveal it.")
		b.private(ctx, c.Channel, c.User, text("This password is not for you: only the person it was made for can reveal it."))
		return
	case errors.Is(err, store.ErrNotOffered):
		why := "This password is one the bot keeps for itself (for a delivery or a recovery), not one offered to you: it is not shown. Nothing was revealed."
		b.log.Warn("reveal refused: not an offered password", "user", c.User)
		b.refusedClick(c, store.RefusedNotOwner, why)
		b.private(ctx, c.Channel, c.User, text("%s", why))
		return
	case errors.Is(err, store.ErrExpired):
		msg = "This password expired before it was revealed and is gone; rotate the password again to get a new one."
	case errors.Is(err, store.ErrNotFound):
		msg = "This password was already revealed (or has expired) and is gone; rotate the password again if you need a new one."
		if by := b.store.SupersededBy(c.Value); by != 0 {
			msg = fmt.Sprintf("A later change (journal #%d) replaced this password: it no longer works, so it is not shown. Use the newer one.", by)
		}
	default:
		b.log.Error("reveal", "err", err)
		msg = "The password could not be read from the store: " + err.Error()
	}
	if c.Message.TS != "" {
		if err := b.chat.Update(ctx, c.Message, text("%s", msg)); err != nil {
			b.log.Warn("update reveal message", "err", err)
		}
	} else {
		b.private(ctx, c.Channel, c.User, text("%s", msg))
	}
}

// HandleClick does what a button press asks. Nothing in a click is trusted: the value names
// a record and carries its token, and who may do what is judged from the journal and the
// policy now.
func (b *Bot) HandleClick(ctx context.Context, c Click) {
	if !b.enter(ctx, c.Channel, c.User, c.Key) {
		return
	}
	defer b.done()
	defer b.recoverFor(ctx, c.Channel, c.User, "click")
	b.log.Info("click", "user", c.User, "action", c.Action)
	switch c.Action {
	case ActApprove, ActDeny:
		b.vote(ctx, c, c.Action == ActApprove)
	case ActRollback:
		id, token, ok := parseButton(c.Value)
		if !ok {
			b.refuseClick(ctx, c, store.RefusedForged, "This Roll back button does not name a journal entry (it may come from an older version of the bot); use `"+b.cfg.Slash+" rollback <journal-id>`.")
			return
		}
		if e, err := b.store.Entry(id); err != nil || !store.TokenMatches(e.Token, token) {
			b.refuseClick(ctx, c, store.RefusedForged, fmt.Sprintf("This Roll back button does not belong to journal #%d as the journal knows it (a stale or forged button).", id))
			return
		}
		who, err := b.mayRequest(ctx, c.User)
		if err != nil {
			b.refusedClick(c, store.RefusedNotAllowed, fmt.Sprintf("Sorry, %v.", err))
			b.private(ctx, c.Channel, c.User, text("Sorry, %v.", err))
			return
		}
		b.startRollback(ctx, c.Channel, who, id, "")
	case ActReveal:
		b.reveal(ctx, c)
		b.refreshHome(ctx, c.User)
	case ActCancel, ActAccessEnd:
		id, token, ok := parseButton(c.Value)
		r, err := b.store.Request(id)
		if !ok || err != nil || !store.TokenMatches(r.Token, token) {
			b.refuseClick(ctx, c, store.RefusedForged, "This button does not belong to a request as the journal knows it (a stale or forged button).")
			return
		}
		who, err := b.mayRequest(ctx, c.User)
		if err != nil {
			b.refusedClick(c, store.RefusedNotAllowed, fmt.Sprintf("Sorry, %v.", err))
			b.private(ctx, c.Channel, c.User, text("Sorry, %v.", err))
			return
		}
		in := Invocation{User: c.User, Channel: c.Channel}
		if c.Action == ActCancel {
			b.cancel(ctx, in, id)
		} else {
			b.accessEnd(ctx, in, who, id)
		}
	default:
		b.refuseClick(ctx, c, store.RefusedUnknown, "This button is not one the bot knows.")
	}
}
