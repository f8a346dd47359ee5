package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"mongobot/approvals"
	"mongobot/commands"
	"mongobot/connector"
)

// The request form is a second way to type a command, not a second code path: what it
// submits becomes the words of a slash command (commands.FromForm) and runs through the same
// parsing, checks, preview and request as typed text. Errors that need no server (a missing
// field, a bad name, a role the JIT policy does not offer) come back on their field; the
// rest (the preview's) come as a message, like a typed command's.

// Form is a form to fill, independent of the chat platform: Slack renders it as a modal, the
// console asks its fields one by one.
type Form struct {
	Title  string
	Submit string
	// Note, when set, is said above the fields; a form with a note and no fields cannot be
	// submitted (the person may not use the bot, say).
	Note   string
	Fields []FormField
}

// Kinds of form fields.
const (
	FieldChoice = "choice" // one of Options
	FieldSearch = "search" // one of the options FormOptions gives for what is typed
	FieldText   = "text"
	FieldFlag   = "flag" // yes or no
)

// FormField is one field of a form.
type FormField struct {
	// ID names the field; it is the key of its value in a submission.
	ID    string
	Label string
	Kind  string
	// Options are a choice's options.
	Options []Option
	// Value is the field's current value ("true" for a flag that is set).
	Value    string
	Optional bool
	Hint     string
	// Refresh asks the adapter for the form again (RequestForm) when the value changes:
	// other fields depend on it.
	Refresh   bool
	Multiline bool
}

// Option is one option of a choice or a search.
type Option struct {
	Value, Label string
}

// Limits of a form, Slack's: a static or external select takes at most 100 options, and
// an option's text at most 75 characters.
const (
	maxOptions     = 100
	maxOptionLabel = 75
)

// FormSubmission is a filled-in form.
type FormSubmission struct {
	User string
	// Channel is where the form was opened from ("" for none): replies go there, privately.
	Channel string
	Values  map[string]string
	// Key identifies the delivery, like Invocation.Key.
	Key string
}

// formActions are the actions the form offers, with their labels, in the order shown.
var formActions = []Option{
	{commands.Access, "Just-in-time access for me"},
	{commands.GrantRole, "Grant a role"},
	{commands.RevokeRole, "Revoke a role"},
	{commands.RotatePassword, "Rotate a password"},
	{commands.LockUser, "Lock a user"},
	{commands.UnlockUser, "Unlock a user"},
	{commands.CreateReadOnlyUser, "Create a read-only user"},
	{commands.DropUser, "Drop a user"},
}

// durations are the choices of a form's duration field.
var durations = []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour,
	24 * time.Hour, 3 * 24 * time.Hour, 7 * 24 * time.Hour}

// RequestForm is the request form for user, with the fields the chosen action needs and the
// values given so far. It asks no MongoDB server, and waits at most formAsk for the person's
// user groups, so it answers within a chat platform's short windows (Slack gives 3 seconds
// to open a modal). Someone who may not use the bot gets a form that says so, and no fields.
func (b *Bot) RequestForm(ctx context.Context, user string, values map[string]string) Form {
	if _, err := b.mayAsk(ctx, user); err != nil {
		return Form{Title: "MongoDB request", Submit: "Request", Note: capital(err.Error()) + "."}
	}
	return b.requestForm(values)
}

