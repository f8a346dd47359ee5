package bot

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"mongobot/approvals"
	"mongobot/commands"
	"mongobot/connector"
	"mongobot/store"
)

// Just-in-time access: a person asks for roles for themselves, for a while. After approval
// the bot creates a user of their own with exactly those roles, reveals its password to them
// once, and drops it when the time is up. The drop is the obligation every --for is (the
// timers, retried until done, loud while overdue, kept across restarts); access-end does it
// early. The request is an ordinary request of action "access" whose args name the user
// the bot chose, so the flow, the journal and the checker treat it like every other.

// roleWords are the roles of an access request as journaled: role@db words, comma-separated
// in one argument (prepareAccess refuses a comma in a role).
func roleWords(args map[string]string) []string { return strings.Split(args["roles"], ",") }

// accessRoles are the roles of an access request, as journaled.
func accessRoles(args map[string]string) ([]connector.Role, error) {
	var out []connector.Role
	for _, s := range roleWords(args) {
		r, err := connector.ParseRole(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// prepareAccess checks an access command against the connector's JIT policy and names the
// user it will create: cmd.User and cmd.AuthDB are set on success.
func (b *Bot) prepareAccess(in Invocation, cmd *commands.Command) error {
	j, ok := b.cfg.Policy.JITFor(cmd.Connector)
	if !ok {
		return fieldError{"connector", fmt.Errorf("%s offers no just-in-time access (its config has no `jit` section); ask its operators", cmd.Connector)}
	}
	for _, s := range cmd.Roles {
		if strings.Contains(s, ",") {
			// The journal keeps an access's roles as one comma-separated word.
			return fieldError{"roles", fmt.Errorf("%q is not a role: a role name in an access may not contain a comma", s)}
		}
	}
	if cmd.For > j.MaxFor {
		return fieldError{"for", j.Check(nil, cmd.For)}
	}
	if err := j.Check(cmd.Roles, cmd.For); err != nil {
		return fieldError{"roles", err}
	}
	for _, s := range cmd.Roles {
		r, err := connector.ParseRole(s)
		if err == nil {
			err = connector.ValidateRole(r)
		}
		if err != nil {
			return fieldError{"roles", err}
		}
	}
	name, err := jitName(j.UserTemplate, handleOf(in.User))
	if err != nil {
		return err
	}
	cmd.User, cmd.AuthDB = name, "admin"
	return nil
}

// handleOf is a person's handle as it may appear in a user name: their chat id, lower case
// (letters, digits, '.', '_' and '-' only, at most 20). Never the chat's display or legacy
// user name: its owner can change it, to look like someone else or to reuse a name.
func handleOf(id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		if b.Len() == 20 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "someone"
	}
	return b.String()
}

// jitName fills template: {handle} with handle, {random} with six random letters and digits.
func jitName(template, handle string) (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	raw := make([]byte, 6)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("no randomness for the user name: %v", err)
	}
	for i, c := range raw {
		raw[i] = alphabet[int(c)%len(alphabet)]
	}
	name := strings.NewReplacer("{handle}", handle, "{random}", string(raw)).Replace(template)
	if err := connector.ValidateUser(name); err != nil {
		return "", fmt.Errorf("the connector's jit.user_template gives %q, which is not a user name MongoDB takes (%v)", name, err)
	}
	return name, nil
}

// jitAuto reports whether the access request args on conn, by w, needs no vote under the JIT
// policy in force: it is checked when the request is made and again when it runs.
func (b *Bot) jitAuto(conn string, args map[string]string, w approvals.Who) bool {
	j, ok := b.cfg.Policy.JITFor(conn)
	return ok && j.AutoApproved(w, roleWords(args))
}

// accessStill judges an access request at the moment of acting, from the journal and the
// policy in force now: the connector still offers the roles for that long, and, if it ran
// without a vote, the requester still gets them without one. auto reports the latter.
func (b *Bot) accessStill(ctx context.Context, r store.Request) (auto bool, err error) {
	j, ok := b.cfg.Policy.JITFor(r.Connector)
	if !ok {
		return false, fmt.Errorf("%s no longer offers just-in-time access", r.Connector)
	}
	d, derr := commands.ParseDuration(r.Args["for"])
	if derr != nil {
		return false, fmt.Errorf("its duration %q cannot be read (%v)", r.Args["for"], derr)
	}
	if err := j.Check(roleWords(r.Args), d); err != nil {
		return false, fmt.Errorf("the policy changed since it was asked: %v", err)
	}
	if r.Args["auto"] != "jit" || r.Args["risk"] != "" {
		return false, nil
	}
	w, gerr := b.who(ctx, r.Requester)
	if b.jitAuto(r.Connector, r.Args, w) {
		return true, nil
	}
	if gerr != nil {
		return false, errGroupsUnknown
	}
	return false, errors.New("it was approved without a vote by the JIT policy, which no longer approves it for its requester; ask again")
}

// accessEnd ends access id (its request's number) early: its user is dropped now, by the
// path the bot's own end takes, checking only that the user is still there.
func (b *Bot) accessEnd(ctx context.Context, in Invocation, who approvals.Who, id uint64) {
	say := func(format string, a ...any) { b.private(ctx, in.Channel, in.User, text(format, a...)) }
	r, err := b.store.Request(id)
	if err != nil || r.Action != commands.Access {
		say("There is no access #%d (`%s requests` and the App Home list yours); nothing was ended.", id, b.cfg.Slash)
		return
	}
	if in.User != r.Requester {
		eff := b.policyFor(r.Action, r.Connector, r.Args)
		if !eff.Approvers.Has(who) {
			say("Only <@%s>, whose access #%d is, or an approver of it can end it early; nothing was ended.", r.Requester, id)
			return
		}
	}
	if r.State == approvals.RolledBack {
		say("Access #%d has already ended; nothing was done.", id)
		return
	}
	if r.State != approvals.Done || r.EntryID == 0 {
		say("Access #%d is %s, so there is no user of it to end; nothing was done.", id, approvals.Describe(r.State))
		return
	}
	e, ch, err := b.undoable(r.EntryID)
	if err != nil {
		say("Access #%d cannot be ended now (%s); nothing was done.", id, sentence(err))
		return
	}
	b.log.Info("access-end", "request", id, "entry", e.ID, "by", in.User)
	res, rerr := b.runRollback(ctx, store.Request{}, e, ch, in.User, "ended early with access-end", true)
	switch res {
	case rollbackDone:
		b.forgetTemporary(e.ID)
		say("Access #%d has ended: `%s` was dropped from %s.", id, code(target(e.Args).String()), esc(e.Connector))
	case rollbackUncertain:
		say("Access #%d: MongoDB stopped answering while `%s` was being dropped; whether it is gone is being checked, and the bot drops it at its end (%s) in any case.", id, code(target(e.Args).String()), clock(e.UndoAt))
	default:
		why := "it could not start"
		if rerr != nil {
			why = sentence(rerr)
		}
		say("Access #%d was not ended: %s The bot still drops it at its end (%s).", id, why, clock(e.UndoAt))
	}
}
