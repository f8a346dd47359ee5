package commands

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Command is one parsed command. Only the fields its verb uses are set.
type Command struct {
	Verb      string
	Connector string
	User      string
	// AuthDB is the user's authentication database (--db), "admin" unless given.
	AuthDB string
	// DB is the database create-readonly-user grants read on.
	DB string
	// WithRoleOn is users' [db]: list only the users holding a role on this database, whatever
	// their authentication database ("" lists them all).
	WithRoleOn string
	// WithAuthDB is users' --auth-db: list only the users whose authentication database is this
	// one, whatever their roles ("" lists them all). It is not AuthDB, which is "admin" unless
	// given, because users without --auth-db lists every authentication database.
	WithAuthDB string
	// Role and RoleDB are grant-role's and revoke-role's role@db; RoleDB is "admin" unless given.
	Role, RoleDB string
	// Roles are access's roles, each role@db ("admin" unless given), in the order typed.
	Roles []string
	// Action is what schedule schedules (rotate-password).
	Action       string
	Spec         string
	KillSessions bool
	LogoutAll    bool
	Reason       string
	// For, when not zero, makes a grant or a lock temporary.
	For time.Duration
	// ID is the request, schedule or journal id of cancel, unschedule and rollback.
	ID uint64
	// N is history's count.
	N int
	// Topic is the verb help was asked about.
	Topic string
	// Public asks a read-only verb to answer in the channel instead of privately.
	Public bool
}

// Mutating reports whether c changes something.
func (c Command) Mutating() bool { return Mutating(c.Verb) }

// Args is the command's arguments as words, for the journal and the approval card.
func (c Command) Args() map[string]string {
	m := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set("user", c.User)
	set("authdb", c.AuthDB)
	set("db", c.DB)
	set("with_role_on", c.WithRoleOn)
	set("with_authdb", c.WithAuthDB)
	if c.Role != "" {
		set("role", c.Role+"@"+c.RoleDB)
	}
	set("roles", strings.Join(c.Roles, ","))
	set("action", c.Action)
	set("spec", c.Spec)
	if c.KillSessions {
		m["kill_sessions"] = "true"
	}
	if c.LogoutAll {
		m["logout_all"] = "true"
	}
	if c.For > 0 {
		m["for"] = FormatDuration(c.For)
	}
	if c.ID > 0 {
		m["id"] = strconv.FormatUint(c.ID, 10)
	}
	return m
}

// Limits on what a person may type; MongoDB's own name limits are the connector's to check.
const (
	MaxText   = 4000 // Slack's slash command text is shorter than this
	MaxReason = 500
	// MaxFor is the longest temporary grant or lock.
	MaxFor = 90 * 24 * time.Hour
	MinFor = time.Minute
	// MaxRoles is the most roles one access asks for.
	MaxRoles = 10
	// MaxHistory is the most entries history lists at once.
	MaxHistory = 50
)

// Error is a malformed command: Msg says what is wrong, Verb which verb's usage to show
// ("" for the list of verbs).
type Error struct {
	Verb string
	Msg  string
	// Field names what the error is about, for a form: a positional word's name (connector,
	// user, role, db, roles) or a flag's (for, reason, db); "" when it is the whole command.
	Field string
}

func (e *Error) Error() string { return e.Msg }

// Usage is the message to show: what is wrong, then how the verb is used.
func (e *Error) Usage(slash string) string {
	if e.Verb == "" {
		return e.Msg + "\n\n" + HelpText(slash, "")
	}
	return e.Msg + "\n\n" + HelpText(slash, e.Verb)
}

func errorf(verb, format string, a ...any) *Error {
	return &Error{Verb: verb, Msg: fmt.Sprintf(format, a...)}
}

// Parse turns the text after the slash command into a Command. Errors are *Error.
func Parse(text string) (Command, error) {
	if len(text) > MaxText {
		return Command{}, errorf("", "That command is too long (%d characters; at most %d).", len(text), MaxText)
	}
	if !utf8.ValidString(text) {
		return Command{}, errorf("", "That command is not valid text.")
	}
	words, err := split(text)
	if err != nil {
		// The verb is usually readable before the broken quote: show its usage, not the list.
		if f := strings.Fields(text); len(f) > 0 {
			if v, ok := lookup(strings.ToLower(f[0])); ok {
				err.Verb = v.name
			}
		}
		return Command{}, err
	}
	return parseWords(words)
}

