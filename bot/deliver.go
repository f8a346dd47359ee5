package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"mongobot/commands"
	"mongobot/connector"
	"mongobot/delivery"
	"mongobot/secret"
	"mongobot/store"
)

// Target is one place a rotated password is delivered to, where applications read it: a
// Vault secret, a Kubernetes Secret, a command. The adapters under delivery/ have it.
type Target interface {
	// Describe names the place, without secrets: the journal records deliveries by it.
	Describe() string
	// Deliver writes c with optimistic concurrency and says what it wrote ("version 7").
	Deliver(ctx context.Context, c delivery.Credential) (version string, err error)
	// Verify reads version back and says how it checked, or why it could not.
	Verify(ctx context.Context, c delivery.Credential, version string) (how string, err error)
}

// Delivery says where the password of one user, or of a pair of alternating users, goes.
type Delivery struct {
	Connector string
	// Users is the one user, or the two alternating users (the first the one applications
	// use before the bot has delivered either).
	Users       []connector.UserRef
	Alternating bool
	// Reveal lets the owner (requester, schedule owner) also reveal the password once.
	Reveal  bool
	Targets []Target
}

// key names d in the store (alternating pairs) and in locks.
func (d *Delivery) key() string {
	names := make([]string, len(d.Users))
	for i, u := range d.Users {
		names[i] = u.String()
	}
	return d.Connector + "/" + strings.Join(names, "+")
}

// where is the list of d's targets, in words.
func (d *Delivery) where() string {
	var ts []string
	for _, t := range d.Targets {
		ts = append(ts, t.Describe())
	}
	return strings.Join(ts, "; ")
}

// deliveryFor is the delivery of user u of connector conn, nil when its password is not
// delivered anywhere.
func (b *Bot) deliveryFor(conn string, u connector.UserRef) *Delivery {
	for i := range b.cfg.Deliveries {
		d := &b.cfg.Deliveries[i]
		if d.Connector == conn && slices.Contains(d.Users, u) {
			return d
		}
	}
	return nil
}

// pairNow is the user of alternating pair d that applications use now, and the pair's record.
func (b *Bot) pairNow(d *Delivery) (connector.UserRef, store.Pair, error) {
	p, ok, err := b.store.Pair(d.key())
	if err != nil {
		return connector.UserRef{}, p, err
	}
	cur := d.Users[0]
	if ok {
		for _, u := range d.Users {
			if u.String() == p.Current.User {
				cur = u
			}
		}
	}
	return cur, p, nil
}

// other is the user of pair d that is not u.
func (d *Delivery) other(u connector.UserRef) connector.UserRef {
	if d.Users[0] == u {
		return d.Users[1]
	}
	return d.Users[0]
}

// planDelivery prepares the arguments and the journal's delivery records of a rotation of the
// user args name, before anything is journaled: for alternating users it picks the one
// applications do not use now (whichever of the two was named), and says when it must first
// be created as a twin of the other. Nil records: the user's password is not delivered.
func (b *Bot) planDelivery(ctx context.Context, m Mongo, args map[string]string) (map[string]string, []store.Delivery, error) {
	d := b.deliveryFor(m.Name(), target(args))
	if d == nil {
		return args, nil, nil
	}
	args = maps.Clone(args)
	if d.Alternating {
		if err := b.pairSettled(d, args); err != nil {
			return nil, nil, err
		}
		cur, _, err := b.pairNow(d)
		if err != nil {
			return nil, nil, fmt.Errorf("the journal could not say which of %s applications use now (%v)", d.key(), err)
		}
		next := d.other(cur)
		args["user"], args["authdb"], args["replaces"] = next.User, next.DB, cur.String()
		args["delivery"] = "alternating"
		st, err := m.State(ctx, next)
		if err != nil {
			return nil, nil, err
		}
		if !st.Exists {
			args["twin_of"] = cur.String()
		}
	} else {
		args["delivery"] = "single"
	}
	var ds []store.Delivery
	for i, t := range d.Targets {
		ds = append(ds, store.Delivery{Target: t.Describe(), Index: i, State: store.DeliveryPending})
	}
	return args, ds, nil
}

// lockedPair refuses a rotation of an alternating pair whose new password no application could
// use: the user it changes is locked, or does not exist yet and would be created as a twin of
// a locked one (a twin takes the lock too, or rotating would undo the lock). Rotating anyway
// leaves a password no target can be given, a twin locked with no lock entry that would
// ever end it, and an alarm at every run. nst is next's state, cst cur's. It is judged when
// a rotation is asked (previewDelivery) and, when it runs, just before the twin is made
// (createTwin) and once the rotation holds its user (lockedSince): a check while planning
// would only repeat those.
func lockedPair(cur connector.UserRef, cst connector.UserState, next connector.UserRef, nst connector.UserState) error {
	switch {
	case nst.Exists && nst.Locked():
		return fmt.Errorf("the user this rotation would change and give applications, %s, is locked, so no application could log in with its new password. Rotate once its lock has ended, or unlock it first (unlock-user)", next)
	case !nst.Exists && cst.Exists && cst.Locked():
		return fmt.Errorf("the user applications use now, %s, is locked, and %s would be created as its twin, locked too, so no application could log in with the new password. Rotate once the lock of %s has ended; unlocking it first would let its current password log in again", cur, next, cur)
	}
	return nil
}

// lockedSince refuses, once the rotation holds its user (no lock-user of it can start from
// here on), a rotation of an alternating pair whose user was locked since it was planned.
// pre is the user's state read then.
func lockedSince(args map[string]string, pre connector.UserState) error {
	if args["delivery"] != "alternating" {
		return nil
	}
	return lockedPair(connector.UserRef{}, connector.UserState{}, target(args), pre)
}

