package connector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"mongobot/secret"
)

// ErrRecreateFailed marks a --logout-all rotation (or a recovery) that dropped the user and
// could not create it again. The error's Change.Before is the pre-image to recover from.
var ErrRecreateFailed = errors.New("user dropped but not re-created")

func rolesDoc(rs []Role) bson.A {
	a := bson.A{}
	for _, r := range rs {
		a = append(a, bson.D{{Key: "role", Value: r.Name}, {Key: "db", Value: r.DB}})
	}
	return a
}

// restrictionsDoc is the authenticationRestrictions array for rs: each document as the server
// reported it when known, else built from its lists.
func restrictionsDoc(rs []Restriction) bson.A {
	a := bson.A{}
	for _, r := range rs {
		var raw bson.Raw
		if r.Doc != "" && bson.UnmarshalExtJSON([]byte(r.Doc), true, &raw) == nil {
			a = append(a, raw)
			continue
		}
		d := bson.D{}
		if r.ClientSource != nil {
			d = append(d, bson.E{Key: "clientSource", Value: r.ClientSource})
		}
		if r.ServerAddress != nil {
			d = append(d, bson.E{Key: "serverAddress", Value: r.ServerAddress})
		}
		a = append(a, d)
	}
	return a
}

// checkTarget validates u and refuses Atlas, before anything is sent.
func (m *Mongo) checkTarget(u UserRef, withPassword bool) error {
	if err := ValidateRef(u); err != nil {
		return err
	}
	if withPassword && u.DB == ExternalDB {
		return newErr(ErrInvalid, "", "%s authenticates outside MongoDB ($external: x.509, LDAP or Kerberos) and has no password the bot could set", u)
	}
	if m.atlas {
		return newErr(ErrAtlas, "", "%s", atlasSentence(m.name))
	}
	return nil
}

func (m *Mongo) newChange(action string, u UserRef, pre UserState) Change {
	return Change{Action: action, Connector: m.name, User: u, Before: pre}
}

// reread fills ch.After with the user as the server now has it, after a change the server
// acknowledged; expect is the state that change leads to. The read gets its own time when the
// action's has run out (a write concern error reporting a stepdown also makes the driver look
// for the primary again). It answers "may have been applied" (ErrTimeout), for the caller's
// reconciliation to settle from the server's state, when the user cannot be read, or when the
// write was not confirmed by a majority and the user read back does not show it (a failover
// may have rolled it back). The journal never gets a state nobody read.
func (m *Mongo) reread(ctx context.Context, ch *Change, expect UserState) error {
	post, err := m.State(ctx, ch.User)
	if err != nil && ctx.Err() != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.CommandTimeout)
		post, err = m.State(rctx, ch.User)
		cancel()
	}
	if err != nil {
		return &Error{Kind: ErrTimeout, Op: "usersInfo " + ch.User.String(), err: err,
			Msg: fmt.Sprintf("%s acknowledged the change but %s could not be read again (%s); what the server now holds is checked before anything is reported", m.name, ch.User, sentenceOf(err))}
	}
	ch.After = post
	if d := Differences(expect, post); ch.unconfirmed && len(d) > 0 {
		return newErr(ErrTimeout, "", "%s applied the change on its primary without a majority's confirmation, and %s read back does not show it (%s): a failover may have rolled it back; what the server now holds is checked before anything is reported",
			m.name, ch.User, strings.Join(d, "; "))
	}
	return nil
}

// with returns s changed by f, on copies of its lists.
func with(s UserState, f func(*UserState)) UserState {
	s.Roles = slices.Clone(s.Roles)
	s.Restrictions = slices.Clone(s.Restrictions)
	f(&s)
	return s
}

