package bot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

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
	pvRisk     = "risk"   // why the change is high-risk, when it is
	pvDrift    = "drift"  // how two alternating users differ, when they do
	pvLocked   = "locked" // why a schedule's runs fail while a pair is locked
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
	if action == commands.Rollback {
		fmt.Fprintf(&b, " of #%s", esc(args["id"]))
		if args["performs"] != "" {
			fmt.Fprintf(&b, " (%s)", esc(args["performs"]))
		}
	}
	if args["user"] != "" {
		fmt.Fprintf(&b, " `%s`", code(target(args).String()))
	}
	if args["role"] != "" {
		fmt.Fprintf(&b, " role `%s`", code(args["role"]))
	}
	if args["roles"] != "" {
		fmt.Fprintf(&b, " with `%s`", code(strings.ReplaceAll(args["roles"], ",", ", ")))
	}
	if action == commands.CreateReadOnlyUser && args["db"] != "" {
		fmt.Fprintf(&b, " (read on `%s`)", code(args["db"]))
	}
	for _, f := range []string{"kill_sessions", "logout_all"} {
		if args[f] == "true" {
			b.WriteString(" --" + strings.ReplaceAll(f, "_", "-"))
		}
	}
	if conn != "" {
		b.WriteString(" on " + esc(conn))
	}
	if args["spec"] != "" {
		fmt.Fprintf(&b, " `%s`", code(args["spec"]))
	}
	if args["schedule"] != "" {
		fmt.Fprintf(&b, " (schedule #%s)", esc(args["schedule"]))
	}
	if args["for"] != "" {
		fmt.Fprintf(&b, " for %s", esc(args["for"]))
	}
	if args["automatic"] != "" {
		fmt.Fprintf(&b, " by the bot (%s)", esc(args["automatic"]))
	}
	b.WriteString(givenUpNote(args))
	return b.String()
}