// pairSettled refuses a rotation of alternating pair d that would be unsafe now: while a
// delivery to the pair is unfinished, some applications may already use the user that
// rotation would change; and --kill-sessions or --logout-all would act on the user
// applications do not use, not on the one named.
func (b *Bot) pairSettled(d *Delivery, args map[string]string) error {
	for _, f := range []string{"kill_sessions", "logout_all"} {
		if args[f] == "true" {
			return fmt.Errorf("users %s and %s alternate: a rotation changes the one applications do not use, so --%s would not act on %s. To cut off %s, lock it (lock-user), or rotate twice: the second rotation changes it",
				d.Users[0], d.Users[1], strings.ReplaceAll(f, "_", "-"), target(args), target(args))
		}
	}
	es, err := b.store.Undelivered()
	if err != nil {
		return fmt.Errorf("the journal could not say whether a delivery to %s is unfinished (%v)", d.key(), err)
	}
	for _, e := range es {
		if e.Connector == d.Connector && slices.Contains(d.Users, deliveredUser(e)) {
			return fmt.Errorf("the delivery of journal #%d (%s) is not finished, and applications reading a target that has it may already use %s: the pair's next rotation waits for it. The bot retries it (next attempt %s); `mongobot journal show %d` says where it stands",
				e.ID, deliveredUser(e), deliveredUser(e), clock(e.DeliverAt), e.ID)
		}
	}
	return nil
}

// actionCreateTwin is the journal's name for the bot creating the second user of a pair of
// alternating users, before the first rotation of the pair: its own entry, journaled
// write-ahead like any change, so that a rotation failing after it still leaves the creation
// accounted for.
const actionCreateTwin = "create-twin"

// createTwin creates the user the first rotation of an alternating pair changes (args name
// it, and the user it is the twin of), with the roles, custom data and restrictions of the
// one applications use, as part of the approved rotation (base carries its request or
// schedule). Its own password is random and never kept: the rotation gives it the one
// applications get. It says what it did, for the rotation's result.
func (b *Bot) createTwin(ctx context.Context, m Mongo, base store.Entry, args map[string]string) (string, error) {
	model, err := parseRef(args["twin_of"])
	if err != nil {
		return "", err
	}
	u := target(args)
	if st, err := m.State(ctx, u); err != nil || st.Exists {
		return "", err // made already (a retry after a failed rotation): the rotation goes on
	}
	mst, err := m.State(ctx, model)
	if err != nil {
		return "", err
	}
	if !mst.Exists {
		return "", fmt.Errorf("%s, the user applications use, does not exist on %s, so its twin %s cannot be made from it", model, m.Name(), u)
	}
	if err := lockedPair(model, mst, u, connector.UserState{}); err != nil {
		return "", err // locked since the rotation was planned
	}
	e := store.Entry{RequestID: base.RequestID, ScheduleID: base.ScheduleID, Requester: base.Requester, Approvers: base.Approvers,
		Connector: base.Connector, Action: actionCreateTwin, Server: base.Server,
		Args: map[string]string{"user": u.User, "authdb": u.DB, "twin_of": model.String()}}
	e.Before, _ = json.Marshal(connector.UserState{})
	e, release, err := b.beginClaimed(func() (store.Entry, error) {
		st := b.store
		if base.ScheduleID != 0 { // a scheduled run's: timer work, fenced by the term
			var err error
			if st, err = b.timerStore(); err != nil {
				return store.Entry{}, err
			}
		}
		return st.BeginEntry(e, "bot")
	})
	if err != nil {
		return "", fmt.Errorf("the journal could not record the twin's creation (%v), so nothing was run", err)
	}
	defer release()
	ch, _, err := m.Recreate(ctx, u, mst, secret.String{})
	if maybeApplied(err) || errors.Is(err, connector.ErrRecreateFailed) {
		// Whether it exists is for reconciliation to say; the rotation waits for it.
		b.uncertain(ctx, store.MessageRef{Channel: b.deliveryChannel(base)}, e, err)
		return "", fmt.Errorf("creating %s as the twin of %s was interrupted: %w", u, model, err)
	}
	note := fmt.Sprintf("created %s as the alternating twin of %s, with its roles (%s)", u, model, mst.Describe())
	if err != nil {
		note = ""
	}
	ch.NoUndo = "the twin is one of the pair applications alternate between; drop-user removes it"
	b.finish(ctx, store.Request{}, e, outcome{change: ch, err: err, quiet: true})
	if err != nil {
		return "", fmt.Errorf("creating %s as the twin of %s failed: %w", u, model, err)
	}
	return note, nil
}

// deliveredUser is the user whose login entry e delivers: the one it rotated, or for a
// rollback of an alternating rotation, the user it gives applications again.
func deliveredUser(e store.Entry) connector.UserRef {
	if r := e.Args["redeliver"]; r != "" {
		if u, err := parseRef(r); err == nil {
			return u
		}
	}
	return target(e.Args)
}

// handOver hands the password of finished entry id to its delivery targets (tried once now,
// then retried until done), and offers it for Reveal to its owner when the configuration
// allows. The entry got its DeliverySecret in the transaction that finished it, so a crash
// from here on leaves a delivery the next start resumes. It returns the entry as the first
// attempt left it. For alternating users the caller holds the pair's lock.
func (b *Bot) handOver(ctx context.Context, id uint64) store.Entry {
	e, err := b.store.Entry(id)
	if err != nil || !e.AwaitsDelivery() {
		return e
	}
	b.revealCopy(ctx, e)
	cur, err := b.store.UpdateEntry(e.ID, func(x *store.Entry) error {
		x.History = append(x.History, store.Step{State: "delivering", By: "bot", At: b.now(),
			Note: "the new password stays sealed until every target has it"})
		return nil
	})
	if err != nil {
		b.log.Error("journal the delivery", "entry", e.ID, "err", err)
		return e
	}
	b.supersedeDeliveries(ctx, cur)
	return b.attemptDelivery(ctx, cur.ID)
}