// requestForm is the form for someone who may use the bot, with values given so far.
func (b *Bot) requestForm(values map[string]string) Form {
	f := Form{Title: "MongoDB request", Submit: "Request"}
	actions := formActions
	if !slices.ContainsFunc(b.connectorNames(), func(c string) bool { _, ok := b.cfg.Policy.JITFor(c); return ok }) {
		actions = actions[1:] // no connector offers just-in-time access
	}
	action := values["action"]
	if !slices.ContainsFunc(actions, func(o Option) bool { return o.Value == action }) {
		action = ""
	}
	f.Fields = append(f.Fields, FormField{ID: "action", Label: "What do you need?", Kind: FieldChoice, Options: actions, Value: action, Refresh: true})
	if action == "" {
		return f
	}
	conns := b.connectorNames()
	if action == commands.Access {
		conns = slices.DeleteFunc(conns, func(c string) bool { _, ok := b.cfg.Policy.JITFor(c); return !ok })
	}
	var opts []Option
	for _, c := range conns {
		opts = append(opts, Option{c, c})
	}
	conn := values["connector"]
	if !slices.Contains(conns, conn) {
		conn = ""
	}
	if len(opts) > maxOptions {
		// More than a select holds: the connector is typed instead, and checked on submit.
		f.Fields = append(f.Fields, FormField{ID: "connector", Label: "Connector", Kind: FieldText, Value: values["connector"], Refresh: true,
			Hint: fmt.Sprintf("one of %d connectors; `%s connectors` lists them", len(opts), b.cfg.Slash)})
		conn = values["connector"]
	} else {
		f.Fields = append(f.Fields, FormField{ID: "connector", Label: "Connector", Kind: FieldChoice, Options: opts, Value: conn, Refresh: true})
	}
	switch action {
	case commands.Access:
		hint := "Roles as role@db, separated by spaces."
		if j, ok := b.cfg.Policy.JITFor(conn); ok {
			hint = fmt.Sprintf("Roles as role@db, separated by spaces; offered on %s: %s.", conn, strings.Join(j.Roles, ", "))
		}
		f.Fields = append(f.Fields, FormField{ID: "roles", Label: "Roles", Kind: FieldText, Value: values["roles"], Hint: hint})
	case commands.CreateReadOnlyUser:
		f.Fields = append(f.Fields,
			FormField{ID: "user", Label: "New user's name", Kind: FieldText, Value: values["user"], Hint: "Created in admin."},
			FormField{ID: "db", Label: "Database it may read", Kind: FieldText, Value: values["db"]})
	default:
		f.Fields = append(f.Fields, FormField{ID: "user", Label: "User", Kind: FieldSearch, Value: values["user"],
			Hint: "Type to search the connector's users (user@authdb)."})
	}
	switch action {
	case commands.GrantRole:
		f.Fields = append(f.Fields, FormField{ID: "role", Label: "Role", Kind: FieldSearch, Value: values["role"],
			Hint: "Type role@db: the built-in roles and that database's own are offered."})
	case commands.RevokeRole:
		f.Fields = append(f.Fields, FormField{ID: "role", Label: "Role", Kind: FieldSearch, Value: values["role"],
			Hint: "The roles the user holds."})
	case commands.RotatePassword:
		f.Fields = append(f.Fields, FormField{ID: "kill-sessions", Label: "Also end the user's sessions", Kind: FieldFlag, Value: values["kill-sessions"], Optional: true})
	}
	switch action {
	case commands.Access, commands.GrantRole, commands.LockUser:
		longest := commands.MaxFor
		if j, ok := b.cfg.Policy.JITFor(conn); ok && action == commands.Access {
			longest = j.MaxFor
		}
		var ds []Option
		for _, d := range durations {
			if d <= longest {
				ds = append(ds, Option{commands.FormatDuration(d), commands.FormatDuration(d)})
			}
		}
		if len(ds) == 0 || longest < durations[len(durations)-1] && !slices.ContainsFunc(ds, func(o Option) bool { return o.Value == commands.FormatDuration(longest) }) {
			ds = append(ds, Option{commands.FormatDuration(longest), commands.FormatDuration(longest) + " (the longest)"})
		}
		f.Fields = append(f.Fields, FormField{ID: "for", Label: "For how long", Kind: FieldChoice, Options: ds, Value: values["for"],
			Optional: action != commands.Access, Hint: map[bool]string{true: "The bot ends it by itself when the time is up.", false: "Leave empty for good; the bot ends it by itself when the time is up."}[action == commands.Access]})
	}
	// Required when the policy says so for this action here (high-risk rules are judged on
	// submission: the form cannot know the user's state).
	needed := b.cfg.Policy.For(action, conn).RequireReason
	f.Fields = append(f.Fields, FormField{ID: "reason", Label: "Reason", Kind: FieldText, Value: values["reason"], Optional: !needed, Multiline: true,
		Hint: "Shown to approvers and kept in the journal (a ticket, an incident)."})
	return f
}