// Form is what a request form submits: the verb and its fields by name (the names in the
// verb's usage: connector, user, role, roles, db, and the flags without "--": for, reason,
// db for --db, kill-sessions and logout-all as "true"). Empty fields are left out.
type Form struct {
	Verb   string
	Fields map[string]string
}

// FromForm reads a submitted form as the same words a slash command gives, so it goes
// through the same checks; an error names the field it is about (Error.Field). Unlike typed
// text, nothing is split or unquoted: each field is one word, whatever it holds (roles
// excepted, which are separated by spaces or commas).
func FromForm(f Form) (c Command, err error) {
	v, ok := lookup(f.Verb)
	if !ok || !v.mutating {
		return Command{}, &Error{Field: "action", Msg: fmt.Sprintf("%q is not an action a form can ask for.", short(f.Verb))}
	}
	words := []string{v.name}
	for _, a := range v.args {
		if a == "role" && v.more != "" { // access: the roles field, one word per role
			words = append(words, strings.FieldsFunc(f.Fields["roles"], func(r rune) bool { return r == ',' || unicode.IsSpace(r) })...)
			continue
		}
		if f.Fields[a] == "" {
			return Command{}, &Error{Verb: v.name, Field: a, Msg: fmt.Sprintf("`%s` needs %s.", v.name, missing([]string{a}))}
		}
		words = append(words, f.Fields[a])
	}
	defer func() {
		// access's roles are one field of the form, however many words they give.
		var e *Error
		if v.more != "" && errors.As(err, &e) && e.Field == "role" {
			e.Field = "roles"
		}
	}()
	for _, flag := range append(append([]string{}, v.flags...), reasonFlag) {
		val := f.Fields[formField(flag)]
		switch {
		case val == "":
		case takesValue(flag):
			words = append(words, "--"+flag, val)
		case val == "true":
			words = append(words, "--"+flag)
		}
	}
	return parseWords(words)
}

// formField is the form's name of a flag: --db is the user's authentication database,
// "authdb", apart from create-readonly-user's <db>.
func formField(flag string) string {
	if flag == "db" {
		return "authdb"
	}
	return flag
}

// on sets the field e is about, for a form.
func (e *Error) on(field string) *Error {
	e.Field = field
	return e
}

// parseWords reads a command from its words, the verb first.
func parseWords(words []string) (Command, error) {
	if len(words) == 0 {
		return Command{Verb: Help}, nil
	}
	name := strings.ToLower(words[0])
	v, ok := lookup(name)
	if !ok {
		return Command{}, errorf("", "I don't know the verb %q.", short(words[0]))
	}
	c := Command{Verb: v.name, AuthDB: "admin"}
	flags := append([]string{}, v.flags...)
	if v.mutating {
		flags = append(flags, reasonFlag)
	} else {
		flags = append(flags, publicFlag)
	}
	var pos []string
	// seen refuses a flag given twice: keeping the last silently could drop the reason an
	// approver reads or the --for someone meant.
	seen := map[string]bool{}
	for i := 1; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "--") || w == "--" {
			pos = append(pos, w)
			continue
		}
		name, value, hasValue := strings.Cut(w[2:], "=")
		name = strings.ToLower(name)
		if !contains(flags, name) {
			return Command{}, errorf(v.name, "`%s` does not take %s.", v.name, flagWord(name)).on(formField(name))
		}
		if seen[name] {
			return Command{}, errorf(v.name, "`--%s` is given twice; give it once.", name).on(formField(name))
		}
		seen[name] = true
		if takesValue(name) && !hasValue {
			if i+1 >= len(words) {
				return Command{}, errorf(v.name, "`--%s` needs a value.", name).on(formField(name))
			}
			i++
			value = words[i]
		} else if !takesValue(name) && hasValue {
			return Command{}, errorf(v.name, "`--%s` takes no value.", name).on(formField(name))
		}
		if err := c.setFlag(v.name, name, value); err != nil {
			return Command{}, err.on(formField(name))
		}
	}
	if len(pos) < len(v.args) {
		return Command{}, errorf(v.name, "`%s` needs %s.", v.name, missing(v.args[len(pos):])).on(v.args[len(pos)])
	}
	if len(pos) > len(v.args)+len(v.optional) && v.more == "" {
		return Command{}, errorf(v.name, "`%s` got more words than it takes (%q is one too many); quote a word that has spaces.",
			v.name, short(pos[len(v.args)+len(v.optional)]))
	}
	if err := c.setWords(v, pos); err != nil {
		return Command{}, err
	}
	return c, nil
}