// offerOrDeliver is, for an entry settled as done after an interruption, what report is
// after a run: its password goes where it goes, or is offered for Reveal. Reconciliation may
// run inside an action that holds the pair's and the user's locks (an uncertain outcome
// checked at once), so the delivery is not attempted here: it is registered, and the timers
// attempt it within a second, taking the locks in order.
func (b *Bot) offerOrDeliver(ctx context.Context, e store.Entry, secretID string) {
	if len(e.Deliveries) == 0 {
		b.offerReveal(ctx, e, secretID)
		return
	}
	cur, err := b.store.Entry(e.ID)
	if err != nil {
		return
	}
	if cur.DeliverySecret == "" && secretID != "" && cur.State == store.EntryDone {
		cur, _ = b.store.UpdateEntry(e.ID, func(x *store.Entry) error {
			x.DeliverySecret, x.DeliveryOwner, x.DeliverAt = secretID, e.Requester, b.now()
			return nil
		})
	}
	if !cur.AwaitsDelivery() {
		return
	}
	b.scheduleDelivery(cur.ID, b.now())
	b.revealCopy(ctx, cur)
	b.announceTo(ctx, b.deliveryChannel(cur), fmt.Sprintf("Journal #%d: the new password of `%s` on %s goes to its targets now.",
		cur.ID, code(deliveredUser(cur).String()), esc(cur.Connector)))
}

// revealCopy offers the owner of e's delivered password a copy of their own, when its
// delivery allows a Reveal (reveal: owner): alive for the Reveal window only, while the
// delivery's copy lives until every target has it.
func (b *Bot) revealCopy(ctx context.Context, e store.Entry) {
	d := b.deliveryFor(e.Connector, deliveredUser(e))
	if d == nil || !d.Reveal || e.Args["redeliver"] != "" {
		return
	}
	if pw, err := b.store.PeekSecret(e.DeliverySecret, e.DeliveryOwner); err == nil {
		if sid, err := b.store.PutSecret(e.Requester, pw, b.cfg.RevealTTL); err == nil {
			b.offerReveal(ctx, e, sid)
		}
	}
}

// userDeliveryKey names the lock serializing deliveries of one user's passwords: two entries
// writing the same target at once could leave the older password there.
func userDeliveryKey(e store.Entry) string { return e.Connector + "/" + deliveredUser(e).String() }

// supersedeDeliveries ends the unfinished deliveries of earlier rotations of the user e
// rotated: e changed the password they carry, so it no longer works and must not reach
// applications. The journal says which they are, not memory: after a restart both may be
// loaded.
func (b *Bot) supersedeDeliveries(ctx context.Context, e store.Entry) {
	if e.Action != commands.RotatePassword {
		return
	}
	es, err := b.store.Undelivered()
	if err != nil {
		b.log.Error("list unfinished deliveries", "err", err)
		return
	}
	for _, old := range es {
		if old.ID < e.ID && old.Connector == e.Connector && deliveredUser(old) == deliveredUser(e) {
			func() {
				defer b.deliveryLocks.lock(userDeliveryKey(old))()
				b.supersede(ctx, old.ID, e.ID)
			}()
		}
	}
}

// supersede ends entry id's delivery because entry by changed the same user's password
// after it. The caller holds the user's delivery lock.
func (b *Bot) supersede(ctx context.Context, id, by uint64) {
	if cur, err := b.store.Entry(id); err != nil || !cur.AwaitsDelivery() {
		return // finished (or superseded) meanwhile: nothing to end, nothing to say
	}
	step := store.Step{State: "delivery superseded", By: "bot", At: b.now(),
		Note: fmt.Sprintf("journal #%d changed the password again before this one reached every target", by)}
	old, err := b.store.DropDelivery(id, store.DeliverySuperseded, step)
	if err != nil {
		b.log.Error("supersede a delivery", "entry", id, "err", err)
		return
	}
	b.forgetDelivery(id)
	b.announceTo(ctx, b.deliveryChannel(old), fmt.Sprintf("Journal #%d's password of `%s` on %s was never delivered everywhere; journal #%d replaced it, and its delivery replaces this one.",
		id, code(deliveredUser(old).String()), esc(old.Connector), by))
}

// laterRotation is the id of a rotation of the same user journaled after e that changed its
// password (0 when there is none): e's password no longer works. wait is true while such a
// rotation is still running: its outcome decides.
func (b *Bot) laterRotation(e store.Entry) (id uint64, wait bool, err error) {
	u := deliveredUser(e)
	var before uint64
	for {
		es, next, err := b.store.History(before, 100)
		if err != nil {
			return 0, false, err
		}
		for _, x := range es {
			if x.ID <= e.ID {
				return 0, false, nil
			}
			if x.Action != commands.RotatePassword || x.Connector != e.Connector || target(x.Args) != u {
				continue
			}
			switch x.State {
			case store.EntryDone, store.EntryRolledBack, store.EntryUnknown:
				// Unknown: a person must look; this older password is no safer to deliver.
				return x.ID, false, nil
			case store.EntryExecuting:
				return 0, true, nil
			}
		}
		if next == 0 {
			return 0, false, nil
		}
		before = next
	}
}

