package atlas

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"mongobot/connector"
	"mongobot/secret"
)

// Verifier reaches a cluster of the project over the MongoDB protocol: a *connector.Mongo
// made from the cluster's address has it. Login uses the user's own credential; State
// (usersInfo) the account of the cluster address, which needs viewUser to say anything.
type Verifier interface {
	Login(ctx context.Context, u connector.UserRef, pw secret.String) error
	State(ctx context.Context, u connector.UserRef) (connector.UserState, error)
}

// ConnectorConfig is one Atlas connector: the API client, the clusters its users are scoped
// to, and how changes are verified live.
type ConnectorConfig struct {
	Name   string
	Client *Client
	// Clusters are the clusters created users may reach (their scopes); empty: the whole
	// project, which Atlas's default is and which the bot does not choose for anyone.
	Clusters []string
	// Verify, when set, logs in over the wire after each password change, until it works or
	// VerifyWithin passes (default 2m): Atlas accepts a change, then its clusters apply it.
	Verify       Verifier
	VerifyWithin time.Duration
	// VerifyEvery is the wait between two attempts (default 2s).
	VerifyEvery time.Duration
	Passwords   connector.PasswordPolicy
	Now         func() time.Time
}

// Connector manages a project's database users through the Administration API, with the
// same actions, undo and previews as a connector over the wire, where Atlas allows them.
type Connector struct {
	cfg ConnectorConfig
}