func takesValue(flag string) bool {
	switch flag {
	case "db", "auth-db", "for", reasonFlag:
		return true
	}
	return false
}

func (c *Command) setFlag(verb, name, value string) *Error {
	switch name {
	case "db":
		if value == "" {
			return errorf(verb, "`--db` needs a database name.")
		}
		c.AuthDB = value
	case "auth-db":
		if value == "" {
			return errorf(verb, "`--auth-db` needs a database name.")
		}
		c.WithAuthDB = value
	case "for":
		d, err := ParseDuration(value)
		if err != nil {
			// ParseDuration's errors follow Go's style; a usage message is a sentence.
			return errorf(verb, "%s.", capital(err.Error()))
		}
		c.For = d
	case reasonFlag:
		if utf8.RuneCountInString(value) > MaxReason {
			return errorf(verb, "The reason is too long (at most %d characters).", MaxReason)
		}
		c.Reason = strings.TrimSpace(value)
	case "kill-sessions":
		c.KillSessions = true
	case "logout-all":
		c.LogoutAll = true
	case publicFlag:
		c.Public = true
	}
	return nil
}

func (c *Command) setWords(v verb, pos []string) error {
	for _, w := range pos {
		if strings.TrimSpace(w) == "" {
			return errorf(v.name, "An empty word is not a name.").on("user")
		}
	}
	at := func(i int) string {
		if i < len(pos) {
			return pos[i]
		}
		return ""
	}
	switch v.name {
	case Help:
		if t := strings.ToLower(at(0)); t != "" {
			if _, ok := lookup(t); !ok {
				return errorf("", "There is no verb %q.", short(t))
			}
			c.Topic = t
		}
	case Users:
		c.Connector, c.WithRoleOn = at(0), at(1)
	case RotatePassword, DropUser, LockUser, UnlockUser:
		c.Connector, c.User = at(0), at(1)
	case GrantRole, RevokeRole:
		c.Connector, c.User = at(0), at(1)
		name, db, err := roleWord(v.name, at(2))
		if err != nil {
			return err.on("role")
		}
		c.Role, c.RoleDB = name, db
	case CreateReadOnlyUser:
		c.Connector, c.User, c.DB = at(0), at(1), at(2)
	case Access:
		c.Connector = at(0)
		for _, w := range pos[1:] {
			name, db, err := roleWord(v.name, w)
			if err != nil {
				return err.on("roles")
			}
			if r := name + "@" + db; !contains(c.Roles, r) {
				c.Roles = append(c.Roles, r)
			}
		}
		if len(c.Roles) > MaxRoles {
			return errorf(v.name, "That is %d roles; ask for at most %d at once.", len(c.Roles), MaxRoles).on("roles")
		}
		if c.For == 0 {
			return errorf(v.name, "`access` needs `--for <duration>`: just-in-time access always ends.").on("for")
		}
	case Schedule:
		if strings.ToLower(at(0)) != RotatePassword {
			return errorf(v.name, "Only `rotate-password` can be scheduled, not %q.", short(at(0)))
		}
		c.Action, c.Connector, c.User, c.Spec = RotatePassword, at(1), at(2), strings.TrimSpace(at(3))
	case Unschedule, Cancel, Rollback, AccessEnd:
		id, err := strconv.ParseUint(strings.TrimPrefix(at(0), "#"), 10, 64)
		if err != nil || id == 0 {
			return errorf(v.name, "%q is not an id: ids are numbers, like `%s 42`.", short(at(0)), v.name)
		}
		c.ID = id
	case History:
		c.N = 10
		if at(0) != "" {
			n, err := strconv.Atoi(at(0))
			if err != nil || n < 1 || n > MaxHistory {
				return errorf(v.name, "%q is not a count: give a number from 1 to %d.", short(at(0)), MaxHistory)
			}
			c.N = n
		}
	}
	return nil
}

// roleWord reads role or role@db; the database is admin unless given.
func roleWord(verb, w string) (name, db string, err *Error) {
	i := strings.LastIndexByte(w, '@')
	if i < 0 {
		return w, "admin", nil
	}
	name, db = w[:i], w[i+1:]
	if name == "" || db == "" {
		return "", "", errorf(verb, "%q is not a role: write `role` or `role@db`.", short(w))
	}
	return name, db, nil
}

