package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"mongobot/approvals"
	"mongobot/commands"
	"mongobot/connector"
	"mongobot/store"
)

// Preview keys of a request.
const (
	pvNow      = "now"
	pvAfter    = "after"
	pvRollback = "rollback"
)

// target is the user an action's arguments name.
func target(args map[string]string) connector.UserRef {
	db := args["authdb"]
	if db == "" {
		db = "admin"
	}
	return connector.UserRef{User: args["user"], DB: db}
}

// summary is "rotate-password `app@admin` on prod" for lists and titles.
func summary(action, conn string, args map[string]string) string {
	var b strings.Builder
	b.WriteString(action)
	if action == commands.Schedule {
		b.WriteString(" rotate-password")
	}
	if action == "rollback" {
		fmt.Fprintf(&b, " of #%s", args["id"])
	}
	if args["user"] != "" {
		fmt.Fprintf(&b, " `%s`", target(args))
	}
	if args["role"] != "" {
		fmt.Fprintf(&b, " role `%s`", args["role"])
	}
	if action == commands.CreateReadOnlyUser && args["db"] != "" {
		fmt.Fprintf(&b, " (read on `%s`)", args["db"])
	}
	for _, f := range []string{"kill_sessions", "logout_all"} {
		if args[f] == "true" {
			b.WriteString(" --" + strings.ReplaceAll(f, "_", "-"))
		}
	}
	if conn != "" {
		b.WriteString(" on " + conn)
	}
	if args["spec"] != "" {
		fmt.Fprintf(&b, " `%s`", args["spec"])
	}
	if args["schedule"] != "" {
		fmt.Fprintf(&b, " (schedule #%s)", args["schedule"])
	}
	if args["for"] != "" {
		fmt.Fprintf(&b, " for %s", args["for"])
	}
	return b.String()
}

// validate checks the names of cmd against MongoDB's rules before anything is sent or asked.
func validate(cmd commands.Command) error {
	if err := connector.ValidateUser(cmd.User); err != nil {
		return err
	}
	if err := connector.ValidateDB(cmd.AuthDB); err != nil {
		return err
	}
	if cmd.Role != "" {
		if err := connector.ValidateRole(connector.Role{Name: cmd.Role, DB: cmd.RoleDB}); err != nil {
			return err
		}
	}
	if cmd.Verb == commands.CreateReadOnlyUser {
		if err := connector.ValidateDB(cmd.DB); err != nil {
			return err
		}
	}
	return nil
}