// RotateOptions are the choices of a password rotation.
type RotateOptions struct {
	User UserRef
	// KillSessions also ends the user's in-flight operations and cursors (killAllSessions).
	KillSessions bool
	// LogoutAll drops and re-creates the user with the new password and exactly its previous
	// roles, custom data and restrictions, so existing connections lose their authentication.
	LogoutAll bool
	// BeforeDrop, with LogoutAll, receives the pre-image before the user is dropped: the
	// caller journals it there. An error from it stops the rotation before anything changes.
	BeforeDrop func(UserState) error
	// BeforeApply receives the new password after it is made and before the server is asked
	// to set it: the caller seals it there, so a crash after the change cannot lose it. An
	// error from it stops the rotation before anything changes.
	BeforeApply func(secret.String) error
}

// RotatePassword sets a newly generated password and, unless turned off, logs in with it.
// The password is returned to be handed to its owner; it appears nowhere else.
func (m *Mongo) RotatePassword(ctx context.Context, o RotateOptions) (Change, secret.String, error) {
	u := o.User
	ch := m.newChange("rotate-password", u, UserState{})
	if err := m.checkTarget(u, true); err != nil {
		return ch, secret.String{}, err
	}
	if o.KillSessions {
		if err := m.canKillSessions(ctx); err != nil {
			return ch, secret.String{}, err
		}
	}
	pre, err := m.existing(ctx, u)
	if err != nil {
		return ch, secret.String{}, err
	}
	ch.Before = pre
	ch.NoUndo = "the old password was never stored"
	if o.LogoutAll {
		if err := m.CanRecreate(ctx, u, pre); err != nil {
			return ch, secret.String{}, err
		}
	}
	pw, err := m.cfg.Passwords.NewPassword()
	if err != nil {
		return ch, secret.String{}, newErr(ErrInvalid, "", "cannot make a password: %v", err)
	}
	if o.BeforeApply != nil {
		if err := o.BeforeApply(pw); err != nil {
			return ch, secret.String{}, err
		}
	}
	if o.LogoutAll {
		if o.BeforeDrop != nil {
			if err := o.BeforeDrop(pre); err != nil {
				return ch, secret.String{}, err
			}
		}
		if err := m.write(ctx, u.DB, bson.D{{Key: "dropUser", Value: u.User}}, "user "+u.String(), &ch); err != nil {
			return ch, secret.String{}, err
		}
		if err := m.create(ctx, u, pw, pre, &ch); err != nil {
			ch.After = UserState{}
			return ch, secret.String{}, recreateFailed(u, m.name, err)
		}
		ch.Notes = append(ch.Notes, "the user was dropped and re-created with its previous roles, custom data and restrictions: every existing connection loses its authentication at its next command")
	} else {
		// updateUser with a pwd and no mechanisms stores credentials for every mechanism
		// the server allows (authenticationMechanisms): a SCRAM-SHA-1-only user would gain
		// SCRAM-SHA-256. Naming the user's current set keeps a rotation a rotation.
		cmd := bson.D{{Key: "updateUser", Value: u.User}, {Key: "pwd", Value: pw.Reveal()},
			{Key: "digestPassword", Value: true}}
		if len(pre.Mechanisms) > 0 {
			cmd = append(cmd, bson.E{Key: "mechanisms", Value: pre.Mechanisms})
		}
		if err := m.mapErrSecret(m.write(ctx, u.DB, cmd, "user "+u.String(), &ch), pw); err != nil {
			return ch, secret.String{}, err
		}
		ch.Notes = append(ch.Notes, "connections already logged in as "+u.String()+" stay authenticated: MongoDB does not log them out on a password change (--logout-all does)")
	}
	m.refreshRouters(ctx, &ch) // before the verifying login, which may reach any router
	if o.KillSessions {
		m.killSessions(ctx, &ch)
	}
	expect := with(pre, func(s *UserState) {
		if o.LogoutAll {
			s.UserID = "" // created again: a new userId
		}
	})
	if err := m.reread(ctx, &ch, expect); err != nil {
		return ch, secret.String{}, err
	}
	m.verifyLogin(ctx, &ch, pw)
	return ch, pw, nil
}