// NewConnector makes an Atlas connector.
func NewConnector(cfg ConnectorConfig) *Connector {
	if cfg.VerifyWithin <= 0 {
		cfg.VerifyWithin = 2 * time.Minute
	}
	if cfg.VerifyEvery <= 0 {
		cfg.VerifyEvery = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Connector{cfg: cfg}
}

// Name is the connector's name.
func (c *Connector) Name() string { return c.cfg.Name }

// Atlas is false: this connector is the way users are managed on Atlas, not a wire connection
// that must refuse to.
func (c *Connector) Atlas() bool { return false }

// Account is no database user: the connector acts with an API credential.
func (c *Connector) Account() connector.UserRef { return connector.UserRef{} }

// ServerLine describes the project for the journal.
func (c *Connector) ServerLine() string {
	return "MongoDB Atlas project " + c.cfg.Client.ProjectID() + " (Administration API v2)"
}

// Health reports no breaker: each API call has its own deadline and retries.
func (c *Connector) Health() connector.Health { return connector.Health{} }

// Close has nothing to close.
func (c *Connector) Close(context.Context) error { return nil }

// Discover lists the project's users once, which proves the credential can read them.
func (c *Connector) Discover(ctx context.Context) (connector.ServerInfo, error) {
	if _, err := c.cfg.Client.Users(ctx); err != nil {
		return connector.ServerInfo{}, c.wrap(err, "")
	}
	// Whether the credential may change users is asked of Atlas by bot check (CanManage, a
	// refused creation): discovery runs now and then, and sends nothing that could write.
	priv := connector.Privileges{User: c.cfg.Client.Credential()}
	for _, a := range connector.ActionNames() {
		check := connector.ActionCheck{Action: a}
		if why := c.notOnAtlas(a); why != "" {
			check.Missing = []string{"not on Atlas: " + why}
		} else {
			check.Allowed = "the whole project, with Project Owner or Project Database Access Admin (mongobot check asks Atlas)"
		}
		priv.Actions = append(priv.Actions, check)
	}
	return connector.ServerInfo{Version: "Atlas Administration API v2", Topology: "atlas project " + c.cfg.Client.ProjectID(), Atlas: true, Privileges: priv}, nil
}

// notOnAtlas says why a bot action (as discovery names it) cannot be done on Atlas, or "".
func (c *Connector) notOnAtlas(action string) string {
	switch action {
	case "lock-user", "unlock-user":
		return lockReason
	case "rotate-password --kill-sessions", "rotate-password --logout-all":
		return noSessions
	}
	return ""
}

// toRoles turns Atlas roles into the connector's, and back.
func toRoles(rs []Role) []connector.Role {
	var out []connector.Role
	for _, r := range rs {
		out = append(out, connector.Role{Name: r.RoleName, DB: r.DatabaseName})
	}
	slices.SortFunc(out, func(a, b connector.Role) int { return strings.Compare(a.DB+"\x00"+a.Name, b.DB+"\x00"+b.Name) })
	return out
}

func sortRoles(rs []connector.Role) []connector.Role {
	return toRoles(fromRoles(rs))
}

func fromRoles(rs []connector.Role) []Role {
	out := []Role{}
	for _, r := range rs {
		out = append(out, Role{DatabaseName: r.DB, RoleName: r.Name})
	}
	return out
}

// Users lists the project's users (db: only those authenticating there, as usersInfo on a
// server lists a database's users; on Atlas, admin holds every password user).
func (c *Connector) Users(ctx context.Context, db string) ([]connector.User, error) {
	if db != "" {
		if err := connector.ValidateDB(db); err != nil {
			return nil, err
		}
	}
	us, err := c.cfg.Client.Users(ctx)
	if err != nil {
		return nil, c.wrap(err, "")
	}
	var out []connector.User
	for _, u := range us {
		x := connector.User{UserRef: connector.UserRef{User: u.Username, DB: u.DatabaseName}, Roles: toRoles(u.Roles)}
		if db == "" || u.DatabaseName == db {
			out = append(out, x)
		}
	}
	return out, nil
}

// get reads u: its Atlas document and its state (Exists false when Atlas has none).
func (c *Connector) get(ctx context.Context, u connector.UserRef) (DatabaseUser, connector.UserState, error) {
	if err := connector.ValidateRef(u); err != nil {
		return DatabaseUser{}, connector.UserState{}, err
	}
	du, err := c.cfg.Client.User(ctx, u.DB, u.User)
	var e *Error
	if errors.As(err, &e) && e.Kind == ErrNotFound && !strings.Contains(e.Code, "GROUP") && !strings.Contains(e.Code, "PROJECT") {
		// Absent. A 404 about the project (gone, or out of the credential's sight) is an
		// error, not the user's absence: reconciling on it would be wrong both ways.
		return du, connector.UserState{}, nil
	}
	if err != nil {
		return du, connector.UserState{}, c.wrap(err, "read "+u.String())
	}
	return du, connector.UserState{Exists: true, Roles: toRoles(du.Roles)}, nil
}

// State is u as Atlas holds it.
func (c *Connector) State(ctx context.Context, u connector.UserRef) (connector.UserState, error) {
	_, st, err := c.get(ctx, u)
	return st, err
}

// Login logs in as u over the wire, when a verifier is configured.
func (c *Connector) Login(ctx context.Context, u connector.UserRef, pw secret.String) error {
	if c.cfg.Verify == nil {
		return &connector.Error{Kind: connector.ErrUnsupported, Msg: fmt.Sprintf("%s has no cluster address to log in to (cluster_uri), so logins cannot be checked", c.cfg.Name)}
	}
	return c.cfg.Verify.Login(ctx, u, pw)
}

// live logs in with pw until it works or VerifyWithin passes, and says what is confirmed.
func (c *Connector) live(ctx context.Context, ch *connector.Change, u connector.UserRef, pw secret.String) {
	c.until(ctx, ch, "logged in as "+u.String()+" with the new password", func() error { return c.cfg.Verify.Login(ctx, u, pw) })
}

// liveState reads u on the cluster (usersInfo) until it shows want, and says what is
// confirmed; an account that may not read users leaves it unchecked, saying so.
func (c *Connector) liveState(ctx context.Context, ch *connector.Change, u connector.UserRef, want connector.UserState) {
	c.until(ctx, ch, "usersInfo shows it", func() error {
		st, err := c.cfg.Verify.State(ctx, u)
		switch {
		case errors.Is(err, connector.ErrUnauthorized):
			return errUnchecked
		case err != nil:
			return err
		case st.Exists != want.Exists || want.Exists && !slices.Equal(st.Roles, want.Roles):
			return fmt.Errorf("the cluster shows %s", st.Describe())
		}
		return nil
	})
}

var errUnchecked = errors.New("the cluster address's account may not read users (viewUser)")

// until tries check until it works or VerifyWithin passes, and notes what is confirmed:
// "accepted by Atlas; live on cluster0 after 14s (how)".
func (c *Connector) until(ctx context.Context, ch *connector.Change, how string, check func() error) {
	if c.cfg.Verify == nil {
		ch.Notes = append(ch.Notes, "accepted by Atlas; not checked on a cluster (no cluster_uri)")
		return
	}
	start := c.cfg.Now()
	deadline := time.Now().Add(c.cfg.VerifyWithin)
	for {
		err := check()
		switch {
		case err == nil:
			ch.Notes = append(ch.Notes, fmt.Sprintf("accepted by Atlas; live on the cluster after %s (verified: %s)", c.cfg.Now().Sub(start).Round(time.Second), how))
			return
		case errors.Is(err, errUnchecked):
			ch.Notes = append(ch.Notes, "accepted by Atlas; not checked on the cluster: "+err.Error())
			return
		case time.Now().After(deadline) || ctx.Err() != nil:
			ch.Warnings = append(ch.Warnings, fmt.Sprintf("accepted by Atlas, but not live on the cluster after %s (%v); Atlas may still be applying it", c.cfg.VerifyWithin, err))
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(c.cfg.VerifyEvery):
		}
	}
}

func (c *Connector) change(action string, u connector.UserRef, before connector.UserState) connector.Change {
	return connector.Change{Action: action, Connector: c.cfg.Name, User: u, Before: before}
}

// RotatePassword sets a new generated password (PATCH), after handing it to BeforeApply, and
// checks it live. Atlas cannot end sessions or log everyone out: those are refused.
func (c *Connector) RotatePassword(ctx context.Context, o connector.RotateOptions) (connector.Change, secret.String, error) {
	u := o.User
	ch := c.change("rotate-password", u, connector.UserState{})
	if err := connector.ValidateRef(u); err != nil {
		return ch, secret.String{}, err
	}
	if u.DB == connector.ExternalDB {
		return ch, secret.String{}, &connector.Error{Kind: connector.ErrInvalid, Msg: fmt.Sprintf("%s authenticates outside Atlas ($external: X.509, LDAP, AWS IAM or OIDC) and has no password the bot could set", u)}
	}
	if o.KillSessions || o.LogoutAll {
		return ch, secret.String{}, c.unsupported("--kill-sessions and --logout-all", noSessions)
	}
	du, st, err := c.get(ctx, u)
	if err != nil {
		return ch, secret.String{}, err
	}
	ch.Before = st
	if !st.Exists {
		return ch, secret.String{}, &connector.Error{Kind: connector.ErrUserNotFound, Msg: fmt.Sprintf("user %s does not exist in Atlas project %s", u, c.cfg.Client.ProjectID())}
	}
	if !du.SCRAM() {
		return ch, secret.String{}, c.unsupported("a password rotation of "+u.String(), "it authenticates externally (AWS IAM, LDAP, OIDC or X.509) and has no password")
	}
	pw, err := c.cfg.Passwords.NewPassword()
	if err != nil {
		return ch, secret.String{}, err
	}
	if o.BeforeApply != nil {
		if err := o.BeforeApply(pw); err != nil {
			return ch, secret.String{}, err
		}
	}
	// PATCH takes the whole user (the spec reuses the full schema) and does not say whether
	// a field left out is kept or cleared: the user is sent back as read (its scopes and
	// collection-scoped roles included), with only the password changed.
	patch := du
	patch.Password = pw.Reveal()
	if _, err := c.cfg.Client.UpdateUser(ctx, patch); err != nil {
		return ch, secret.String{}, c.wrap(err, "rotate the password of "+u.String())
	}
	ch.After = st
	ch.NoUndo = "the old password was never stored"
	c.live(ctx, &ch, u, pw)
	ch.Notes = append(ch.Notes, "connections already logged in as "+u.String()+" stay authenticated: Atlas does not log them out on a password change, and its API cannot")
	return ch, pw, nil
}

// setRoles replaces u's roles with want(roles), refusing when the user changed between the
// read and the write: the API replaces the whole list, so writing over someone else's edit
// would undo it silently. want returns nil when there is nothing to change: nothing is sent.
func (c *Connector) setRoles(ctx context.Context, action string, u connector.UserRef, r connector.Role, want func([]connector.Role) []connector.Role) (connector.Change, error) {
	ch := c.change(action, u, connector.UserState{})
	ch.Role = &r
	du, st, err := c.get(ctx, u)
	if err != nil {
		return ch, err
	}
	for _, x := range du.Roles {
		if x.CollectionName != "" {
			// The bot's roles are role@db: writing the list back would widen a role on one
			// collection to its whole database.
			return ch, c.unsupported(action+" on "+u.String(), fmt.Sprintf("it holds a role on one collection (%s on %s.%s), which the bot does not manage; change its roles in Atlas", x.RoleName, x.DatabaseName, x.CollectionName))
		}
	}
	ch.Before = st
	if !st.Exists {
		return ch, &connector.Error{Kind: connector.ErrUserNotFound, Msg: fmt.Sprintf("user %s does not exist in Atlas project %s", u, c.cfg.Client.ProjectID())}
	}
	roles := want(st.Roles)
	if roles == nil {
		ch.After = st
		return ch, nil
	}
	if len(roles) == 0 {
		return ch, c.unsupported("revoking the last role of "+u.String(), "an Atlas database user has at least one role; drop the user instead")
	}
	// The API has no version to compare and set: read again just before writing.
	_, again, err := c.get(ctx, u)
	if err != nil {
		return ch, err
	}
	if !slices.Equal(again.Roles, st.Roles) {
		return ch, &connector.Error{Kind: connector.ErrDrift, Msg: fmt.Sprintf("the roles of %s changed in Atlas while the bot was changing them; nothing was written, so as not to undo someone else's edit: ask again", u)}
	}
	patch := du // the user as read, with only its roles changed (see RotatePassword)
	patch.Roles = fromRoles(roles)
	if _, err := c.cfg.Client.UpdateUser(ctx, patch); err != nil {
		return ch, c.wrap(err, action+" "+r.String()+" on "+u.String())
	}
	_, after, err := c.get(ctx, u)
	switch {
	case err != nil:
		after = connector.UserState{Exists: true, Roles: roles}
		ch.Warnings = append(ch.Warnings, "Atlas accepted the change, but the user could not be read back ("+err.Error()+")")
	case !slices.Equal(after.Roles, sortRoles(roles)):
		// Written, but not what reads back: someone changed it at the same moment.
		ch.Warnings = append(ch.Warnings, fmt.Sprintf("Atlas accepted the change, but %s reads back as %s, not as written: someone may have changed it at the same moment", u, after.Describe()))
	}
	ch.After = after
	c.liveState(ctx, &ch, u, after)
	return ch, nil
}

// GrantRole adds r to u's roles. A role u already holds is not written again, and, as on a
// MongoDB server, has nothing to roll back.
func (c *Connector) GrantRole(ctx context.Context, u connector.UserRef, r connector.Role) (connector.Change, error) {
	// An unknown role is refused in words before anything is read or sent, as a server
	// refuses it (code 31); Atlas itself would answer only "invalid attribute".
	if err := c.CheckRole(ctx, r); err != nil {
		ch := c.change("grant-role", u, connector.UserState{})
		ch.Role = &r
		return ch, err
	}
	ch, err := c.setRoles(ctx, "grant-role", u, r, func(rs []connector.Role) []connector.Role {
		if slices.Contains(rs, r) {
			return nil
		}
		return append(slices.Clone(rs), r)
	})
	switch {
	case err != nil:
	case ch.Before.HasRole(r):
		ch.NoUndo = fmt.Sprintf("%s already had %s, so rolling back has nothing to revoke", u, r)
	default:
		ch.Undo = &connector.Undo{Action: connector.UndoRevokeRole, Role: &r, Describe: fmt.Sprintf("revoke %s from %s", r, u)}
	}
	return ch, err
}

// RevokeRole removes r from u's roles; a role u does not hold is a change of nothing.
func (c *Connector) RevokeRole(ctx context.Context, u connector.UserRef, r connector.Role) (connector.Change, error) {
	if err := connector.ValidateRole(r); err != nil {
		ch := c.change("revoke-role", u, connector.UserState{})
		ch.Role = &r
		return ch, err
	}
	ch, err := c.setRoles(ctx, "revoke-role", u, r, func(rs []connector.Role) []connector.Role {
		if !slices.Contains(rs, r) {
			return nil
		}
		return slices.DeleteFunc(slices.Clone(rs), func(x connector.Role) bool { return x == r })
	})
	switch {
	case err != nil:
	case !ch.Before.HasRole(r):
		ch.NoUndo = fmt.Sprintf("%s did not have %s, so rolling back has nothing to grant", u, r)
	default:
		ch.Undo = &connector.Undo{Action: connector.UndoGrantRole, Role: &r, Describe: fmt.Sprintf("grant %s to %s again", r, u)}
	}
	return ch, err
}

// create makes u with roles, scoped to the configured clusters, and a password handed to
// beforeApply first; until, when not zero and at most a week away, is its deleteAfterDate:
// Atlas then deletes it by itself even if the bot is gone.
func (c *Connector) create(ctx context.Context, action string, u connector.UserRef, roles []connector.Role, until time.Time, describe string, beforeApply func(secret.String) error) (connector.Change, secret.String, error) {
	ch := c.change(action, u, connector.UserState{})
	if u.DB != "admin" {
		return ch, secret.String{}, c.unsupported("a user authenticating on "+u.DB, "Atlas keeps password users in admin")
	}
	_, st, err := c.get(ctx, u)
	if err != nil {
		return ch, secret.String{}, err
	}
	if st.Exists {
		return ch, secret.String{}, &connector.Error{Kind: connector.ErrUserExists, Msg: fmt.Sprintf("user %s already exists in Atlas project %s", u, c.cfg.Client.ProjectID())}
	}
	pw, err := c.cfg.Passwords.NewPassword()
	if err != nil {
		return ch, secret.String{}, err
	}
	if beforeApply != nil {
		if err := beforeApply(pw); err != nil {
			return ch, secret.String{}, err
		}
	}
	du := DatabaseUser{DatabaseName: "admin", Username: u.User, Password: pw.Reveal(), Roles: fromRoles(roles), Description: shorten(describe, 100)}
	for _, cl := range c.cfg.Clusters {
		du.Scopes = append(du.Scopes, Scope{Name: cl, Type: "CLUSTER"})
	}
	// Atlas takes a deleteAfterDate in the future and at most a week away; an end sooner
	// than a minute is left to the bot alone.
	if left := until.Sub(c.cfg.Now()); !until.IsZero() && left > time.Minute && left <= 7*24*time.Hour {
		t := until.UTC()
		du.DeleteAfterDate = &t
		ch.Notes = append(ch.Notes, "Atlas deletes it by itself at "+t.Format("2006-01-02 15:04 UTC")+", even if the bot is down then")
	}
	if _, err := c.cfg.Client.CreateUser(ctx, du); err != nil {
		return ch, secret.String{}, c.wrap(err, "create "+u.String())
	}
	ch.After = connector.UserState{Exists: true, Roles: toRoles(du.Roles)}
	ch.Undo = &connector.Undo{Action: connector.UndoDropUser, Describe: fmt.Sprintf("drop the created user %s", u)}
	c.live(ctx, &ch, u, pw)
	return ch, pw, nil
}

func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}