// untouched reports whether no target of e has been written yet.
func untouched(e store.Entry) bool {
	for _, d := range e.Deliveries {
		if d.State != store.DeliveryPending {
			return false
		}
	}
	return true
}

// loginWorks checks that u logs in with pw on e's connector. An error with stop set says it
// does not (delivering it would break applications); without, MongoDB could not tell now.
func (b *Bot) loginWorks(ctx context.Context, e store.Entry, u connector.UserRef, pw secret.String) (stop bool, err error) {
	m, err := b.connector(e.Connector)
	if err != nil {
		return false, err
	}
	lctx, cancel := context.WithTimeout(ctx, b.cfg.ActionTimeout)
	defer cancel()
	err = m.Login(lctx, u, pw)
	switch {
	case err == nil:
		return false, nil
	case maybeApplied(err):
		return false, err
	}
	var ce *connector.Error
	why := err.Error()
	if errors.As(err, &ce) {
		why = ce.Msg
	}
	return true, fmt.Errorf("the new password of %s no longer logs in (%s): the user was locked, dropped or changed since the rotation", u, strings.TrimSuffix(why, "."))
}

// attemptDelivery tries once every target of entry id that does not have its password yet,
// journaling each step, and finishes the delivery when all have it. What fails is retried
// later with backoff (the entry's DeliverAt), loudly. One attempt per user at a time; for
// alternating users the caller holds the pair's lock.
func (b *Bot) attemptDelivery(ctx context.Context, id uint64) store.Entry {
	e, err := b.store.Entry(id)
	if err != nil || !e.AwaitsDelivery() {
		return e
	}
	defer b.deliveryLocks.lock(userDeliveryKey(e))()
	// One attempt at a time across replicas too, however long a target takes: the user's
	// delivery is claimed in the shared journal for the attempt (nothing to claim on bbolt),
	// so the leader's takeover of an overdue delivery waits while another replica's attempt
	// runs, and starts at once if that replica died.
	release, err := b.store.Claim("delivery/" + userDeliveryKey(e))
	if err != nil {
		if !errors.Is(err, store.ErrClaimed) {
			b.log.Warn("claim a delivery", "entry", id, "err", err)
		}
		return e // being attempted elsewhere; the timers ask again
	}
	defer release()
	if e, err = b.store.Entry(id); err != nil || !e.AwaitsDelivery() {
		return e // finished meanwhile
	}
	later, wait, err := b.laterRotation(e)
	switch {
	case err != nil || wait:
		// A later rotation of the user is still running (or the journal cannot say): its
		// outcome decides whether this password still works. Ask again later.
		return b.deliveryFailed(ctx, e)
	case later != 0:
		b.supersede(ctx, id, later)
		e, _ = b.store.Entry(id)
		return e
	}
	if !e.TargetsPending() {
		return b.deliveryDone(ctx, e) // every target had it before a crash: finish
	}
	raw, err := b.store.PeekSecret(e.DeliverySecret, e.DeliveryOwner)
	if err != nil {
		// Without the sealed password nothing can be delivered, ever: say so once, loudly.
		b.forgetDelivery(id)
		e, _ = b.store.DropDelivery(id, "", store.Step{State: "delivery abandoned", By: "bot", At: b.now(), Note: "its sealed password is gone: " + err.Error()})
		b.deliveryAlarm(ctx, e, fmt.Sprintf(":rotating_light: Journal #%d: the sealed password to deliver is gone (%v). MongoDB has a password no target has: rotate `%s` again.", id, err, code(deliveredUser(e).String())))
		return e
	}
	u := deliveredUser(e)
	cred := delivery.Credential{Connector: e.Connector, User: u.User, Database: u.DB, Password: secret.New(string(raw)), Entry: e.ID}
	d := b.deliveryFor(e.Connector, u)
	if d != nil && d.Alternating && untouched(e) {
		// Delivering switches applications to u: only while its password logs in. The user
		// may have been locked, dropped or changed since the rotation.
		if stop, err := b.loginWorks(ctx, e, u, cred.Password); err != nil {
			if !stop {
				for i, rec := range e.Deliveries {
					if rec.State == store.DeliveryPending {
						b.noteDelivery(id, i, "", "", fmt.Errorf("whether the password still logs in could not be checked: %w", err))
					}
				}
				e, _ = b.store.Entry(id)
				return b.deliveryFailed(ctx, e)
			}
			b.forgetDelivery(id)
			e, _ = b.store.DropDelivery(id, store.DeliveryDropped, store.Step{State: "delivery abandoned", By: "bot", At: b.now(), Note: sentence(err)})
			b.deliveryAlarm(ctx, e, fmt.Sprintf(":rotating_light: Journal #%d: %s Nothing was delivered: applications keep using `%s`, which was not changed.",
				id, sentence(err), code(e.Args["replaces"])))
			return e
		}
	}
	for i, rec := range e.Deliveries {
		if rec.State != store.DeliveryPending && rec.State != store.DeliveryWritten {
			continue
		}
		t := d.target(rec)
		if t == nil {
			// The configuration is the operator's word: a target taken out of it is not
			// waited for (a pair would otherwise wait for it forever), but it is said loudly.
			b.noteDelivery(id, i, store.DeliveryDropped, "", nil)
			b.deliveryAlarm(ctx, e, fmt.Sprintf(":warning: Journal #%d: %s is no longer among the configured targets of `%s` on %s, so the new password was NOT delivered there; applications reading it keep what they have.",
				id, esc(rec.Target), code(u.String()), esc(e.Connector)))
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, b.deliveryTimeout())
		if rec.State == store.DeliveryPending {
			v, err := t.Deliver(dctx, cred)
			err = scrubbed(err, cred.Password)
			b.noteDelivery(id, i, store.DeliveryWritten, v, err)
			if err != nil {
				cancel()
				continue
			}
			rec.Version = v
		}
		how, err := t.Verify(dctx, cred, rec.Version)
		cancel()
		err = scrubbed(err, cred.Password)
		if errors.Is(err, delivery.ErrMismatch) {
			// Someone wrote over it since: write it again at the next attempt.
			b.noteDelivery(id, i, store.DeliveryPending, "", err)
			continue
		}
		b.noteDelivery(id, i, store.DeliveryVerified, how, err)
	}
	if e, err = b.store.Entry(id); err != nil {
		return e
	}
	if e.TargetsPending() {
		return b.deliveryFailed(ctx, e)
	}
	return b.deliveryDone(ctx, e)
}