func recreateFailed(u UserRef, name string, cause error) error {
	e := &Error{Kind: ErrRecreateFailed, Op: "createUser " + u.String(),
		Msg: fmt.Sprintf("%s was dropped on %s but creating it again failed (%v); its roles, custom data and restrictions were saved before the drop and it can be recovered from them", u, name, cause),
		err: cause}
	var inner *Error
	if errors.As(cause, &inner) {
		e.Code = inner.Code
	}
	return e
}

// create sends createUser for u with pw and the roles, custom data, restrictions and
// mechanisms of like; an unconfirmed write is a warning on ch.
func (m *Mongo) create(ctx context.Context, u UserRef, pw secret.String, like UserState, ch *Change) error {
	cmd := bson.D{{Key: "createUser", Value: u.User}, {Key: "pwd", Value: pw.Reveal()},
		{Key: "roles", Value: rolesDoc(like.Roles)}, {Key: "digestPassword", Value: true}}
	if like.CustomData != "" {
		var doc bson.Raw
		if err := bson.UnmarshalExtJSON([]byte(like.CustomData), true, &doc); err != nil {
			return newErr(ErrInvalid, "", "the saved customData of %s does not decode: %v", u, err)
		}
		cmd = append(cmd, bson.E{Key: "customData", Value: doc})
	}
	if len(like.Restrictions) > 0 {
		cmd = append(cmd, bson.E{Key: "authenticationRestrictions", Value: restrictionsDoc(like.Restrictions)})
	}
	if len(like.Mechanisms) > 0 {
		cmd = append(cmd, bson.E{Key: "mechanisms", Value: like.Mechanisms})
	}
	return m.mapErrSecret(m.write(ctx, u.DB, cmd, "user "+u.String(), ch), pw)
}

// write sends a user-changing command to db with writeConcern {w: "majority"} inside it
// (reference §6). A writeConcernError in an ok:1 reply, whatever its code, means the primary
// applied the command and a majority did not confirm it: the change is in effect, so the
// action goes on as applied and the sentence becomes a warning on ch.
func (m *Mongo) write(ctx context.Context, db string, cmd bson.D, what string, ch *Change) error {
	cmd = append(cmd, bson.E{Key: "writeConcern", Value: writeConcern})
	err := m.run(ctx, db, cmd, nil, what)
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	switch {
	case e.Kind == ErrUnconfirmed:
		ch.Warnings = append(ch.Warnings, e.Msg)
		ch.unconfirmed = true
		return nil
	case m.deployment().sharded && slices.Contains(stateChangeCodes, e.Code):
		// A mongos answers a write concern failure of the config servers as the command's
		// own error, after the change was applied there; a stepdown before it was applied
		// answers the same codes. Only the user's state can tell: the caller checks it.
		e.Kind = ErrTimeout
		e.Msg = fmt.Sprintf("%s answered %s with code %d from its config servers; on a sharded cluster that comes before or after the change was applied, so whether it took effect is checked against the user's state", m.name, e.Op, e.Code)
	}
	return err
}

// stateChangeCodes end a command when the replica set changes primaries or shuts down, or
// when a router loses its config servers (6 HostUnreachable, 89 NetworkTimeout, 202
// NetworkInterfaceExceededTimeLimit, 262 ExceededTimeLimit, 9001 SocketException): from a
// mongos, none of them says whether the config servers applied the change.
var stateChangeCodes = []int32{6, 89, 91, codePrimarySteppedDown, 202, 262, 9001, 11602}

// mapErrSecret scrubs a password the error text might quote.
func (m *Mongo) mapErrSecret(err error, pw secret.String) error {
	var e *Error
	if errors.As(err, &e) {
		e.Msg = secret.Scrub(e.Msg, pw)
		if e.err != nil {
			e.err = scrub(e.err, pw)
		}
	}
	return err
}