// MaxSpan is the longest span ParseSpan accepts: a year is longer than any wait the bot
// measures (a --for, a request's expiry, a missed run's window, a retry's delay), and keeps
// every span far from the overflow of time.Duration (about 106751 days).
const MaxSpan = 365 * 24 * time.Hour

// ErrSpanTooLong is what ParseSpan's error wraps when the span is longer than MaxSpan,
// including one too long for time.Duration to hold. Test with errors.Is.
var ErrSpanTooLong = errors.New("span too long")

// spanTooLong says which span is too long, and unwraps to ErrSpanTooLong.
type spanTooLong struct{ span string }

func (e *spanTooLong) Error() string {
	return fmt.Sprintf("%q is too long: the longest is %s", short(e.span), FormatDuration(MaxSpan))
}

func (e *spanTooLong) Unwrap() error { return ErrSpanTooLong }

// goDuration is the syntax of time.ParseDuration without a sign: when it fails on a string of
// this shape, the number is too large for a time.Duration.
var goDuration = regexp.MustCompile(`^\+?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`)

// ParseSpan reads a positive duration of at most MaxSpan: 30m, 4h, 2d, or Go's syntax (1h30m,
// 90s). A longer one, even one that would overflow, is an error wrapping ErrSpanTooLong.
func ParseSpan(s string) (time.Duration, error) {
	notSpan := fmt.Errorf("%q is not a duration: write 30m, 4h or 2d", short(s))
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		switch {
		case errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(days, "-"):
			return 0, &spanTooLong{s}
		case err != nil || n <= 0:
			return 0, notSpan
		case n > int64(MaxSpan/(24*time.Hour)): // before multiplying, which could overflow
			return 0, &spanTooLong{s}
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			if goDuration.MatchString(s) {
				return 0, &spanTooLong{s}
			}
			return 0, notSpan
		}
	}
	if d <= 0 {
		return 0, notSpan
	}
	if d > MaxSpan {
		return 0, &spanTooLong{s}
	}
	return d, nil
}

// spanShape is every string that writes a span with a sign or of zero length (0s, -1h, -2d,
// 0): well formed, so a --for of it is out of bounds rather than not a duration at all.
var spanShape = regexp.MustCompile(`^[-+]?(0|[0-9]+d|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`)

// ParseDuration reads a --for duration: a span between MinFor and MaxFor. A well-formed span
// outside them (0s, -1h, 91d, 400d) gets an error that says the bounds, not one that says it
// is not a duration.
func ParseDuration(s string) (time.Duration, error) {
	d, err := ParseSpan(s)
	if err == nil && d >= MinFor && d <= MaxFor {
		return d, nil
	}
	if err == nil || errors.Is(err, ErrSpanTooLong) || spanShape.MatchString(s) {
		return 0, fmt.Errorf("a duration must be between %s and %s, not %s", FormatDuration(MinFor), FormatDuration(MaxFor), short(s))
	}
	return 0, fmt.Errorf("%q is not a duration: write one from %s to %s, such as 30m, 4h or 2d", short(s), FormatDuration(MinFor), FormatDuration(MaxFor))
}

// FormatDuration writes d the way ParseDuration reads it: 2d, 4h, 1h30m, 30m, 1m40s. The bot
// journals a --for this way and reads it back to know when to undo, so it must round-trip:
// only zero units are dropped (1h0m0s is 1h), never a digit (1m40s once became "1m4").
func FormatDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 && d > 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// capital starts s with a capital letter.
func capital(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// plainFlag is what a flag name looks like; anything else is quoted when shown back.
var plainFlag = regexp.MustCompile(`^[a-z0-9-]{1,40}$`)

// flagWord shows a flag the person typed: in code style when it looks like a flag, quoted
// otherwise, so a newline or a backquote in it cannot break the message's one line.
func flagWord(name string) string {
	if plainFlag.MatchString(name) {
		return "`--" + name + "`"
	}
	return fmt.Sprintf("%q", "--"+short(name))
}

func missing(names []string) string {
	var out []string
	for _, n := range names {
		out = append(out, "<"+n+">")
	}
	return strings.Join(out, " ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// short keeps a quoted word readable in a message: at most 60 characters.
func short(s string) string {
	if utf8.RuneCountInString(s) <= 60 {
		return s
	}
	return string([]rune(s)[:57]) + "..."
}