// request turns a mutating command into an approval request (or runs it at once when the
// policy does not require approval).
func (b *Bot) request(ctx context.Context, in Invocation, who approvals.Who, cmd commands.Command) {
	refuse := func(format string, a ...any) {
		b.private(ctx, in.Channel, in.User, text(format, a...))
	}
	if cmd.Verb == commands.Unschedule {
		sc, err := b.store.Schedule(cmd.ID)
		if err != nil || sc.State != store.ScheduleActive {
			refuse("There is no active schedule #%d (`%s schedules` lists them); nothing was requested.", cmd.ID, b.cfg.Slash)
			return
		}
		cmd.Connector, cmd.User, cmd.AuthDB, cmd.Spec = sc.Connector, sc.User, sc.DB, sc.Spec
	}
	m, err := b.connector(cmd.Connector)
	if err != nil {
		refuse("%s; nothing was requested.", capital(err.Error()))
		return
	}
	if err := validate(cmd); err != nil {
		refuse("%s Nothing was requested.", sentence(err))
		return
	}
	if m.Atlas() {
		refuse("%s is a MongoDB Atlas cluster: Atlas allows creating, changing and dropping database users only through its Administration API or UI, not over the MongoDB protocol, so this bot cannot do it. Nothing was requested.", cmd.Connector)
		return
	}
	args := cmd.Args()
	if cmd.Verb == commands.Unschedule {
		args["id"] = strconv.FormatUint(cmd.ID, 10)
	}
	pctx, cancel := context.WithTimeout(ctx, b.cfg.ActionTimeout)
	pv, err := b.preview(pctx, m, cmd.Verb, args)
	cancel()
	if err != nil {
		refuse("%s Nothing was requested.", sentence(err))
		return
	}
	eff := b.cfg.Policy.For(cmd.Verb, cmd.Connector)
	now := b.now()
	r := store.Request{Action: cmd.Verb, Connector: cmd.Connector, Args: args, Requester: in.User, Reason: cmd.Reason,
		CreatedAt: now, ExpiresAt: now.Add(eff.ExpireAfter), Preview: pv}
	state := approvals.Pending
	if !eff.Required {
		state = approvals.Approved
	}
	r, err = b.store.CreateRequest(r, state, in.User)
	if err != nil {
		b.log.Error("store request", "err", err)
		refuse("The request could not be recorded (%v); nothing was requested.", err)
		return
	}
	b.log.Info("request", "id", r.ID, "action", r.Action, "connector", r.Connector, "state", state)
	ref, err := b.chat.Post(ctx, b.cfg.Channel, b.card(r, eff))
	if err != nil {
		b.log.Error("post card", "request", r.ID, "err", err)
	} else {
		r, _ = b.store.UpdateRequest(r.ID, func(x *store.Request) error { x.Card = store.MessageRef{Channel: ref.Channel, TS: ref.TS}; return nil })
		if r.State != state {
			// Decided (voted, cancelled, expired) before its card reference was saved.
			b.refreshCard(ctx, r)
		}
	}
	if !eff.Required {
		b.cfg.Metrics.Decision("auto_approved")
		b.private(ctx, in.Channel, in.User, text("Request #%d (%s) needs no approval under the policy: running it now.", r.ID, summary(r.Action, r.Connector, r.Args)))
		b.execute(ctx, r.ID)
		return
	}
	where := "the approvals channel"
	if b.cfg.Channel != "" {
		where = "<#" + b.cfg.Channel + ">"
	}
	if err != nil {
		refuse("Request #%d (%s) is recorded, but its card could not be posted in %s (%v); approvers can still find it with `%s requests`.",
			r.ID, summary(r.Action, r.Connector, r.Args), where, err, b.cfg.Slash)
		return
	}
	b.private(ctx, in.Channel, in.User, text("Request #%d (%s) is waiting for approval in %s; it expires %s. `%s cancel %d` withdraws it.",
		r.ID, summary(r.Action, r.Connector, r.Args), where, clock(r.ExpiresAt), b.cfg.Slash, r.ID))
}