// target is the configured target that rec was journaled for: at its place in the list, if
// it still describes itself the same, else the one that does.
func (d *Delivery) target(rec store.Delivery) Target {
	if d == nil {
		return nil
	}
	if rec.Index >= 0 && rec.Index < len(d.Targets) && d.Targets[rec.Index].Describe() == rec.Target {
		return d.Targets[rec.Index]
	}
	for _, t := range d.Targets {
		if t.Describe() == rec.Target {
			return t
		}
	}
	return nil
}

// scrubbed takes the password out of err's text, whatever a target's library put in it.
func scrubbed(err error, pw secret.String) error {
	if err == nil {
		return nil
	}
	if s := secret.Scrub(err.Error(), pw); s != err.Error() {
		return errors.New(s)
	}
	return err
}

// noteDelivery journals one step of delivery i of entry id: its new state (what it says, in
// words), or its failure. A target that keeps failing the same way adds a step at its first
// failures and then every tenth, not at every retry: the journal of a long outage stays short.
func (b *Bot) noteDelivery(id uint64, i int, state, what string, err error) {
	_, jerr := b.store.UpdateEntry(id, func(x *store.Entry) error {
		if i >= len(x.Deliveries) {
			return nil
		}
		d := &x.Deliveries[i]
		d.At = b.now()
		step := store.Step{By: "bot", At: b.now()}
		if err != nil {
			d.Tries++
			same := d.Error == sentence(err)
			d.Error = sentence(err)
			if state == store.DeliveryPending {
				d.State, d.Version = state, ""
			}
			if same && d.Tries > 3 && d.Tries%10 != 0 {
				return nil
			}
			step.State, step.Note = "delivery failed", fmt.Sprintf("%s (attempt %d): %s", d.Target, d.Tries, d.Error)
		} else {
			d.State, d.Error = state, ""
			switch state {
			case store.DeliveryWritten:
				d.Version = what
				step.State, step.Note = "delivered", strings.TrimSpace(d.Target+" "+what)
			case store.DeliveryVerified:
				d.Verified = what
				step.State, step.Note = "delivery verified", d.Target+": "+what
			case store.DeliveryDropped:
				step.State, step.Note = "delivery dropped", d.Target+": no longer configured"
			}
		}
		x.History = append(x.History, step)
		return nil
	})
	if jerr != nil {
		b.log.Error("journal a delivery step", "entry", id, "err", jerr)
	}
}

// deliveryDone finishes e's delivery: every target has the password. In one transaction the
// sealed copy is deleted (one user), or handed to the pair, which records the delivered user
// as the one applications use and keeps its password for a rollback (alternating users; the
// caller holds the pair's lock).
func (b *Bot) deliveryDone(ctx context.Context, e store.Entry) store.Entry {
	u := deliveredUser(e)
	note := "every target has the new password"
	var swap *store.PairSwap
	if d := b.deliveryFor(e.Connector, u); d != nil && d.Alternating {
		swap = &store.PairSwap{Key: d.key(), Expect: e.Args["replaces"], User: u.String()}
		note += "; applications now use " + u.String() + ", and " + e.Args["replaces"] + " keeps working until the next rotation"
	}
	now := b.now()
	window := ""
	if set := stepAt(e, store.EntryDone); !set.IsZero() {
		window = "delivered to every target " + roundDuration(now.Sub(set)) + " after MongoDB had the new password"
	}
	step := store.Step{State: stepDelivered, By: "bot", At: now, Note: note}
	cur, err := b.store.FinishDelivery(e.ID, step, window, swap)
	var ce *store.ConflictError
	if errors.As(err, &ce) && swap != nil {
		// The targets hold u now, whatever the record said: the record follows them.
		b.log.Error("the pair's record disagreed with its delivery", "entry", e.ID, "err", err)
		b.announceTo(ctx, b.deliveryChannel(e), fmt.Sprintf(":warning: Journal #%d delivered `%s`, but the bot's record of the pair said applications used `%s`, not `%s`; it now records `%s`, which is what every target holds.",
			e.ID, code(u.String()), code(ce.Got), code(swap.Expect), code(u.String())))
		swap.Expect = ce.Got
		cur, err = b.store.FinishDelivery(e.ID, step, window, swap)
	}
	if err != nil {
		b.log.Error("journal the delivery's end", "entry", e.ID, "err", err)
		b.scheduleDelivery(e.ID, now.Add(deliveryRetry(1))) // finished at the next attempt
		return e
	}
	b.forgetDelivery(e.ID)
	if e.RollbackOf != 0 && e.Args["redeliver"] != "" {
		if orig, err := b.store.Entry(e.RollbackOf); err == nil && orig.State == store.EntryDone {
			b.markRolledBack(ctx, orig, e.ID, e.Requester)
		}
	}
	if e.DeliverTries > 0 {
		b.announceTo(ctx, b.deliveryChannel(e), fmt.Sprintf(":white_check_mark: Journal #%d: the password of `%s` on %s is now delivered to every target (after %d failed attempt(s)); nothing is pending.",
			e.ID, code(u.String()), esc(e.Connector), e.DeliverTries))
		if e.DeliveryOwner != "" && e.DeliveryOwner != botActor {
			b.dm(ctx, e.DeliveryOwner, text("Journal #%d: the password of `%s` on %s is now delivered to every target.", e.ID, code(u.String()), esc(e.Connector)))
		}
	}
	return cur
}