// CreateReadOnlyUser creates u with read on db.
func (c *Connector) CreateReadOnlyUser(ctx context.Context, u connector.UserRef, db string, beforeApply func(secret.String) error) (connector.Change, secret.String, error) {
	if err := connector.ValidateDB(db); err != nil {
		return c.change("create-readonly-user", u, connector.UserState{}), secret.String{}, err
	}
	return c.create(ctx, "create-readonly-user", u, []connector.Role{{Name: "read", DB: db}}, time.Time{}, "read-only user made by mongobot", beforeApply)
}

// CreateAccessUser creates u for one person's just-in-time access, with deleteAfterDate at
// its end when that is within Atlas's week.
func (c *Connector) CreateAccessUser(ctx context.Context, u connector.UserRef, roles []connector.Role, owner connector.AccessOwner, beforeApply func(secret.String) error) (connector.Change, secret.String, error) {
	return c.create(ctx, "access", u, roles, owner.Until, fmt.Sprintf("mongobot just-in-time access for Slack user %s, request %d", owner.ChatUser, owner.Request), beforeApply)
}

// DropUser deletes u, its document handed to beforeDrop first.
func (c *Connector) DropUser(ctx context.Context, u connector.UserRef, beforeDrop func(connector.UserState) error) (connector.Change, error) {
	ch := c.change("drop-user", u, connector.UserState{})
	_, st, err := c.get(ctx, u)
	if err != nil {
		return ch, err
	}
	ch.Before = st
	if !st.Exists {
		return ch, &connector.Error{Kind: connector.ErrUserNotFound, Msg: fmt.Sprintf("user %s does not exist in Atlas project %s", u, c.cfg.Client.ProjectID())}
	}
	if beforeDrop != nil {
		if err := beforeDrop(st); err != nil {
			return ch, err
		}
	}
	if err := c.cfg.Client.DeleteUser(ctx, u.DB, u.User); err != nil {
		return ch, c.wrap(err, "delete "+u.String())
	}
	ch.NoUndo = "a dropped user's password cannot be brought back"
	c.liveState(ctx, &ch, u, connector.UserState{})
	return ch, nil
}