// preview reads the user's state and says what the action will change, refusing actions that
// cannot work (no such user, already locked, ...) before anyone is asked to approve.
func (b *Bot) preview(ctx context.Context, m Mongo, action string, args map[string]string) (map[string]string, error) {
	u := target(args)
	switch action {
	case commands.Unschedule:
		return map[string]string{pvNow: fmt.Sprintf("schedule #%s: rotate-password `%s` on %s, `%s`", args["id"], u, m.Name(), args["spec"]),
			pvAfter: "removed: no more scheduled rotations of this user", pvRollback: "nothing: schedule it again"}, nil
	case commands.Schedule:
		if _, err := ParseSpec(args["spec"]); err != nil {
			return nil, err
		}
		if sc, ok := b.activeSchedule(m.Name(), u); ok {
			return nil, fmt.Errorf("%s on %s already has schedule #%d (`%s`): two rotations racing would break the application using it; unschedule it first", u, m.Name(), sc.ID, sc.Spec)
		}
	}
	if err := m.Supports(ctx, action, args["kill_sessions"] == "true"); err != nil {
		return nil, err
	}
	st, err := m.State(ctx, u)
	if err != nil {
		return nil, err
	}
	missing := fmt.Errorf("user %s does not exist on %s", u, m.Name())
	pv := map[string]string{pvNow: st.Describe()}
	defer func() {
		if d := args["for"]; d != "" && pv[pvAfter] != "" {
			pv[pvAfter] += "; temporary: undone automatically " + d + " after it runs"
		}
	}()
	switch action {
	case commands.Schedule:
		if !st.Exists {
			return nil, missing
		}
		spec, _ := ParseSpec(args["spec"])
		pv[pvAfter] = fmt.Sprintf("a new password for %s on the schedule `%s`, each run without a new approval, each password revealed to the requester; next runs: %s",
			u, args["spec"], runTimes(NextRuns(spec, b.now(), 3)))
		pv[pvRollback] = "nothing; `unschedule` stops it"
	case commands.RotatePassword:
		if !st.Exists {
			return nil, missing
		}
		after := "same roles; a new generated password, revealed once to the requester"
		switch {
		case args["logout_all"] == "true":
			after += "; the user is dropped and re-created, so every connection must log in again"
		case args["kill_sessions"] == "true":
			after += "; its sessions are killed (logged-in connections stay authenticated)"
		default:
			after += "; logged-in connections stay authenticated"
		}
		pv[pvAfter], pv[pvRollback] = after, "none: the old password is never stored"
	case commands.GrantRole, commands.RevokeRole:
		if !st.Exists {
			return nil, missing
		}
		r, err := connector.ParseRole(args["role"])
		if err != nil {
			return nil, err
		}
		has := st.HasRole(r)
		after := st
		switch {
		case action == commands.GrantRole && has:
			pv[pvAfter], pv[pvRollback] = "no change: it already has "+r.String(), "nothing (it already had the role)"
			return pv, nil
		case action == commands.GrantRole:
			after.Roles = append(slices.Clone(st.Roles), r)
			pv[pvRollback] = "revoke " + r.String()
		case !has:
			return nil, fmt.Errorf("user %s does not have the role %s on %s, so there is nothing to revoke", u, r, m.Name())
		default:
			after.Roles = slices.DeleteFunc(slices.Clone(st.Roles), func(x connector.Role) bool { return x == r })
			pv[pvRollback] = "grant " + r.String() + " again"
		}
		pv[pvAfter] = after.Describe()
	case commands.CreateReadOnlyUser:
		if st.Exists {
			return nil, fmt.Errorf("user %s already exists on %s (%s)", u, m.Name(), st.Describe())
		}
		pv[pvAfter] = "a new user with role read@" + args["db"] + " and a generated password, revealed once to the requester"
		pv[pvRollback] = "drop the new user"
	case commands.DropUser:
		if !st.Exists {
			return nil, missing
		}
		pv[pvAfter], pv[pvRollback] = "does not exist (its roles and restrictions are journaled first)", "none: a dropped user's password cannot be brought back"
	case commands.LockUser:
		if !st.Exists {
			return nil, missing
		}
		if st.Locked() {
			return nil, fmt.Errorf("user %s is already locked on %s", u, m.Name())
		}
		pv[pvAfter], pv[pvRollback] = "locked: new logins refused, its sessions ended", "unlock, restoring exactly its current restrictions"
	case commands.UnlockUser:
		if !st.Exists {
			return nil, missing
		}
		if !st.Locked() {
			return nil, fmt.Errorf("user %s is not locked by the bot on %s", u, m.Name())
		}
		pv[pvAfter], pv[pvRollback] = "unlocked: its restrictions from before the lock are put back", "lock it again"
	}
	return pv, nil
}

// card is the approval card of r, as it is now.
func (b *Bot) card(r store.Request, eff approvals.Effective) Message {
	title := fmt.Sprintf("*Request #%d*: %s", r.ID, summary(r.Action, r.Connector, r.Args))
	fields := []Field{{"Requested by", "<@" + r.Requester + ">"}}
	if r.Reason != "" {
		fields = append(fields, Field{"Reason", r.Reason})
	}
	for _, k := range []struct{ key, label string }{{pvNow, "Now"}, {pvAfter, "After"}, {pvRollback, "Roll back would"}} {
		if v := r.Preview[k.key]; v != "" {
			fields = append(fields, Field{k.label, v})
		}
	}
	var status string
	approvers := approvals.Approvers(votes(r.Votes))
	switch r.State {
	case approvals.Pending:
		fields = append(fields, Field{"Expires", clock(r.ExpiresAt)},
			Field{"Approvals", fmt.Sprintf("%d of %d", len(approvers), eff.Quorum)})
	default:
		status = b.status(r)
	}
	m := Message{Text: fmt.Sprintf("Request #%d: %s", r.ID, summary(r.Action, r.Connector, r.Args)),
		Blocks: []Block{{Text: title}, {Fields: fields}}}
	if len(approvers) > 0 {
		var who []string
		for _, a := range approvers {
			who = append(who, "<@"+a+">")
		}
		m.Blocks = append(m.Blocks, Block{Context: "Approved by " + strings.Join(who, ", ")})
	}
	if r.State == approvals.Pending {
		id := strconv.FormatUint(r.ID, 10)
		m.Blocks = append(m.Blocks, Block{Buttons: []Button{
			{Text: TextApprove, Action: ActApprove, Value: id, Style: "primary"},
			{Text: TextDeny, Action: ActDeny, Value: id, Style: "danger"}}})
	} else {
		m.Blocks = append(m.Blocks, Block{Text: status})
	}
	return m
}