// verifyLogin logs in as the user with its new password on a fresh client, and records the
// outcome on ch. Off when the config says so.
func (m *Mongo) verifyLogin(ctx context.Context, ch *Change, pw secret.String) {
	if m.cfg.SkipVerifyLogin {
		ch.Notes = append(ch.Notes, "the new password was not verified by logging in (turned off in the config)")
		return
	}
	if err := m.Login(ctx, ch.User, pw); err != nil {
		ch.Warnings = append(ch.Warnings, "logging in with the new password failed: "+err.Error())
		return
	}
	ch.Notes = append(ch.Notes, "verified: logged in as "+ch.User.String()+" with the new password")
}

// Login opens a separate connection as u with password pw and pings: it proves the password.
func (m *Mongo) Login(ctx context.Context, u UserRef, pw secret.String) error {
	if err := m.refuseIfDown("login as " + u.String()); err != nil {
		return err
	}
	c, err := mongo.Connect(m.clientOptions(&options.Credential{Username: u.User, Password: pw.Reveal(), AuthSource: u.DB}))
	if err != nil {
		return m.mapErrSecret(m.mapErr(err, "login as "+u.String(), "user "+u.String()), pw)
	}
	defer c.Disconnect(context.Background())
	ctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
	defer cancel()
	err = c.Database(u.DB).RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
	if err == nil {
		return nil
	}
	e := m.mapErr(err, "login as "+u.String(), "user "+u.String())
	var me *Error
	if errors.As(e, &me) && me.Kind == ErrAuthFailed {
		me.Msg = fmt.Sprintf("%s could not log in to %s: authentication failed", u, m.name)
	}
	return m.mapErrSecret(e, pw)
}

// canKillSessions refuses, before anything is sent, on servers without killAllSessions.
func (m *Mongo) canKillSessions(ctx context.Context) error {
	info, err := m.serverInfo(ctx)
	if err != nil {
		return err
	}
	if info.FerretDB != "" {
		return newErr(ErrUnsupported, "", "%s is FerretDB %s, which has no killAllSessions: sessions cannot be killed there (rotate without --kill-sessions)", m.name, info.FerretDB)
	}
	return nil
}

// GrantRole adds role r to u. Undo revokes it, unless u already had it.
func (m *Mongo) GrantRole(ctx context.Context, u UserRef, r Role) (Change, error) {
	return m.changeRole(ctx, "grant-role", "grantRolesToUser", u, r)
}

// RevokeRole removes role r from u. Undo grants it again, unless u did not have it.
func (m *Mongo) RevokeRole(ctx context.Context, u UserRef, r Role) (Change, error) {
	return m.changeRole(ctx, "revoke-role", "revokeRolesFromUser", u, r)
}

func (m *Mongo) changeRole(ctx context.Context, action, command string, u UserRef, r Role) (Change, error) {
	ch := m.newChange(action, u, UserState{})
	ch.Role = &r
	if err := m.checkTarget(u, false); err != nil {
		return ch, err
	}
	if err := ValidateRole(r); err != nil {
		return ch, err
	}
	pre, err := m.existing(ctx, u)
	if err != nil {
		return ch, err
	}
	ch.Before = pre
	cmd := bson.D{{Key: command, Value: u.User}, {Key: "roles", Value: rolesDoc([]Role{r})}}
	if err := m.write(ctx, u.DB, cmd, "user "+u.String(), &ch); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Kind == ErrRoleNotFound {
			e.Msg = fmt.Sprintf("role %s does not exist on %s (built-in roles such as readAnyDatabase exist only in admin: write role@db)", r, m.name)
		}
		return ch, err
	}
	m.refreshRouters(ctx, &ch)
	expect := with(pre, func(s *UserState) {
		if s.Roles = slices.DeleteFunc(s.Roles, func(x Role) bool { return x == r }); action == "grant-role" {
			s.Roles = sortedRoles(append(s.Roles, r))
		}
	})
	if err := m.reread(ctx, &ch, expect); err != nil {
		return ch, err
	}
	grant := action == "grant-role"
	switch {
	case grant && pre.HasRole(r):
		ch.NoUndo = fmt.Sprintf("%s already had %s, so rolling back has nothing to revoke", u, r)
	case !grant && !pre.HasRole(r):
		ch.NoUndo = fmt.Sprintf("%s did not have %s, so rolling back has nothing to grant", u, r)
	case grant:
		ch.Undo = &Undo{Action: UndoRevokeRole, Role: &r, Describe: fmt.Sprintf("revoke %s from %s", r, u)}
	default:
		ch.Undo = &Undo{Action: UndoGrantRole, Role: &r, Describe: fmt.Sprintf("grant %s to %s again", r, u)}
	}
	if ch.After.Exists && ch.After.HasRole(r) != grant {
		ch.Warnings = append(ch.Warnings, fmt.Sprintf("the server accepted the change but %s does not show it when read again", u))
	}
	return ch, nil
}