// FormOptions are the options of search field for what is typed (query), given the values
// chosen so far: the connector's users, or roles. The connector is asked at most once per
// optionsTTL for its users; ctx bounds the wait (a platform gives a few seconds).
func (b *Bot) FormOptions(ctx context.Context, user string, values map[string]string, field, query string) []Option {
	if _, err := b.mayAsk(ctx, user); err != nil {
		return nil
	}
	m, err := b.connector(values["connector"])
	if err != nil {
		return nil
	}
	query = strings.ToLower(strings.TrimSpace(query))
	var opts []Option
	add := func(value string) {
		if len(opts) < maxOptions && strings.Contains(strings.ToLower(value), query) {
			opts = append(opts, Option{value, shorten(value, maxOptionLabel)})
		}
	}
	switch field {
	case "user":
		users, _ := b.usersOf(ctx, m)
		for _, u := range users {
			add(u.UserRef.String())
		}
	case "role":
		if values["action"] == commands.RevokeRole {
			u, err := parseUserRef(values["user"])
			if err != nil {
				return nil
			}
			users, _ := b.usersOf(ctx, m)
			for _, x := range users {
				if x.UserRef == u {
					for _, r := range x.Roles {
						add(r.String())
					}
				}
			}
			return opts
		}
		db := "admin"
		if _, d, ok := strings.Cut(query, "@"); ok && connector.ValidateDB(d) == nil {
			db = d
		}
		roles, _ := b.options.get(b, m.Name()+"\x00roles\x00"+db, func() (any, error) {
			release, why := b.reading(ctx, m)
			if release == nil {
				return nil, errors.New(why)
			}
			defer release()
			return m.Roles(ctx, db)
		})
		rs, _ := roles.([]connector.Role)
		for _, r := range rs {
			add(r.String())
		}
	}
	return opts
}

// parseUserRef reads user@db as a form's user option gives it (admin when there is no @).
func parseUserRef(s string) (connector.UserRef, error) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return connector.UserRef{User: s, DB: "admin"}, connector.ValidateUser(s)
	}
	u := connector.UserRef{User: s[:i], DB: s[i+1:]}
	if err := connector.ValidateUser(u.User); err != nil {
		return u, err
	}
	return u, connector.ValidateDB(u.DB)
}

// optionsTTL is how long what a connector lists for a form's choices (its users, the roles
// of a database) is kept: long enough that typing does not ask the server at each letter,
// short enough that a new user shows.
const optionsTTL = 30 * time.Second

// optionCache keeps what connectors listed for forms, briefly, by key.
type optionCache struct {
	mu    sync.Mutex
	byKey map[string]cachedList
}

type cachedList struct {
	at   time.Time
	list any
}

// get is the list kept under key when it is fresh, or what load gives (kept when it works).
func (c *optionCache) get(b *Bot, key string, load func() (any, error)) (any, error) {
	c.mu.Lock()
	cl, ok := c.byKey[key]
	c.mu.Unlock()
	if ok && b.now().Sub(cl.at) < optionsTTL {
		return cl.list, nil
	}
	list, err := load()
	if err != nil {
		return cl.list, err
	}
	c.mu.Lock()
	if c.byKey == nil {
		c.byKey = map[string]cachedList{}
	}
	c.byKey[key] = cachedList{at: b.now(), list: list}
	c.mu.Unlock()
	return list, nil
}

// usersOf are m's users, for a form's choices.
func (b *Bot) usersOf(ctx context.Context, m Mongo) ([]connector.User, error) {
	list, err := b.options.get(b, m.Name()+"\x00users", func() (any, error) {
		release, why := b.reading(ctx, m)
		if release == nil {
			return nil, errors.New(why)
		}
		defer release()
		return m.Users(ctx, "")
	})
	users, _ := list.([]connector.User)
	return users, err
}

// formAsk bounds how long a form waits to know whether the person may use the bot (their
// user groups): the platform's window for the answer is short.
const formAsk = 1500 * time.Millisecond