// status is the line a decided card shows instead of its buttons.
func (b *Bot) status(r store.Request) string {
	last := r.History[len(r.History)-1]
	by := ""
	if last.By != "" && last.By != "bot" {
		by = " by <@" + last.By + ">"
	}
	switch r.State {
	case approvals.Approved:
		return "*Approved*" + by + " " + clock(last.At) + ": running."
	case approvals.Executing:
		return "*Running* since " + clock(last.At) + "."
	case approvals.Denied:
		return "*Denied*" + by + " " + clock(last.At) + "."
	case approvals.Expired:
		return "*Expired* " + clock(last.At) + ": nobody decided in time."
	case approvals.Cancelled:
		return "*Cancelled*" + by + " " + clock(last.At) + "."
	case approvals.Done:
		return fmt.Sprintf("*Done* %s: journal #%d.", clock(last.At), r.EntryID)
	case approvals.Failed:
		s := fmt.Sprintf("*Failed* %s", clock(last.At))
		if r.EntryID != 0 {
			s += fmt.Sprintf(": journal #%d", r.EntryID)
		}
		if last.Note != "" {
			s += ": " + last.Note
		}
		return s
	case approvals.RolledBack:
		return fmt.Sprintf("*Rolled back*%s %s (journal #%d).", by, clock(last.At), r.EntryID)
	}
	return r.State
}

func votes(vs []store.Vote) []approvals.Vote {
	out := make([]approvals.Vote, len(vs))
	for i, v := range vs {
		out[i] = approvals.Vote{User: v.User, Approve: v.Approve, At: v.At}
	}
	return out
}

