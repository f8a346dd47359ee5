package commands

// Verbs, as typed after the slash command.
const (
	Help               = "help"
	Connectors         = "connectors"
	Users              = "users"
	RotatePassword     = "rotate-password"
	GrantRole          = "grant-role"
	RevokeRole         = "revoke-role"
	CreateReadOnlyUser = "create-readonly-user"
	DropUser           = "drop-user"
	LockUser           = "lock-user"
	UnlockUser         = "unlock-user"
	Schedule           = "schedule"
	Schedules          = "schedules"
	Unschedule         = "unschedule"
	Requests           = "requests"
	Cancel             = "cancel"
	History            = "history"
	Rollback           = "rollback"
	Access             = "access"
	AccessEnd          = "access-end"
)

// verb describes one verb: its usage line, what it does, its positional words and its flags.
type verb struct {
	name     string
	usage    string // after the verb
	summary  string
	details  string
	args     []string // names of required positional words
	optional []string // names of optional positional words, after the required ones
	// more, when set, names further positional words the verb takes, as many as given.
	more     string
	flags    []string // allowed flags, without "--"
	mutating bool
}

// reasonFlag and publicFlag are added to every mutating, respectively read-only, verb.
const (
	reasonFlag = "reason"
	publicFlag = "public"
)

var verbs = []verb{
	{name: Help, usage: "[verb]", summary: "this help, or the details of one verb", optional: []string{"verb"}},
	{name: Connectors, summary: "the MongoDB connectors and their health"},
	{name: Users, usage: "<connector> [db] [--auth-db <authdb>]", summary: "list users and their roles (all, or those with a role on one database)",
		details: "`users prod shop` lists the users holding a role on shop, whatever database they authenticate against; " +
			"`users prod --auth-db shop` lists the users whose authentication database is shop, whatever their roles. " +
			"Both together list the users of that authentication database holding a role on that database; `users prod` lists every user.",
		args: []string{"connector"}, optional: []string{"db"}, flags: []string{"auth-db"}},
	{name: RotatePassword, usage: "<connector> <user> [--db <authdb>] [--kill-sessions] [--logout-all]",
		summary: "give the user a new generated password; its owner reveals it once",
		details: "Connections already logged in stay authenticated after a password change. " +
			"`--kill-sessions` also ends the user's in-flight operations and cursors; " +
			"`--logout-all` drops and re-creates the user with the new password and exactly its previous roles, " +
			"custom data and restrictions, so every existing connection loses its authentication. No rollback: the old password is never stored.",
		args: []string{"connector", "user"}, flags: []string{"db", "kill-sessions", "logout-all"}, mutating: true},
	{name: GrantRole, usage: "<connector> <user> <role>[@<db>] [--db <authdb>] [--for <duration>]",
		summary: "grant one role (in admin unless @db); --for makes it temporary",
		details: "`read@shop` is the built-in read role on shop; a role without @ is in admin. " +
			"`--for 4h` (m, h or d) revokes it again by itself when the time is up. Rollback revokes it (nothing, if the user already had it); " +
			"while a `--for` grant is in force, its requester or an approver rolls it back at once, without a vote.",
		args: []string{"connector", "user", "role"}, flags: []string{"db", "for"}, mutating: true},
	{name: RevokeRole, usage: "<connector> <user> <role>[@<db>] [--db <authdb>]",
		summary: "revoke one role (in admin unless @db)", details: "Rollback grants it again.",
		args: []string{"connector", "user", "role"}, flags: []string{"db"}, mutating: true},
	{name: CreateReadOnlyUser, usage: "<connector> <user> <db> [--db <authdb>]",
		summary: "create a user with read on one database and a generated password",
		details: "The user is created in admin unless `--db` names another authentication database. Rollback drops it.",
		args:    []string{"connector", "user", "db"}, flags: []string{"db"}, mutating: true},
	{name: DropUser, usage: "<connector> <user> [--db <authdb>]", summary: "drop a user (its roles and restrictions are journaled first)",
		details: "No rollback: the password cannot be brought back.",
		args:    []string{"connector", "user"}, flags: []string{"db"}, mutating: true},
	{name: LockUser, usage: "<connector> <user> [--db <authdb>] [--for <duration>]",
		summary: "stop the user from logging in and end its sessions; --for makes it temporary",
		details: "Sets authentication restrictions no client can meet and ends the user's sessions. Rollback restores exactly the previous restrictions.",
		args:    []string{"connector", "user"}, flags: []string{"db", "for"}, mutating: true},
	{name: UnlockUser, usage: "<connector> <user> [--db <authdb>]", summary: "let a locked user log in again",
		details: "Removes the bot's lock. Rollback locks again.",
		args:    []string{"connector", "user"}, flags: []string{"db"}, mutating: true},
	{name: Schedule, usage: `rotate-password <connector> <user> "<cron spec>" [--db <authdb>]`,
		summary: "rotate a password on a calendar (cron spec, UTC unless CRON_TZ=…)",
		details: "Five fields (`0 3 * * 1`) or a descriptor (`@daily`); prefix `CRON_TZ=Europe/Paris ` for a time zone.",
		args:    []string{"action", "connector", "user", "spec"}, flags: []string{"db"}, mutating: true},
	{name: Schedules, summary: "list scheduled rotations"},
	{name: Unschedule, usage: "<schedule-id>", summary: "remove a scheduled rotation", args: []string{"schedule-id"}, mutating: true},
	{name: Requests, summary: "pending approval requests"},
	{name: Cancel, usage: "<request-id>", summary: "withdraw your pending request", args: []string{"request-id"}},
	{name: History, usage: "[<n>]", summary: "the last n journal entries (default 10)", optional: []string{"n"}},
	{name: Access, usage: "<connector> <role>[@<db>] [<role>[@<db>] …] --for <duration>",
		summary: "just-in-time access: a personal user for you, with exactly these roles, dropped when the time is up",
		details: "After approval the bot creates a user for you (named from the connector's template, `jit-<your handle>-<6 random>` by default) " +
			"with exactly the roles asked for, reveals its password to you once, and drops it when `--for` runs out. " +
			"The connector's `jit` policy says which roles may be asked for and for how long; `access-end` ends it early.",
		args: []string{"connector", "role"}, more: "role", flags: []string{"for"}, mutating: true},
	{name: AccessEnd, usage: "<access-id>", summary: "end a just-in-time access early: its user is dropped now (its requester or an approver)",
		details: "The access id is the number of its request (`Request #12`: `access-end 12`).",
		args:    []string{"access-id"}},
	{name: Rollback, usage: "<journal-id>", summary: "undo a journaled action, if the user is still as it left it; approved as the action the undo performs (undoing a grant is a revoke-role)",
		details: "Giving up early what a `--for` grant or an access added runs at once, without a vote, for its requester or an approver.",
		args:    []string{"journal-id"}, mutating: true},
}

func lookup(name string) (verb, bool) {
	for _, v := range verbs {
		if v.name == name {
			return v, true
		}
	}
	return verb{}, false
}

// Mutating reports whether verb changes something (and so may need approval).
func Mutating(name string) bool {
	v, ok := lookup(name)
	return ok && v.mutating
}

// Actions are the verbs that change a MongoDB user, in SPEC order.
var Actions = []string{RotatePassword, GrantRole, RevokeRole, CreateReadOnlyUser, DropUser, LockUser, UnlockUser, Access}