// mayAsk is mayRequest within formAsk.
func (b *Bot) mayAsk(ctx context.Context, user string) (approvals.Who, error) {
	ctx, cancel := context.WithTimeout(ctx, formAsk)
	defer cancel()
	return b.mayRequest(ctx, user)
}

// SubmitForm runs a filled-in request form as the slash command it stands for. It returns
// the errors to show on fields (by field id), having started nothing; or nil, having
// started the request (its outcome is told like a typed command's). It asks no server
// before returning, so a platform's short window for the answer is kept.
func (b *Bot) SubmitForm(ctx context.Context, s FormSubmission) map[string]string {
	if _, err := b.mayAsk(ctx, s.User); err != nil {
		return map[string]string{"action": "Sorry, " + err.Error() + "."}
	}
	vals := map[string]string{}
	for k, v := range s.Values {
		vals[k] = strings.TrimSpace(v)
	}
	// An error goes on a field the person sees; one about anything else, on the action.
	shown := map[string]bool{}
	for _, f := range b.requestForm(vals).Fields {
		shown[f.ID] = true
	}
	onShown := func(errs map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range errs {
			if !shown[k] {
				k = "action"
			}
			out[k] = v
		}
		return out
	}
	if u := vals["user"]; u != "" && vals["action"] != commands.CreateReadOnlyUser {
		ref, err := parseUserRef(u)
		if err != nil {
			return onShown(map[string]string{"user": sentence(err)})
		}
		vals["user"], vals["authdb"] = ref.User, ref.DB
		if ref.DB == "admin" {
			delete(vals, "authdb")
		}
	}
	cmd, err := commands.FromForm(commands.Form{Verb: vals["action"], Fields: vals})
	if err != nil {
		return onShown(formError(err))
	}
	if _, err := b.connector(cmd.Connector); err != nil {
		return onShown(map[string]string{"connector": capital(err.Error()) + "."})
	}
	in := Invocation{User: s.User, Channel: s.Channel, Key: s.Key}
	if cmd.Verb == commands.Access {
		if err := b.prepareAccess(in, &cmd); err != nil {
			return onShown(formError(err))
		}
	}
	if err := validate(cmd); err != nil {
		return onShown(formError(err))
	}
	// Counted as work before this returns, so that whoever waits for the bot to be quiet
	// (Shutdown, a console between lines) waits for it too.
	if !b.begin() {
		return map[string]string{"action": "The bot is shutting down; try again in a minute."}
	}
	go func() {
		defer b.done()
		b.runForm(context.WithoutCancel(ctx), in, cmd)
	}()
	return nil
}

// runForm runs a submitted form's command as HandleCommand runs a typed one.
func (b *Bot) runForm(ctx context.Context, in Invocation, cmd commands.Command) {
	if !b.enter(ctx, in.Channel, in.User, in.Key) {
		return
	}
	defer b.done()
	defer b.recoverFor(ctx, in.Channel, in.User, "request form")
	b.log.Info("form", "user", in.User, "verb", cmd.Verb, "connector", cmd.Connector)
	b.cfg.Metrics.Command(cmd.Verb)
	who, err := b.mayRequest(ctx, in.User)
	if err != nil {
		b.private(ctx, in.Channel, in.User, text("Sorry, %v.", err))
		return
	}
	b.request(ctx, in, who, cmd)
}

// fieldError is a check's error that is about one field of a form.
type fieldError struct {
	field string
	error
}

func (e fieldError) Unwrap() error { return e.error }

// formError puts an error on the field it is about ("action" when it is about none).
func formError(err error) map[string]string {
	field, msg := "", sentence(err)
	var pe *commands.Error
	var fe fieldError
	switch {
	case errors.As(err, &pe):
		field, msg = pe.Field, pe.Msg
	case errors.As(err, &fe):
		field = fe.field
	}
	switch field {
	case "connector", "user", "role", "roles", "db", "for", "reason", "kill-sessions":
	case "authdb":
		field = "user"
	default:
		field = "action"
	}
	return map[string]string{field: msg}
}

// shorten cuts s to at most n characters, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