// Undo reverses a grant, a revoke or a creation, if the user is still as the change left it.
func (c *Connector) Undo(ctx context.Context, ch connector.Change) (connector.Change, error) {
	out := c.change("rollback "+ch.Action, ch.User, connector.UserState{})
	if ch.Undo == nil {
		return out, &connector.Error{Kind: connector.ErrNoUndo, Msg: ch.NoUndo}
	}
	_, now, err := c.get(ctx, ch.User)
	if err != nil {
		return out, err
	}
	if d := connector.Differences(ch.After, now); len(d) > 0 {
		out.Before = now
		return out, &connector.Error{Kind: connector.ErrDrift, Msg: fmt.Sprintf("rollback refused: %s changed in Atlas since the action (%s)", ch.User, strings.Join(d, "; "))}
	}
	switch {
	case (ch.Undo.Action == connector.UndoRevokeRole || ch.Undo.Action == connector.UndoGrantRole) && ch.Undo.Role == nil:
		return out, &connector.Error{Kind: connector.ErrNoUndo, Msg: "the journaled rollback names no role"}
	}
	switch ch.Undo.Action {
	case connector.UndoRevokeRole:
		return c.RevokeRole(ctx, ch.User, *ch.Undo.Role)
	case connector.UndoGrantRole:
		return c.GrantRole(ctx, ch.User, *ch.Undo.Role)
	case connector.UndoDropUser:
		return c.DropUser(ctx, ch.User, nil)
	}
	return out, &connector.Error{Kind: connector.ErrNoUndo, Msg: "no rollback of " + ch.Undo.Action + " on Atlas"}
}