// CreateReadOnlyUser creates u with a generated password and the role read on db. Undo drops
// it. It is refused on FerretDB, which has no authorization: a user there is never read-only.
// beforeApply (may be nil) receives the password before the server is asked to create the
// user, as RotateOptions.BeforeApply does; its error stops the creation.
func (m *Mongo) CreateReadOnlyUser(ctx context.Context, u UserRef, db string, beforeApply func(secret.String) error) (Change, secret.String, error) {
	if err := ValidateDB(db); err != nil {
		return m.newChange("create-readonly-user", u, UserState{}), secret.String{}, err
	}
	if err := m.checkTarget(u, true); err != nil {
		return m.newChange("create-readonly-user", u, UserState{}), secret.String{}, err
	}
	info, err := m.serverInfo(ctx)
	if err != nil {
		return m.newChange("create-readonly-user", u, UserState{}), secret.String{}, err
	}
	if info.FerretDB != "" {
		return m.newChange("create-readonly-user", u, UserState{}), secret.String{},
			newErr(ErrUnsupported, "", "%s is FerretDB %s, which has no roles and no authorization: any user it has can read and write everything, so the bot will not create one and call it read-only", m.name, info.FerretDB)
	}
	return m.createUser(ctx, "create-readonly-user", u, UserState{Roles: []Role{{Name: "read", DB: db}}}, beforeApply)
}

// AccessOwner is who a just-in-time user is for, and until when: written into the user's
// customData, so that anyone listing the server's users can tell whose it is and that it is
// temporary.
type AccessOwner struct {
	// ChatUser is the requester's chat id (a Slack user id).
	ChatUser string
	Request  uint64
	Until    time.Time
}

// customData is o as the user's customData, in canonical Extended JSON.
func (o AccessOwner) customData() string {
	doc := bson.D{{Key: "mongobot", Value: bson.D{{Key: "jit", Value: true}, {Key: "slack_user", Value: o.ChatUser},
		{Key: "request", Value: int64(o.Request)}, {Key: "until", Value: bson.NewDateTimeFromTime(o.Until)}}}}
	raw, err := bson.MarshalExtJSON(doc, true, false)
	if err != nil {
		return "" // unreachable: the document is made of plain values
	}
	return string(raw)
}

// CreateAccessUser creates u for one person's just-in-time access: exactly roles, a generated
// password (handed to beforeApply first, to be sealed), and customData naming its owner and
// end. Undo drops it. FerretDB is refused: it has no roles, so the user could do anything.
func (m *Mongo) CreateAccessUser(ctx context.Context, u UserRef, roles []Role, owner AccessOwner, beforeApply func(secret.String) error) (Change, secret.String, error) {
	const action = "access"
	if len(roles) == 0 {
		return m.newChange(action, u, UserState{}), secret.String{}, newErr(ErrInvalid, "", "access needs at least one role")
	}
	info, err := m.serverInfo(ctx)
	if err != nil {
		return m.newChange(action, u, UserState{}), secret.String{}, err
	}
	if info.FerretDB != "" {
		return m.newChange(action, u, UserState{}), secret.String{},
			newErr(ErrUnsupported, "", "%s is FerretDB %s, which has no roles and no authorization: a user it has can read and write everything, so the bot will not create one for limited access", m.name, info.FerretDB)
	}
	return m.createUser(ctx, action, u, UserState{Roles: roles, CustomData: owner.customData()}, beforeApply)
}