// validate checks the names of cmd against MongoDB's rules before anything is sent or asked.
func validate(cmd commands.Command) error {
	if err := connector.ValidateUser(cmd.User); err != nil {
		return fieldError{"user", err}
	}
	if err := connector.ValidateDB(cmd.AuthDB); err != nil {
		return fieldError{"user", err}
	}
	if cmd.Role != "" {
		if err := connector.ValidateRole(connector.Role{Name: cmd.Role, DB: cmd.RoleDB}); err != nil {
			return fieldError{"role", err}
		}
	}
	if cmd.Verb == commands.CreateReadOnlyUser {
		if err := connector.ValidateDB(cmd.DB); err != nil {
			return fieldError{"db", err}
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
		if err != nil || sc.State == store.ScheduleRemoved {
			refuse("There is no schedule #%d (`%s schedules` lists them); nothing was requested.", cmd.ID, b.cfg.Slash)
			return
		}
		cmd.Connector, cmd.User, cmd.AuthDB, cmd.Spec = sc.Connector, sc.User, sc.DB, sc.Spec
	}
	m, err := b.connector(cmd.Connector)
	if err != nil {
		refuse("%s; nothing was requested.", capital(err.Error()))
		return
	}
	if cmd.Verb == commands.Access {
		if err := b.prepareAccess(in, &cmd); err != nil {
			refuse("%s Nothing was requested.", sentence(err))
			return
		}
	}
	if err := validate(cmd); err != nil {
		refuse("%s Nothing was requested.", sentence(err))
		return
	}
	if acct := m.Account(); acct.User != "" && cmd.Verb != commands.Unschedule && target(cmd.Args()) == acct {
		refuse("`%s` is the account the bot itself logs in to %s with: changing it (%s) could cut the bot off from %s for good, with no way back through the bot. Change it by hand, then update the connection string. Nothing was requested.",
			code(acct.String()), cmd.Connector, cmd.Verb, cmd.Connector)
		return
	}
	if m.Atlas() {
		refuse("%s is a MongoDB Atlas cluster: Atlas allows creating, changing and dropping database users only through its Administration API or UI, not over the MongoDB protocol, so this bot cannot do it. Nothing was requested.", cmd.Connector)
		return
	}
	args := cmd.Args()
	if b.cfg.Via != "" {
		args["via"] = b.cfg.Via
	}
	if cmd.Verb == commands.Unschedule {
		args["id"] = strconv.FormatUint(cmd.ID, 10)
	}
	// One pending request per change: a second one would ask approvers twice and, for a
	// rotation, hand out a password the first would replace.
	// A fair share: one person's requests cannot fill the approvers' queue or a connector's.
	// Their requests are counted and created one at a time.
	busy := func(err error) {
		b.log.Warn("claim a request's filing", "user", in.User, "err", err)
		refuse("Another request of yours, or one for the same change, is being filed right now (perhaps by another replica of the bot); ask again in a moment. Nothing was requested.")
	}
	release, err := b.hold(&b.asks, "ask/open\x00"+in.User)
	if err != nil {
		busy(err)
		return
	}
	defer release()
	if n, bound := b.openRequests(in.User), b.cfg.Policy.OpenBound(); n >= bound {
		refuse("You have %d requests open (waiting for approval, or approved and not finished), the most one person may have at once: cancel one you no longer need (`%s requests` lists them, `%s cancel <number>` withdraws one), or wait for one to finish. Nothing was requested.",
			n, b.cfg.Slash, b.cfg.Slash)
		return
	}
	// An access names a fresh user each time: its twins are the same requester's for the
	// same roles, so the lock is the requester's.
	askKey := target(args).String()
	if cmd.Verb == commands.Access {
		askKey = "\x00" + in.User
	}
	releaseAsk, err := b.hold(&b.asks, "ask/"+cmd.Verb+"\x00"+cmd.Connector+"\x00"+askKey)
	if err != nil {
		busy(err)
		return
	}
	defer releaseAsk()
	if cmd.Verb == commands.Access {
		if id, how, ok := b.accessTwin(cmd.Connector, in.User, args); ok {
			undo := fmt.Sprintf("use it, or end it first (`%s access-end %d`)", b.cfg.Slash, id)
			if how == accessWaiting {
				undo = fmt.Sprintf("wait for it, or cancel it first (`%s cancel %d`)", b.cfg.Slash, id)
			}
			refuse("Your access #%d to %s with the same roles (`%s`) is %s; %s. Nothing was requested.",
				id, esc(cmd.Connector), code(args["roles"]), how, undo)
			return
		}
	}
	if p, ok := b.pendingTwin(cmd.Verb, cmd.Connector, args); ok {
		refuse("Request #%d (%s, by <@%s>) is already waiting for approval for the same change; approve or cancel it (`%s cancel %d`) instead. Nothing was requested.",
			p.ID, summary(p.Action, p.Connector, p.Args), p.Requester, b.cfg.Slash, p.ID)
		return
	}
	pv, err := b.previewOn(ctx, m, cmd.Verb, args)
	if err != nil {
		refuse("%s Nothing was requested.", sentence(err))
		return
	}
	if pv[pvRisk] != "" {
		args["risk"] = "high" // journaled with the request: the policy is judged on it again at execution
	}
	eff := b.policyFor(cmd.Verb, cmd.Connector, args)
	if eff.RequireReason && strings.TrimSpace(cmd.Reason) == "" {
		refuse("The policy asks for a reason for %s on %s: add `--reason \"<ticket or why>\"`. Nothing was requested.", cmd.Verb, esc(cmd.Connector))
		return
	}
	// Never for a high-risk access (a role on admin, local or config, or root-like): the
	// policy's rules for high risk apply to it like to any other request.
	if cmd.Verb == commands.Access && eff.Required && args["risk"] == "" && b.jitAuto(cmd.Connector, args, who) {
		eff.Required = false
		args["auto"] = "jit" // judged again when it runs (accessStill)
	}
	now := b.now()
	r := store.Request{Action: cmd.Verb, Connector: cmd.Connector, Args: args, Requester: in.User, Reason: cmd.Reason,
		CreatedAt: now, ExpiresAt: now.Add(eff.ExpireAfter), Preview: pv}
	state := approvals.Pending
	if !eff.Required {
		state = approvals.Approved
		r.AutoApproved = b.autoRule(cmd.Verb, cmd.Connector, args, who)
	}
	r, err = b.store.CreateRequest(r, state, in.User)
	if err != nil {
		b.log.Error("store request", "err", err)
		if errors.Is(err, store.ErrAmbiguous) {
			refuse("The journal could not tell whether the request was recorded (%v). Look for it (`%s requests`, or your App Home) before asking again.", err, b.cfg.Slash)
			return
		}
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
	b.refreshHomes(ctx, r) // its requester's and its approvers' homes list it now
	if !eff.Required {
		b.cfg.Metrics.Decision("auto_approved")
		lead := fmt.Sprintf("Request #%d (%s) needs no approval under the policy (`%s`)", r.ID, summary(r.Action, r.Connector, r.Args), code(r.AutoApproved))
		if args["auto"] == "jit" {
			lead = fmt.Sprintf("Request #%d (%s) is approved by %s's just-in-time policy (`%s`), which gives you these roles without a vote", r.ID, summary(r.Action, r.Connector, r.Args), esc(r.Connector), code(r.AutoApproved))
		}
		b.start(ctx, r, false, lead,
			func(m Message) { b.private(ctx, in.Channel, in.User, m) })
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

// previewOn runs preview in one of the connector's read turns, bounded by the action timeout
// (unscheduling asks the server nothing, and needs no turn).
func (b *Bot) previewOn(ctx context.Context, m Mongo, action string, args map[string]string) (map[string]string, error) {
	if action != commands.Unschedule {
		release, why := b.reading(ctx, m)
		if release == nil {
			return nil, errors.New(why)
		}
		defer release()
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.ActionTimeout)
	defer cancel()
	return b.preview(ctx, m, action, args)
}

// preview reads the user's state and says what the action will change, refusing actions that
// cannot work (no such user, already locked, ...) before anyone is asked to approve.
func (b *Bot) preview(ctx context.Context, m Mongo, action string, args map[string]string) (map[string]string, error) {
	u := target(args)
	switch action {
	case commands.Unschedule:
		return map[string]string{pvNow: fmt.Sprintf("schedule #%s: rotate-password `%s` on %s, `%s`", args["id"], code(u.String()), esc(m.Name()), code(args["spec"])),
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
	pv := map[string]string{pvNow: esc(st.Describe())}
	if why := riskOf(action, args, st); why != "" {
		pv[pvRisk] = esc(why)
	}
	defer func() {
		if d := args["for"]; d != "" && pv[pvAfter] != "" && action != commands.Access {
			pv[pvAfter] += "; temporary: undone automatically " + d + " after it runs"
		}
	}()
	switch action {
	case commands.Schedule:
		if !st.Exists {
			return nil, missing
		}
		spec, _ := ParseSpec(args["spec"])
		pv[pvAfter] = fmt.Sprintf("a new password for `%s` on the schedule `%s`, each run without a new approval, each password revealed to the requester; next runs: %s",
			code(u.String()), code(args["spec"]), runTimes(NextRuns(spec, b.now(), 3)))
		pv[pvRollback] = "nothing; `unschedule` stops it"
		if d := b.deliveryFor(m.Name(), u); d != nil {
			if d.Alternating {
				for _, x := range d.Users {
					if sc, ok := b.activeSchedule(m.Name(), x); ok {
						return nil, fmt.Errorf("%s and %s alternate, and %s already has schedule #%d (`%s`): one schedule rotates the pair; unschedule it first", d.Users[0], d.Users[1], x, sc.ID, sc.Spec)
					}
				}
			}
			rollback := pv[pvRollback]
			if err := b.previewDelivery(ctx, m, u, args, pv); err != nil {
				return nil, err
			}
			pv[pvAfter] = fmt.Sprintf("on the schedule `%s`, each run without a new approval: %s; next runs: %s", code(args["spec"]), pv[pvAfter], runTimes(NextRuns(spec, b.now(), 3)))
			pv[pvRollback] = rollback
		}
	case commands.RotatePassword:
		if !st.Exists {
			return nil, missing
		}
		if args["logout_all"] == "true" {
			if err := m.CanRecreate(ctx, u, st); err != nil {
				return nil, err
			}
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
		pv[pvAfter], pv[pvRollback] = after, "none (the old password is never stored)"
		if err := b.previewDelivery(ctx, m, u, args, pv); err != nil {
			return nil, err
		}
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
			return nil, fmt.Errorf("user %s already has the role %s on %s, so there is nothing to grant", u, r, m.Name())
		case action == commands.GrantRole:
			if err := m.CheckRole(ctx, r); err != nil {
				return nil, err
			}
			after.Roles = append(slices.Clone(st.Roles), r)
			// In the order the server lists them, as the result will show them.
			slices.SortFunc(after.Roles, func(a, b connector.Role) int { return strings.Compare(a.DB+"\x00"+a.Name, b.DB+"\x00"+b.Name) })
			pv[pvRollback] = "revoke " + esc(r.String()) + givingUpNote(args)
		case !has:
			return nil, fmt.Errorf("user %s does not have the role %s on %s, so there is nothing to revoke", u, r, m.Name())
		default:
			after.Roles = slices.DeleteFunc(slices.Clone(st.Roles), func(x connector.Role) bool { return x == r })
			pv[pvRollback] = "grant " + esc(r.String()) + " again"
		}
		pv[pvAfter] = esc(after.Describe())
	case commands.CreateReadOnlyUser:
		if st.Exists {
			return nil, fmt.Errorf("user %s already exists on %s (%s)", u, m.Name(), st.Describe())
		}
		pv[pvAfter] = "a new user with role read@" + esc(args["db"]) + " and a generated password, revealed once to the requester"
		pv[pvRollback] = "drop the new user"
	case commands.Access:
		if st.Exists {
			return nil, fmt.Errorf("user %s already exists on %s, so it cannot be made for this access; ask again for another name", u, m.Name())
		}
		roles, err := accessRoles(args)
		if err != nil {
			return nil, err
		}
		for _, r := range roles {
			if err := m.CheckRole(ctx, r); err != nil {
				return nil, err
			}
		}
		pv[pvAfter] = fmt.Sprintf("a new user `%s`, for the requester only, with exactly %s and a generated password revealed once to them; dropped by the bot %s after it is made",
			code(u.String()), esc(strings.ReplaceAll(args["roles"], ",", ", ")), esc(args["for"]))
		pv[pvRollback] = "drop the user (`access-end` ends it early)"
	case commands.DropUser:
		if !st.Exists {
			return nil, missing
		}
		pv[pvAfter], pv[pvRollback] = "does not exist (its roles and restrictions are journaled first)", "none (a dropped user's password cannot be brought back)"
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
		fields = append(fields, Field{"Reason", esc(r.Reason)})
	}
	for _, k := range []struct{ key, label string }{{pvNow, "Now"}, {pvAfter, "After"}, {pvRollback, "Roll back would"}, {pvDrift, "Twins differ"}, {pvLocked, "Locked"}} {
		if v := r.Preview[k.key]; v != "" {
			fields = append(fields, Field{k.label, v})
		}
	}
	var status string
	var approvers, lapsed []string
	for _, v := range r.Votes {
		switch {
		case v.Approve && v.Lapsed:
			lapsed = append(lapsed, "<@"+v.User+">")
		case v.Approve:
			approvers = append(approvers, v.User)
		}
	}
	switch r.State {
	case approvals.Pending:
		fields = append(fields, Field{"Expires", clock(r.ExpiresAt)},
			Field{"Approvals", fmt.Sprintf("%d of %d", len(approvers), eff.Quorum)})
	default:
		status = b.status(r)
	}
	m := Message{Text: fmt.Sprintf("Request #%d: %s", r.ID, summary(r.Action, r.Connector, r.Args)),
		Blocks: []Block{{Text: title}, {Fields: fields}}}
	if why := r.Preview[pvRisk]; why != "" {
		m.Blocks = append(m.Blocks, Block{Text: ":warning: *High risk*: " + why + ". Check who asked and why before approving."})
	}
	if len(approvers) > 0 {
		var who []string
		for _, a := range approvers {
			who = append(who, "<@"+a+">")
		}
		m.Blocks = append(m.Blocks, Block{Context: "Approved by " + strings.Join(who, ", ")})
	}
	if len(lapsed) > 0 {
		m.Blocks = append(m.Blocks, Block{Context: "No longer counted (no longer approvers): " + strings.Join(lapsed, ", ")})
	}
	m.Blocks = append(m.Blocks, b.emulatedNote(r.Connector)...)
	if r.AutoApproved != "" {
		m.Blocks = append(m.Blocks, Block{Context: approvedByPolicy(r.AutoApproved)})
	}
	if via := r.Args["via"]; via != "" {
		m.Blocks = append(m.Blocks, Block{Context: fmt.Sprintf(":warning: Typed in the bot's %s, not in Slack: whoever was at that terminal chose the names shown here; nobody verified them.", esc(via))})
	}
	if r.Action == commands.Rollback && r.Args["performs"] != "" {
		m.Blocks = append(m.Blocks, Block{Context: fmt.Sprintf("Judged as the %s it performs on %s: %s from its approvers.",
			r.Args["performs"], r.Connector, plural(eff.Quorum, "approval"))})
	}
	if r.State == approvals.Pending {
		v := buttonValue(r.ID, r.Token)
		m.Blocks = append(m.Blocks, Block{Buttons: []Button{
			{Text: TextApprove, Action: ActApprove, Value: v, Style: "primary"},
			{Text: TextDeny, Action: ActDeny, Value: v, Style: "danger"}}})
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
		if r.AutoApproved != "" {
			by = " by policy" // the requester asked; the rule approved
		}
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
			s += ": " + esc(unescape.Replace(last.Note)) // notes may carry names, escaped or not
		}
		return s
	case approvals.RolledBack:
		if last.By == botActor && r.Args["for"] != "" {
			// Nobody pressed anything: the time was up.
			return fmt.Sprintf("*Ended by the bot* %s: --for %s is over (journal #%d).", clock(last.At), esc(r.Args["for"]), r.EntryID)
		}
		return fmt.Sprintf("*Rolled back*%s %s%s.", by, clock(last.At), b.undoneBy(r.EntryID))
	}
	return r.State
}

// undoneBy says which journal entry undid entry id: ": journal #2 undid journal #1", or
// "(journal #1)" alone when the journal cannot say.
func (b *Bot) undoneBy(id uint64) string {
	if e, err := b.store.Entry(id); err == nil && e.RolledBackBy != 0 {
		return fmt.Sprintf(": journal #%d undid journal #%d", e.RolledBackBy, id)
	}
	return fmt.Sprintf(" (journal #%d)", id)
}

// votes are the votes that count: lapsed ones (their voter is no longer an approver) are left
// out, of quorums and of the approvers the journal names.
func votes(vs []store.Vote) []approvals.Vote {
	out := make([]approvals.Vote, 0, len(vs))
	for _, v := range vs {
		if !v.Lapsed {
			out = append(out, approvals.Vote{User: v.User, Approve: v.Approve, At: v.At})
		}
	}
	return out
}

// refreshCard re-renders the card of request r in place. Several goroutines move one request
// (the voter, the request's own poster, the executor), and Slack applies updates in the order
// they arrive: so updates of one card are serialized, and each renders the request as stored
// at that moment, never the caller's copy, which may be older than one already shown.
func (b *Bot) refreshCard(ctx context.Context, r store.Request) {
	defer b.cards.lock(r.ID)()
	if cur, err := b.store.Request(r.ID); err == nil {
		r = cur
	}
	if r.Card.TS == "" {
		b.refreshHomes(ctx, r)
		return
	}
	if err := b.chat.Update(ctx, Ref{Channel: r.Card.Channel, TS: r.Card.TS}, b.card(r, b.policyFor(r.Action, r.Connector, r.Args))); err != nil {
		b.log.Error("update card", "request", r.ID, "err", err)
	}
	b.refreshHomes(ctx, r)
}

// buttonValue is what a button carries: the record's id and its token.
func buttonValue(id uint64, token string) string {
	return strconv.FormatUint(id, 10) + "." + token
}

// parseButton reads a button value made by buttonValue.
func parseButton(v string) (uint64, string, bool) {
	idText, token, ok := strings.Cut(v, ".")
	id, err := strconv.ParseUint(idText, 10, 64)
	return id, token, ok && err == nil && token != ""
}

// policyFor is the policy a request is judged by: a rollback's is that of the action it
// performs on MongoDB (undoing a revoke is a grant), and it needs approval when either that
// action or "rollback" itself does.
func (b *Bot) policyFor(action, conn string, args map[string]string) approvals.Effective {
	risk := approvals.Risk(args["risk"]) // set by the bot from the user's state, never by the requester
	if action == commands.Rollback && args["performs"] != "" {
		eff := b.cfg.Policy.ForRisk(args["performs"], conn, risk)
		eff.Required = eff.Required || b.cfg.Policy.ForRisk(commands.Rollback, conn, risk).Required
		return eff
	}
	return b.cfg.Policy.ForRisk(action, conn, risk)
}

// awaitCard re-reads request r until its card reference is saved, for at most 3 seconds.
func (b *Bot) awaitCard(ctx context.Context, r store.Request) store.Request {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case <-ctx.Done():
			return r
		case <-deadline:
			return r
		case <-t.C:
			if cur, err := b.store.Request(r.ID); err == nil && cur.Card.TS != "" {
				return cur
			}
		}
	}
}

// refuseClick answers a click that is not what it claims to be, and logs it: a stale card,
// a forged value, a message that is not the request's card.
func (b *Bot) refuseClick(ctx context.Context, c Click, refusal, why string) {
	b.log.Warn("click refused", "user", c.User, "action", c.Action, "channel", c.Message.Channel, "ts", c.Message.TS, "why", why)
	b.refusedClick(c, refusal, why)
	b.private(ctx, c.Channel, c.User, text("%s Nothing was done.", why))
}

// vote records an Approve or Deny click. The click must come from the request's own card
// (the message the bot posted for it, in the approvals channel) and carry its token; the
// voter's standing is judged by the policy now, not by anything the click carries.
func (b *Bot) vote(ctx context.Context, c Click, approve bool) {
	id, token, ok := parseButton(c.Value)
	if !ok {
		b.refuseClick(ctx, c, store.RefusedForged, "This button does not belong to any request (it may come from an older version of the bot).")
		return
	}
	r, err := b.store.Request(id)
	if err != nil || !store.TokenMatches(r.Token, token) {
		b.refuseClick(ctx, c, store.RefusedForged, fmt.Sprintf("This button does not belong to request #%d as the journal knows it (a stale or forged card).", id))
		return
	}
	if r.Card.TS == "" {
		// The card is posted before its reference can be saved: a quick click may arrive
		// in between. Wait a little for the poster to save it; never adopt the clicked
		// message as the card.
		r = b.awaitCard(ctx, r)
	}
	if r.Card.TS == "" {
		b.refuseClick(ctx, c, store.RefusedNoCard, fmt.Sprintf("The card of request #%d was never recorded (posting it failed); ask again with a new request.", id))
		return
	}
	// The card, or the voter's own home tab: only the bot can put buttons there, and the
	// platform says whose it is (the adapter sets Home only for the bot's own home view).
	if !c.Home && (c.Message.Channel != r.Card.Channel || c.Message.TS != r.Card.TS) {
		b.refuseClick(ctx, c, store.RefusedWrongMessage, fmt.Sprintf("Request #%d can only be approved or denied on its own card in the approvals channel, or in your App Home.", id))
		return
	}
	eff := b.policyFor(r.Action, r.Connector, r.Args)
	who, gerr := b.who(ctx, c.User)
	// Earlier votes count only from people who are approvers now: someone removed from the
	// approvers since their vote no longer brings the request closer to its quorum.
	lapsed := b.lapsedVoters(ctx, r, eff)
	now := b.now()
	r, err = b.store.UpdateRequest(id, func(x *store.Request) error {
		for i := range x.Votes {
			x.Votes[i].Lapsed = x.Votes[i].Lapsed || lapsed[x.Votes[i].User]
		}
		counted := slices.DeleteFunc(votes(x.Votes), func(v approvals.Vote) bool { return lapsed[v.User] })
		res, err := approvals.Cast(eff, approvals.Ballot{Requester: x.Requester, State: x.State, ExpiresAt: x.ExpiresAt, Votes: counted}, who, approve, now)
		if err != nil {
			return err
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
			b.expire(ctx, id, b.store) // this click's own work, not a timer's
		}
		if errors.Is(err, approvals.ErrNotApprover) && gerr != nil {
			err = errGroupsUnknown
		}
		why := fmt.Sprintf("Request #%d: %s.", id, strings.TrimSuffix(err.Error(), "."))
		if refusal := voteRefusal(err); refusal != store.RefusedOther {
			b.refusedClick(c, refusal, why)
		}
		b.private(ctx, c.Channel, c.User, text("%s", why))
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
		// The action runs on its connector's executor, never in the click's slot: a slow
		// MongoDB must not hold up clicks on other requests.
		b.start(ctx, r, false, fmt.Sprintf("Request #%d (%s) is approved", id, s), func(m Message) { b.dm(ctx, r.Requester, m) })
	}
}

// lapsedVoters are the voters of r who are not approvers of it under eff now (or whose
// standing cannot be known: fail closed).
func (b *Bot) lapsedVoters(ctx context.Context, r store.Request, eff approvals.Effective) map[string]bool {
	out := map[string]bool{}
	for _, v := range r.Votes {
		w, err := b.who(ctx, v.User)
		if err != nil || !eff.Approvers.Has(w) || (v.User == r.Requester && !eff.AllowSelfApproval) {
			out[v.User] = true
		}
	}
	return out
}

// stillApproved checks, at the moment of acting, that request r may run under the policy in
// force now: its requester may still use the bot and, where approval is required, enough of
// its approvals come from people who are approvers now. A restart with a new config, or
// someone's removal, between the vote and the run is judged here, from the journal.
func (b *Bot) stillApproved(ctx context.Context, r store.Request) error {
	if _, err := b.mayRequest(ctx, r.Requester); err != nil {
		return fmt.Errorf("its requester <@%s> may no longer use the bot (%v)", r.Requester, err)
	}
	if r.Action == commands.Access {
		auto, err := b.accessStill(ctx, r)
		if err != nil {
			return err
		}
		if auto {
			return nil
		}
	}
	if n, need := b.approvalsNow(ctx, r); n < need {
		return fmt.Errorf("the policy changed since it was approved: %d of its approvals come from people who are approvers now, and %d are needed; ask again", n, need)
	}
	return nil
}

// approvalsNow is how many distinct people who may approve r now approved it, and how many
// the policy in force needs (0 when it needs no approval).
func (b *Bot) approvalsNow(ctx context.Context, r store.Request) (n, need int) {
	eff := b.policyFor(r.Action, r.Connector, r.Args)
	if !eff.Required {
		return 0, 0
	}
	lapsed := b.lapsedVoters(ctx, r, eff)
	// Distinct people, not votes: the record may carry one person's approval twice.
	counted := slices.DeleteFunc(votes(r.Votes), func(v approvals.Vote) bool { return lapsed[v.User] })
	return len(approvals.Approvers(counted)), eff.Quorum
}

// stillLowRisk judges request r again when its risk has risen since it was approved: the
// risk is recomputed from what it will do (args, after planning) and the user as the server
// shows it now (st, read just before the write-ahead step), never taken from the record
// alone. A user made an administrator since the vote turns an ordinary change into a
// high-risk one, which must then meet the policy's rules for high risk: an approval given
// for the ordinary change does not carry over by itself.
func (b *Bot) stillLowRisk(ctx context.Context, r store.Request, args map[string]string, st connector.UserState) error {
	why := riskOf(r.Action, args, st)
	if why == "" || r.Args["risk"] != "" {
		return nil
	}
	high := r
	high.Args = maps.Clone(r.Args)
	high.Args["risk"] = "high"
	if n, need := b.approvalsNow(ctx, high); n < need {
		return fmt.Errorf("it became high-risk after it was approved (%s): the policy needs %d approvals for that and it has %d; ask again", why, need, n)
	}
	return nil
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

// openRequests counts requester's open requests: pending and not yet due, approved, executing.
func (b *Bot) openRequests(requester string) int {
	n := 0
	var before uint64
	for {
		rs, next, err := b.store.Requests(before, 200, approvals.Pending, approvals.Approved, approvals.Executing)
		if err != nil {
			return n
		}
		for _, r := range rs {
			if r.Requester == requester && (r.State != approvals.Pending || b.now().Before(r.ExpiresAt)) {
				n++
			}
		}
		if next == 0 {
			return n
		}
		before = next
	}
}

const accessWaiting = "waiting for approval"

// accessTwin finds requester's access on conn to the same roles as args that is still
// waiting, about to run, running or in force: a second one, voted or auto-approved, would
// only make another user with the same powers. how says which, as a phrase.
func (b *Bot) accessTwin(conn, requester string, args map[string]string) (id uint64, how string, ok bool) {
	same := func(a map[string]string) bool {
		x, y := slices.Clone(roleWords(a)), slices.Clone(roleWords(args))
		slices.Sort(x)
		slices.Sort(y)
		return slices.Equal(slices.Compact(x), slices.Compact(y))
	}
	var before uint64
	for {
		rs, next, err := b.store.Requests(before, 200, approvals.Pending, approvals.Approved, approvals.Executing)
		if err != nil {
			break
		}
		for _, r := range rs {
			if r.Action == commands.Access && r.Connector == conn && r.Requester == requester && same(r.Args) &&
				(r.State != approvals.Pending || b.now().Before(r.ExpiresAt)) {
				if r.State == approvals.Pending {
					return r.ID, accessWaiting, true
				}
				return r.ID, "being set up", true
			}
		}
		if next == 0 {
			break
		}
		before = next
	}
	temp, _ := b.store.Temporary()
	for _, e := range temp {
		if e.Action == commands.Access && e.Connector == conn && e.Requester == requester && same(e.Args) && e.UndoAt.After(b.now()) {
			return e.RequestID, "in force until " + clock(e.UndoAt), true
		}
	}
	return 0, "", false
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
	b.safely("expiry", func() { b.expireDue(ctx) })
}

func (b *Bot) expireDue(ctx context.Context) {
	rs, _, err := b.store.Requests(0, 1<<20, approvals.Pending)
	if err != nil {
		b.log.Error("list pending requests", "err", err)
		return
	}
	now := b.now()
	for _, r := range rs {
		if approvals.Due(r.State, r.ExpiresAt, now) {
			st, err := b.timerStore()
			if err != nil {
				return // another replica leads, and expires
			}
			b.expire(ctx, r.ID, st)
		}
	}
}

// expire moves request id to expired through st: the timer journal for the periodic expiry,
// the bot's own store for a click that found the request past its time.
func (b *Bot) expire(ctx context.Context, id uint64, st *store.Store) {
	r, err := st.TransitionRequest(id, approvals.Sources(approvals.Expired), store.Step{State: approvals.Expired, By: "bot"}, nil)
	if err != nil {
		return // already decided, or expired by another caller
	}
	b.log.Info("request expired", "id", id)
	b.cfg.Metrics.Decision(approvals.Expired)
	b.refreshCard(ctx, r)
	b.dm(ctx, r.Requester, text("Request #%d (%s) expired before it was approved; nothing was changed. Ask again if it is still needed.",
		id, summary(r.Action, r.Connector, r.Args)))
}

// pendingTwin finds a pending request for the same action on the same user (and, for a
// grant or revoke, the same role).
func (b *Bot) pendingTwin(action, conn string, args map[string]string) (store.Request, bool) {
	var before uint64
	for {
		rs, next, err := b.store.Requests(before, 200, approvals.Pending)
		if err != nil {
			return store.Request{}, false
		}
		for _, r := range rs {
			if r.Action == action && r.Connector == conn && target(r.Args) == target(args) && r.Args["role"] == args["role"] &&
				b.now().Before(r.ExpiresAt) &&
				((action != commands.Unschedule && action != commands.Rollback) || r.Args["id"] == args["id"]) {
				return r, true
			}
		}
		if next == 0 {
			return store.Request{}, false
		}
		before = next
	}
}