// LockUser is refused: Atlas database users have no authentication restrictions, and the
// API's only other levers are not a lock. Deleting the user loses its password for good;
// moving its scopes to a cluster that does not exist is refused by Atlas and, where it is
// not, still leaves the user able to reach whatever scopes later name. Rotate its password
// instead, which Atlas does faithfully.
func (c *Connector) LockUser(_ context.Context, u connector.UserRef) (connector.Change, error) {
	if err := connector.ValidateRef(u); err != nil {
		return connector.Change{}, err
	}
	return connector.Change{}, c.unsupported("lock-user", lockReason)
}

// UnlockUser is refused, as LockUser is.
func (c *Connector) UnlockUser(_ context.Context, u connector.UserRef, _ []connector.Restriction) (connector.Change, error) {
	if err := connector.ValidateRef(u); err != nil {
		return connector.Change{}, err
	}
	return connector.Change{}, c.unsupported("unlock-user", lockReason)
}

const noSessions = "the Administration API has no way to end a user's sessions"

const lockReason = "Atlas has no login restriction for database users, and nothing the Administration API offers locks a user reversibly; rotate its password instead (rotate-password), or drop it"

// Recreate is refused (it serves --logout-all).
func (c *Connector) Recreate(context.Context, connector.UserRef, connector.UserState, secret.String) (connector.Change, secret.String, error) {
	return connector.Change{}, secret.String{}, c.unsupported("--logout-all", noSessions)
}