// CreateUser creates u with a generated password and exactly roles (which may be empty),
// then logs in with it. Undo drops the user. action names the change.
func (m *Mongo) CreateUser(ctx context.Context, action string, u UserRef, roles []Role) (Change, secret.String, error) {
	return m.createUser(ctx, action, u, UserState{Roles: roles}, nil)
}

func (m *Mongo) createUser(ctx context.Context, action string, u UserRef, like UserState, beforeApply func(secret.String) error) (Change, secret.String, error) {
	roles := like.Roles
	ch := m.newChange(action, u, UserState{})
	if err := m.checkTarget(u, true); err != nil {
		return ch, secret.String{}, err
	}
	for _, r := range roles {
		if err := ValidateRole(r); err != nil {
			return ch, secret.String{}, err
		}
	}
	pre, err := m.State(ctx, u)
	if err != nil {
		return ch, secret.String{}, err
	}
	if pre.Exists {
		return ch, secret.String{}, newErr(ErrUserExists, "", "user %s already exists on %s", u, m.name)
	}
	pw, err := m.cfg.Passwords.NewPassword()
	if err != nil {
		return ch, secret.String{}, newErr(ErrInvalid, "", "cannot make a password: %v", err)
	}
	if beforeApply != nil {
		if err := beforeApply(pw); err != nil {
			return ch, secret.String{}, err
		}
	}
	if err := m.create(ctx, u, pw, like, &ch); err != nil {
		return ch, secret.String{}, err
	}
	if err := m.reread(ctx, &ch, UserState{Exists: true, Roles: sortedRoles(roles)}); err != nil {
		return ch, secret.String{}, err
	}
	ch.Undo = &Undo{Action: UndoDropUser, Describe: fmt.Sprintf("drop the created user %s", u)}
	m.verifyLogin(ctx, &ch, pw)
	return ch, pw, nil
}

// DropUser removes u. beforeDrop (may be nil) receives the pre-image first, for the journal;
// its error stops the drop. There is no undo: the password cannot be brought back.
func (m *Mongo) DropUser(ctx context.Context, u UserRef, beforeDrop func(UserState) error) (Change, error) {
	ch := m.newChange("drop-user", u, UserState{})
	if err := m.checkTarget(u, false); err != nil {
		return ch, err
	}
	pre, err := m.existing(ctx, u)
	if err != nil {
		return ch, err
	}
	ch.Before = pre
	if beforeDrop != nil {
		if err := beforeDrop(pre); err != nil {
			return ch, err
		}
	}
	if err := m.write(ctx, u.DB, bson.D{{Key: "dropUser", Value: u.User}}, "user "+u.String(), &ch); err != nil {
		return ch, err
	}
	m.refreshRouters(ctx, &ch)
	if err := m.reread(ctx, &ch, UserState{}); err != nil {
		return ch, err
	}
	ch.NoUndo = "MongoDB keeps only password hashes, so its password cannot be brought back (its roles, custom data and restrictions are kept in the journal)"
	ch.Notes = append(ch.Notes, "connections logged in as "+u.String()+" lose their authentication at their next command")
	return ch, nil
}