// refreshCard re-renders the card of request r in place. Several goroutines move one request
// (the voter, the request's own poster, the executor), and Slack applies updates in the order
// they arrive: so updates of one card are serialized, and each renders the request as stored
// at that moment, never the caller's copy, which may be older than one already shown.
func (b *Bot) refreshCard(ctx context.Context, r store.Request) {
	mu, _ := b.cards.LoadOrStore(r.ID, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if cur, err := b.store.Request(r.ID); err == nil {
		r = cur
	}
	if r.Card.TS == "" {
		return
	}
	if err := b.chat.Update(ctx, Ref{Channel: r.Card.Channel, TS: r.Card.TS}, b.card(r, b.cfg.Policy.For(r.Action, r.Connector))); err != nil {
		b.log.Error("update card", "request", r.ID, "err", err)
	}
}

// vote records an Approve or Deny click.
func (b *Bot) vote(ctx context.Context, c Click, approve bool) {
	id, err := strconv.ParseUint(c.Value, 10, 64)
	if err != nil {
		return
	}
	r, err := b.store.Request(id)
	if err != nil {
		b.private(ctx, c.Channel, c.User, text("Request #%d is not in the journal: %v", id, err))
		return
	}
	eff := b.cfg.Policy.For(r.Action, r.Connector)
	who := b.who(ctx, c.User)
	now := b.now()
	r, err = b.store.UpdateRequest(id, func(x *store.Request) error {
		res, err := approvals.Cast(eff, approvals.Ballot{Requester: x.Requester, State: x.State, ExpiresAt: x.ExpiresAt, Votes: votes(x.Votes)}, who, approve, now)
		if err != nil {
			return err
		}
		if x.Card.TS == "" && c.Message.TS != "" {
			// The click came from the card before its reference was saved.
			x.Card = store.MessageRef{Channel: c.Message.Channel, TS: c.Message.TS}
		}
		v := res.Votes[len(res.Votes)-1]
		x.Votes = append(x.Votes, store.Vote{User: v.User, Approve: v.Approve, At: v.At})
		if res.State != x.State {
			x.State = res.State
			x.History = append(x.History, store.Step{State: res.State, At: now, By: c.User})
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, approvals.ErrExpired) {
			b.expire(ctx, id)
		}
		b.private(ctx, c.Channel, c.User, text("Request #%d: %s.", id, strings.TrimSuffix(capital(err.Error()), ".")))
		return
	}
	b.log.Info("vote", "request", id, "user", c.User, "approve", approve, "state", r.State)
	if r.State != approvals.Pending {
		b.cfg.Metrics.Decision(r.State)
	}
	b.refreshCard(ctx, r)
	s := summary(r.Action, r.Connector, r.Args)
	switch r.State {
	case approvals.Pending:
		b.dm(ctx, r.Requester, text("<@%s> approved request #%d (%s); %d of %d approvals.", c.User, id, s, len(approvals.Approvers(votes(r.Votes))), eff.Quorum))
	case approvals.Denied:
		b.dm(ctx, r.Requester, text("<@%s> denied request #%d (%s); nothing was changed.", c.User, id, s))
	case approvals.Approved:
		b.dm(ctx, r.Requester, text("Request #%d (%s) is approved; running it now.", id, s))
		b.execute(ctx, id)
	}
}

// cancel withdraws a pending request: only its requester may.
func (b *Bot) cancel(ctx context.Context, in Invocation, id uint64) {
	r, err := b.store.Request(id)
	if err != nil {
		b.private(ctx, in.Channel, in.User, text("There is no request #%d.", id))
		return
	}
	if r.Requester != in.User {
		b.private(ctx, in.Channel, in.User, text("Only <@%s>, who asked, can cancel request #%d.", r.Requester, id))
		return
	}
	r, err = b.store.TransitionRequest(id, approvals.Sources(approvals.Cancelled), store.Step{State: approvals.Cancelled, By: in.User}, nil)
	if err != nil {
		cur, _ := b.store.Request(id)
		b.private(ctx, in.Channel, in.User, text("Request #%d is already %s; it cannot be cancelled.", id, approvals.Describe(cur.State)))
		return
	}
	b.cfg.Metrics.Decision(approvals.Cancelled)
	b.refreshCard(ctx, r)
	b.private(ctx, in.Channel, in.User, text("Request #%d is cancelled; nothing was changed.", id))
}

// PendingRequests counts the requests waiting for approval (for the metrics gauge).
func (b *Bot) PendingRequests() int {
	rs, _, err := b.store.Requests(0, 1<<20, approvals.Pending)
	if err != nil {
		return 0
	}
	return len(rs)
}

// ExpireDue moves every pending request whose time is up to expired, updates its card and
// tells its requester. The bot calls it every minute; tests call it with their clock.
func (b *Bot) ExpireDue(ctx context.Context) {
	rs, _, err := b.store.Requests(0, 1<<20, approvals.Pending)
	if err != nil {
		b.log.Error("list pending requests", "err", err)
		return
	}
	now := b.now()
	for _, r := range rs {
		if approvals.Due(r.State, r.ExpiresAt, now) {
			b.expire(ctx, r.ID)
		}
	}
}

func (b *Bot) expire(ctx context.Context, id uint64) {
	r, err := b.store.TransitionRequest(id, approvals.Sources(approvals.Expired), store.Step{State: approvals.Expired, By: "bot"}, nil)
	if err != nil {
		return // already decided, or expired by another caller
	}
	b.log.Info("request expired", "id", id)
	b.cfg.Metrics.Decision(approvals.Expired)
	b.refreshCard(ctx, r)
	b.dm(ctx, r.Requester, text("Request #%d (%s) expired before it was approved; nothing was changed. Ask again if it is still needed.",
		id, summary(r.Action, r.Connector, r.Args)))
}