// CanRecreate is refused, as Recreate is.
func (c *Connector) CanRecreate(context.Context, connector.UserRef, connector.UserState) error {
	return c.unsupported("--logout-all", noSessions)
}

// Supports says what Atlas cannot do, before anyone is asked to approve it.
func (c *Connector) Supports(_ context.Context, action string, killSessions bool) error {
	what := action
	if action == "rotate-password" && killSessions {
		what = "rotate-password --kill-sessions"
	}
	if why := c.notOnAtlas(what); why != "" {
		// A flag is named alone: the action itself can be done.
		return c.unsupported(strings.TrimPrefix(what, "rotate-password "), why)
	}
	return nil
}

// Aftercare has nothing to do: Atlas applies a change to every node of its clusters.
func (c *Connector) Aftercare(context.Context, connector.UserRef, bool) []string { return nil }

// builtinRoles are Atlas's built-in database-user roles (the spec's roleName enum).
var builtinRoles = []string{"atlasAdmin", "backup", "clusterMonitor", "dbAdmin", "dbAdminAnyDatabase", "enableSharding",
	"read", "readAnyDatabase", "readWrite", "readWriteAnyDatabase"}

// adminOnly are the built-in roles Atlas grants on admin only.
func adminOnly(n string) bool {
	return strings.HasSuffix(n, "AnyDatabase") || n == "atlasAdmin" || n == "backup" || n == "clusterMonitor"
}