// Recreate creates u again from a pre-image saved before a drop (a --logout-all rotation
// interrupted between drop and create), with a new generated password.
//
// pw, when not empty, is the password to create it with (the one the caller sealed before the
// rotation began, so that every attempt sets the same one and a login can tell which took);
// empty makes a new one.
func (m *Mongo) Recreate(ctx context.Context, u UserRef, pre UserState, pw secret.String) (Change, secret.String, error) {
	ch := m.newChange("recreate-user", u, UserState{})
	if err := m.checkTarget(u, true); err != nil {
		return ch, secret.String{}, err
	}
	now, err := m.State(ctx, u)
	if err != nil {
		return ch, secret.String{}, err
	}
	ch.Before = now
	if now.Exists {
		return ch, secret.String{}, newErr(ErrConflict, "", "user %s exists on %s: nothing to recover", u, m.name)
	}
	if pw.Empty() {
		if pw, err = m.cfg.Passwords.NewPassword(); err != nil {
			return ch, secret.String{}, newErr(ErrInvalid, "", "cannot make a password: %v", err)
		}
	}
	if err := m.create(ctx, u, pw, pre, &ch); err != nil {
		return ch, secret.String{}, recreateFailed(u, m.name, err)
	}
	m.refreshRouters(ctx, &ch) // routers may hold the dropped user
	if err := m.reread(ctx, &ch, with(pre, func(s *UserState) { s.Exists, s.UserID = true, "" })); err != nil {
		return ch, secret.String{}, err
	}
	ch.NoUndo = "re-creating a dropped user is a recovery; it has no rollback"
	m.verifyLogin(ctx, &ch, pw)
	return ch, pw, nil
}

// CanLock says, before anything is sent and before anyone is asked to approve, whether this
// deployment can lock users: it needs authenticationRestrictions, which every server this bot
// speaks to has (since 3.6; the driver needs 4.4), and which FerretDB accepts but ignores.
func (m *Mongo) CanLock(ctx context.Context) error {
	if m.atlas {
		return newErr(ErrAtlas, "", "%s", atlasSentence(m.name))
	}
	info, err := m.serverInfo(ctx)
	if err != nil {
		return err
	}
	if info.FerretDB != "" {
		return newErr(ErrUnsupported, "", "%s is FerretDB %s, which ignores authenticationRestrictions: a lock would not stop anyone from logging in, so the bot refuses to pretend", m.name, info.FerretDB)
	}
	return nil
}

// LockUser makes u unable to log in (an unmatchable authenticationRestrictions) and ends its
// sessions. Undo restores exactly the restrictions it had before.
func (m *Mongo) LockUser(ctx context.Context, u UserRef) (Change, error) {
	ch := m.newChange("lock-user", u, UserState{})
	if err := m.checkTarget(u, false); err != nil {
		return ch, err
	}
	if err := m.CanLock(ctx); err != nil {
		return ch, err
	}
	pre, err := m.existing(ctx, u)
	if err != nil {
		return ch, err
	}
	ch.Before = pre
	if pre.Locked() {
		return ch, newErr(ErrConflict, "", "user %s is already locked on %s", u, m.name)
	}
	if err := m.setRestrictions(ctx, u, LockRestrictions(), &ch); err != nil {
		return ch, err
	}
	ch.Notes = append(ch.Notes, "new logins as "+u.String()+" are refused, and connections already logged in lose their authentication at their next command")
	m.refreshRouters(ctx, &ch)
	m.killSessions(ctx, &ch)
	if err := m.reread(ctx, &ch, with(pre, func(s *UserState) { s.Restrictions = LockRestrictions() })); err != nil {
		return ch, err
	}
	if ch.After.Exists && !ch.After.Locked() {
		ch.Warnings = append(ch.Warnings, "the server accepted the lock but does not show it when the user is read again")
	}
	ch.Undo = &Undo{Action: UndoSetRestrictions, Restrictions: pre.Restrictions,
		Describe: fmt.Sprintf("unlock %s (restore its previous authentication restrictions: %s)", u, describeRestrictions(pre.Restrictions))}
	return ch, nil
}