// stepDelivered is the history step that ends a delivery every target had.
const stepDelivered = "delivered everywhere"

// stepAt is when e first reached state (zero if it never did): done is when MongoDB had the
// change.
func stepAt(e store.Entry, state string) time.Time {
	for _, s := range e.History {
		if s.State == state {
			return s.At
		}
	}
	return time.Time{}
}

// roundDuration shows d to the millisecond under a second, to a tenth above.
func roundDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// deliveryRetry is the wait before attempt tries+1: 15s, 30s, 1m ... at most 10m.
func deliveryRetry(tries int) time.Duration {
	d := 15 * time.Second
	for i := 1; i < tries && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// deliveryFailed records a failed attempt at e's delivery, plans the next, and says so where
// people will see it: the schedule's channel (or the approvals channel) and the owner. It
// speaks on the first failures and then less often, not at every retry.
func (b *Bot) deliveryFailed(ctx context.Context, e store.Entry) store.Entry {
	var next time.Time
	cur, err := b.store.UpdateEntry(e.ID, func(x *store.Entry) error {
		x.DeliverTries++
		next = b.now().Add(deliveryRetry(x.DeliverTries))
		x.DeliverAt = next
		return nil
	})
	if err != nil {
		b.log.Error("journal a failed delivery", "entry", e.ID, "err", err)
		cur, next = e, b.now().Add(deliveryRetry(e.DeliverTries+1))
	}
	b.scheduleDelivery(e.ID, next)
	if n := cur.DeliverTries; n <= 2 || n%10 == 0 {
		b.deliveryAlarm(ctx, cur, fmt.Sprintf(":rotating_light: DELIVERY PENDING, journal #%d (attempt %d): %s The bot tries again at %s and keeps the password sealed until every target has it.",
			cur.ID, n, deliveryState(cur), clock(next)))
	}
	return cur
}

// deliveryAlarm posts s to where e's delivery is watched and to its owner.
func (b *Bot) deliveryAlarm(ctx context.Context, e store.Entry, s string) {
	b.announceTo(ctx, b.deliveryChannel(e), s)
	if e.DeliveryOwner != "" && e.DeliveryOwner != botActor {
		b.dm(ctx, e.DeliveryOwner, text("%s", s))
	}
}

// deliveryChannel is where news of e's delivery goes: the schedules channel for a scheduled
// run, the approvals channel otherwise.
func (b *Bot) deliveryChannel(e store.Entry) string {
	if e.ScheduleID != 0 {
		return b.scfg.Channel
	}
	return b.cfg.Channel
}

// deliveryState says, in one paragraph, where e's password is: MongoDB, each target.
func deliveryState(e store.Entry) string {
	u := deliveredUser(e)
	var parts []string
	for _, d := range e.Deliveries {
		switch d.State {
		case store.DeliveryVerified:
			parts = append(parts, fmt.Sprintf("%s has it (%s)", d.Target, d.Verified))
		case store.DeliveryWritten:
			parts = append(parts, fmt.Sprintf("%s was written (%s) but not yet read back: %s", d.Target, d.Version, orDefault(d.Error, "not checked yet")))
		case store.DeliverySuperseded:
			parts = append(parts, d.Target+": superseded by a later rotation")
		case store.DeliveryDropped:
			parts = append(parts, d.Target+": no longer configured, not delivered")
		default:
			parts = append(parts, fmt.Sprintf("%s does NOT have it: %s", d.Target, orDefault(d.Error, "not tried yet")))
		}
	}
	mongo := fmt.Sprintf("MongoDB has the new password of `%s` on %s", code(u.String()), esc(e.Connector))
	if e.Args["redeliver"] != "" {
		mongo = fmt.Sprintf("MongoDB is unchanged (`%s` keeps its password)", code(u.String()))
	}
	return esc(mongo + "; " + strings.Join(parts, "; ") + ".")
}

// deliveryTimeout bounds one target's write and read-back, as a guard: each target has its
// own, shorter, timeout (a command's may be up to 10 minutes).
func (b *Bot) deliveryTimeout() time.Duration { return 11 * time.Minute }

// scheduleDelivery registers the next attempt at delivering entry id.
func (b *Bot) scheduleDelivery(id uint64, at time.Time) {
	tm := b.tm
	tm.mu.Lock()
	tm.deliveries[id] = at
	tm.mu.Unlock()
}

func (b *Bot) forgetDelivery(id uint64) {
	tm := b.tm
	tm.mu.Lock()
	delete(tm.deliveries, id)
	tm.mu.Unlock()
}

// pendingDeliveries are the entries whose password some target is still waiting for.
func (b *Bot) pendingDeliveries() []uint64 {
	tm := b.tm
	tm.mu.Lock()
	defer tm.mu.Unlock()
	var out []uint64
	for id := range tm.deliveries {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// DeliveryPending is how many rotations have a password some target does not have yet (the
// mongobot_delivery_pending gauge).
func (b *Bot) DeliveryPending() int { return len(b.pendingDeliveries()) }

// deliveryResult is the part of a rotation's result message that says where the password went.
func deliveryResult(e store.Entry, d *Delivery) []Block {
	if len(e.Deliveries) == 0 {
		return nil
	}
	var lines []string
	for _, rec := range e.Deliveries {
		switch rec.State {
		case store.DeliveryVerified:
			lines = append(lines, fmt.Sprintf(":white_check_mark: %s: %s", esc(rec.Target), esc(strings.TrimSpace(rec.Version+"; "+rec.Verified))))
		case store.DeliveryWritten:
			lines = append(lines, fmt.Sprintf(":warning: %s: written (%s), not yet read back: %s", esc(rec.Target), esc(rec.Version), esc(rec.Error)))
		case store.DeliveryDropped:
			lines = append(lines, fmt.Sprintf(":warning: %s: no longer configured, not delivered", esc(rec.Target)))
		default:
			lines = append(lines, fmt.Sprintf(":x: %s: not delivered: %s", esc(rec.Target), esc(orDefault(rec.Error, "not tried yet"))))
		}
	}
	out := []Block{{Text: "*Delivered to*\n" + strings.Join(lines, "\n")}}
	reveal := "Nobody can reveal it (reveal: none): it went only to the targets above."
	if d != nil && d.Reveal {
		reveal = "Its owner can also reveal it once (reveal: owner)."
	}
	var ctxs []string
	if e.AwaitsDelivery() {
		ctxs = append(ctxs, fmt.Sprintf("Delivery is PENDING: the bot retries at %s and keeps the password sealed until every target has it.", clock(e.DeliverAt)))
	}
	if e.Args["delivery"] == "single" {
		took := ""
		if w, ok := deliveryWindow(e); ok {
			took = " Delivery to every target took " + roundDuration(w) + " after MongoDB had it; the window lasts until the application re-reads its secret."
		}
		ctxs = append(ctxs, "One user: between the change on MongoDB and an application reading the new password, its new logins fail."+took+" Alternating users (strategy: alternating) avoid that window.")
	}
	ctxs = append(ctxs, reveal)
	out = append(out, Block{Context: strings.Join(ctxs, " ")})
	return out
}

// retryDelivery is the timer's attempt at entry id's delivery.
func (b *Bot) retryDelivery(ctx context.Context, id uint64) {
	if !b.begin() {
		return // shutting down: DeliverySecret stays journaled, the next start retries
	}
	defer b.done()
	e, err := b.store.Entry(id)
	if err != nil {
		return
	}
	if d := b.deliveryFor(e.Connector, deliveredUser(e)); d != nil && d.Alternating {
		defer b.pairs.lock(d.key())() // as a rotation of the pair takes them: pair, then user
	}
	b.attemptDelivery(ctx, id)
}

// loadDeliveries registers, at start-up, every delivery the journal says is unfinished:
// attempted at the next RunDue.
func (b *Bot) loadDeliveries() error {
	es, err := b.store.Undelivered()
	if err != nil {
		return err
	}
	for _, e := range es {
		b.scheduleDelivery(e.ID, e.DeliverAt)
	}
	return nil
}

// redeliver is the rollback of an alternating rotation e: applications get the user e
// replaced again, whose password the bot kept and which still works (checked by logging in
// now). MongoDB is not changed. The rollback entry's deliveries then run as any delivery.
func (b *Bot) redeliver(ctx context.Context, m Mongo, e store.Entry) (connector.Change, store.PairUser, error) {
	none := store.PairUser{}
	d := b.deliveryFor(e.Connector, target(e.Args))
	if d == nil || !d.Alternating {
		return connector.Change{}, none, fmt.Errorf("%s on %s is no longer delivered as alternating users, so there is nothing to give back", target(e.Args), e.Connector)
	}
	if cur, err := b.store.Entry(e.ID); err == nil && cur.AwaitsDelivery() {
		return connector.Change{}, none, fmt.Errorf("journal #%d's delivery is not finished (the bot retries it); roll it back once it is", e.ID)
	}
	_, p, err := b.pairNow(d)
	if err != nil {
		return connector.Change{}, none, err
	}
	if p.Current.Entry != e.ID {
		return connector.Change{}, none, fmt.Errorf("applications no longer use what journal #%d delivered (journal #%d delivered %s since); roll that back instead", e.ID, p.Current.Entry, p.Current.User)
	}
	prev, err := parseRef(p.Previous.User)
	if err != nil || p.Previous.Secret == "" {
		return connector.Change{}, none, fmt.Errorf("the bot does not hold %s's password (it was in use before the bot first delivered this pair)", p.Previous.User)
	}
	raw, err := b.store.PeekSecret(p.Previous.Secret, p.Previous.Owner)
	if err != nil {
		return connector.Change{}, none, fmt.Errorf("%s's sealed password is gone (%v)", prev, err)
	}
	if err := m.Login(ctx, prev, secret.New(string(raw))); err != nil {
		return connector.Change{}, none, fmt.Errorf("%s's kept password no longer logs in (%v), so giving it to applications would break them", prev, sentence(err))
	}
	st, _ := m.State(ctx, prev)
	ch := connector.Change{Action: "redeliver", Connector: e.Connector, User: prev, Before: st, After: st,
		Notes:  []string{fmt.Sprintf("logging in as %s with its kept password works; it goes to every target again, and %s keeps working", prev, target(e.Args))},
		NoUndo: "rotate again to move applications to the other user"}
	return ch, p.Previous, nil
}

// parseRef reads "user@db" as UserRef.String writes it; a user name may hold "@" itself.
func parseRef(s string) (connector.UserRef, error) {
	i := strings.LastIndex(s, "@")
	if i <= 0 || i == len(s)-1 {
		return connector.UserRef{}, fmt.Errorf("%q is not user@db", s)
	}
	return connector.UserRef{User: s[:i], DB: s[i+1:]}, nil
}

// insertBefore puts extra before the result's closing context and buttons.
func insertBefore(blocks, extra []Block) []Block {
	i := len(blocks)
	for i > 0 && (blocks[i-1].Context != "" || len(blocks[i-1].Buttons) > 0) {
		i--
	}
	return append(append(slices.Clone(blocks[:i]), extra...), blocks[i:]...)
}

// alternatingUndo gives a rotation of alternating users its rollback: applications get the
// user it replaced again, whose password the bot kept and which keeps working until the next
// rotation. Without that password (the user was in use before the bot first delivered the
// pair) there is none, and the result says why.
func (b *Bot) alternatingUndo(e store.Entry, ch *connector.Change) {
	d := b.deliveryFor(e.Connector, target(e.Args))
	if d == nil || !d.Alternating {
		return
	}
	_, p, err := b.pairNow(d)
	replaces := e.Args["replaces"]
	if err != nil || p.Current.User != replaces || p.Current.Secret == "" {
		ch.Undo, ch.NoUndo = nil, fmt.Sprintf("the bot does not hold the password of %s (it was in use before the bot first delivered this pair), so it cannot give it back; the next rotation changes %s", replaces, replaces)
		return
	}
	ch.Undo = &connector.Undo{Action: connector.UndoRedeliver,
		Describe: fmt.Sprintf("give applications %s again (its kept password still works) through %s; %s keeps its new password", replaces, d.where(), target(e.Args))}
	ch.NoUndo = ""
}

// previewDelivery tells, on the card of a rotation (or schedule) of a delivered user, where
// the password goes, which user of an alternating pair changes (and whether it must first be
// created), what Roll back will do, and how the two users differ.
func (b *Bot) previewDelivery(ctx context.Context, m Mongo, u connector.UserRef, args map[string]string, pv map[string]string) error {
	d := b.deliveryFor(m.Name(), u)
	if d == nil {
		return nil
	}
	where := "delivered to " + esc(d.where()) + " and read back from each"
	if d.Reveal {
		where += "; its owner may also reveal it once"
	} else {
		where += "; nobody is shown it"
	}
	if !d.Alternating {
		pv[pvAfter] = strings.Replace(pv[pvAfter], "revealed once to the requester", where, 1) + ". One user: its new logins fail until applications read the new password"
		return nil
	}
	if err := b.pairSettled(d, args); err != nil {
		return err
	}
	cur, p, err := b.pairNow(d)
	if err != nil {
		return err
	}
	next := d.other(cur)
	cst, err := m.State(ctx, cur)
	if err != nil {
		return err
	}
	nst, err := m.State(ctx, next)
	if err != nil {
		return err
	}
	if !cst.Exists {
		return fmt.Errorf("%s, which applications use now, does not exist on %s", cur, m.Name())
	}
	locked := lockedPair(cur, cst, next, nst)
	if locked != nil && args["spec"] == "" {
		return locked
	}
	after := fmt.Sprintf("alternating users: applications use `%s` now, so `%s` gets a new password, %s; `%s` keeps working until the next rotation",
		code(cur.String()), code(next.String()), where, code(cur.String()))
	if !nst.Exists {
		after = fmt.Sprintf("`%s` does not exist yet: it is created first with the roles of `%s` (%s); then ", code(next.String()), code(cur.String()), esc(cst.Describe())) + after
	} else if diff := twinDrift(cur, cst, next, nst); diff != "" {
		pv[pvDrift] = esc(diff)
	}
	if locked != nil {
		// A schedule outlives locks: its runs fail, loudly, while the lock lasts.
		pv[pvLocked] = sentence(locked) + " Its runs fail until then."
	}
	pv[pvAfter] = after
	if p.Current.Secret != "" && p.Current.User == cur.String() {
		pv[pvRollback] = fmt.Sprintf("give applications `%s` again (its password is kept sealed and still works)", code(cur.String()))
	} else {
		pv[pvRollback] = fmt.Sprintf("nothing this time: the bot never had the password of `%s`; from the next rotation on, Roll back gives applications the previous user again", code(cur.String()))
	}
	return nil
}

// twinDrift says how two alternating users differ in what applications rely on: roles and
// authentication restrictions. Applications switch between them at every rotation.
func twinDrift(a connector.UserRef, as connector.UserState, b connector.UserRef, bs connector.UserState) string {
	var out []string
	only := func(x, y connector.UserState) []string {
		var r []string
		for _, role := range x.Roles {
			if !y.HasRole(role) {
				r = append(r, role.String())
			}
		}
		return r
	}
	if r := only(as, bs); len(r) > 0 {
		out = append(out, fmt.Sprintf("only %s has %s", a, strings.Join(r, ", ")))
	}
	if r := only(bs, as); len(r) > 0 {
		out = append(out, fmt.Sprintf("only %s has %s", b, strings.Join(r, ", ")))
	}
	if as.Locked() != bs.Locked() || len(as.Restrictions) != len(bs.Restrictions) {
		out = append(out, "their authentication restrictions differ")
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "; ") + ": applications switch between them at every rotation, so fix it before they do"
}

// deliveryWindow is how long after MongoDB had e's new password (the entry done) every target
// had it: with one user, the least time its new logins failed.
func deliveryWindow(e store.Entry) (time.Duration, bool) {
	set, all := stepAt(e, store.EntryDone), stepAt(e, stepDelivered)
	if set.IsZero() || all.IsZero() {
		return 0, false
	}
	return all.Sub(set), true
}