// CheckRole says, before anyone is asked to approve a grant, whether r exists in the
// project: one of Atlas's built-in roles (on a database where it can be granted), or one of
// the project's custom roles, which are granted on admin.
func (c *Connector) CheckRole(ctx context.Context, r connector.Role) error {
	if err := connector.ValidateRole(r); err != nil {
		return err
	}
	if slices.Contains(builtinRoles, r.Name) {
		if adminOnly(r.Name) && r.DB != "admin" {
			return &connector.Error{Kind: connector.ErrRoleNotFound, Msg: fmt.Sprintf("role %s does not exist: on Atlas %s is granted on admin only; write %s@admin", r, r.Name, r.Name)}
		}
		return nil
	}
	custom, err := c.cfg.Client.CustomRoles(ctx)
	if err != nil {
		return c.wrap(err, "list the project's custom roles")
	}
	var names []string
	for _, x := range custom {
		if x.RoleName == r.Name && r.DB == "admin" {
			return nil
		}
		names = append(names, x.RoleName+"@admin")
	}
	hint := "none"
	if len(names) > 0 {
		hint = strings.Join(names, ", ")
	}
	if r.Name == "root" || r.Name == "userAdminAnyDatabase" {
		hint += "; Atlas's administrator role is atlasAdmin@admin"
	}
	return &connector.Error{Kind: connector.ErrRoleNotFound, Msg: fmt.Sprintf("role %s does not exist in Atlas project %s: its built-in roles are %s, and its custom roles (granted on admin) %s",
		r, c.cfg.Client.ProjectID(), strings.Join(builtinRoles, ", "), hint)}
}

// Roles are the roles that can be granted on db: Atlas's built-in ones, and on admin the
// project's custom roles (the form's choices).
func (c *Connector) Roles(ctx context.Context, db string) ([]connector.Role, error) {
	var out []connector.Role
	for _, n := range builtinRoles {
		if !adminOnly(n) || db == "admin" {
			out = append(out, connector.Role{Name: n, DB: db})
		}
	}
	if db != "admin" {
		return out, nil
	}
	custom, err := c.cfg.Client.CustomRoles(ctx)
	if err != nil {
		return out, c.wrap(err, "list the project's custom roles")
	}
	for _, x := range custom {
		out = append(out, connector.Role{Name: x.RoleName, DB: "admin"})
	}
	return out, nil
}

func (c *Connector) unsupported(what, why string) error {
	return &connector.Error{Kind: connector.ErrUnsupported, Msg: fmt.Sprintf("%s is a MongoDB Atlas project: %s cannot be done there: %s", c.cfg.Name, what, why)}
}

// wrap turns an API error into the connector's kinds, keeping its sentence.
func (c *Connector) wrap(err error, op string) error {
	var e *Error
	if !errors.As(err, &e) {
		return &connector.Error{Kind: connector.ErrServer, Op: op, Msg: err.Error()}
	}
	kind := connector.ErrServer
	switch e.Kind {
	case ErrUnauthorized, ErrForbidden:
		kind = connector.ErrUnauthorized
	case ErrNotFound:
		kind = connector.ErrUserNotFound
	case ErrConflict:
		kind = connector.ErrUserExists
	case ErrInvalid:
		kind = connector.ErrInvalid
	case ErrUnreachable:
		kind = connector.ErrUnavailable
	case ErrTimeout:
		kind = connector.ErrTimeout
	}
	if e.MaybeApplied {
		// The bot's journal treats a timeout as "may have been applied": the entry stays
		// executing and its outcome is read back from Atlas (reconciliation).
		kind = connector.ErrTimeout
	}
	msg := e.Msg
	if op != "" {
		msg = c.cfg.Name + ": " + op + ": " + msg
	}
	// The sentence names the operation already: Op stays empty so that it is not said twice.
	return &connector.Error{Kind: kind, Msg: msg}
}