// UnlockUser removes the bot's lock from u and puts back restore, the restrictions the user
// had before it was locked (from the lock's journal entry; nil when it had none). Undo locks
// it again.
func (m *Mongo) UnlockUser(ctx context.Context, u UserRef, restore []Restriction) (Change, error) {
	ch := m.newChange("unlock-user", u, UserState{})
	if err := m.checkTarget(u, false); err != nil {
		return ch, err
	}
	if err := m.CanLock(ctx); err != nil {
		return ch, err
	}
	pre, err := m.existing(ctx, u)
	if err != nil {
		return ch, err
	}
	ch.Before = pre
	if !pre.Locked() {
		return ch, newErr(ErrConflict, "", "user %s is not locked by the bot on %s (its authentication restrictions: %s)", u, m.name, describeRestrictions(pre.Restrictions))
	}
	if err := m.setRestrictions(ctx, u, restore, &ch); err != nil {
		return ch, err
	}
	m.refreshRouters(ctx, &ch)
	if err := m.reread(ctx, &ch, with(pre, func(s *UserState) { s.Restrictions = restore })); err != nil {
		return ch, err
	}
	ch.Undo = &Undo{Action: UndoSetRestrictions, Restrictions: LockRestrictions(), Describe: fmt.Sprintf("lock %s again", u)}
	ch.Notes = append(ch.Notes, "connections refused while the user was locked stay logged out: applications must reconnect")
	return ch, nil
}

func (m *Mongo) setRestrictions(ctx context.Context, u UserRef, rs []Restriction, ch *Change) error {
	cmd := bson.D{{Key: "updateUser", Value: u.User}, {Key: "authenticationRestrictions", Value: restrictionsDoc(rs)}}
	return m.write(ctx, u.DB, cmd, "user "+u.String(), ch)
}

// Undo reverses ch: it first checks that the user is still in the state ch left, and refuses
// with the differences otherwise (ErrDrift). The returned Change describes the reversal,
// which can itself be undone.
func (m *Mongo) Undo(ctx context.Context, ch Change) (Change, error) {
	out := m.newChange("rollback "+ch.Action, ch.User, UserState{})
	if ch.Undo == nil {
		reason := ch.NoUndo
		if reason == "" {
			reason = "this action has no rollback"
		}
		return out, newErr(ErrNoUndo, "", "%s", reason)
	}
	if err := m.checkTarget(ch.User, false); err != nil {
		return out, err
	}
	now, err := m.State(ctx, ch.User)
	if err != nil {
		return out, err
	}
	if d := Differences(ch.After, now); len(d) > 0 {
		out.Before = now
		e := newErr(ErrDrift, "", "rollback refused: %s changed since the action (%s)", ch.User, strings.Join(d, "; "))
		return out, e
	}
	switch ch.Undo.Action {
	case UndoRevokeRole:
		return m.RevokeRole(ctx, ch.User, *ch.Undo.Role)
	case UndoGrantRole:
		return m.GrantRole(ctx, ch.User, *ch.Undo.Role)
	case UndoDropUser:
		return m.DropUser(ctx, ch.User, nil)
	case UndoSetRestrictions:
		if describeRestrictions(ch.Undo.Restrictions) == "locked" {
			return m.LockUser(ctx, ch.User)
		}
		return m.UnlockUser(ctx, ch.User, ch.Undo.Restrictions)
	}
	return out, newErr(ErrNoUndo, "", "unknown undo action %q", ch.Undo.Action)
}

// Supports says, before anything is sent and before anyone is asked to approve, whether this
// deployment can do action ("rotate-password", "grant-role", ...) with the given options
// (killSessions, logoutAll for a rotation). Nil means it can, as far as discovery tells.
func (m *Mongo) Supports(ctx context.Context, action string, killSessions bool) error {
	if m.atlas {
		return newErr(ErrAtlas, "", "%s", atlasSentence(m.name))
	}
	switch action {
	case "lock-user", "unlock-user":
		return m.CanLock(ctx)
	case "rotate-password":
		if killSessions {
			return m.canKillSessions(ctx)
		}
		return nil
	case "grant-role", "revoke-role", "create-readonly-user", "access":
		info, err := m.serverInfo(ctx)
		if err != nil {
			return err
		}
		if info.FerretDB != "" {
			return newErr(ErrUnsupported, "", "%s is FerretDB %s, which has no roles: %s cannot work there", m.name, info.FerretDB, action)
		}
	}
	return nil
}
