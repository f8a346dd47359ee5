package mongotest

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/xdg-go/scram"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Applied is one change to one user that the emulator applied, as it recorded it at the moment
// it applied it (before any DelayAfter or DropAfter fault held back the answer). It holds no
// password, only whether one was set.
//
// Commands that fail change nothing and record nothing. A command that changes several users
// (dropAllUsersFromDatabase, dropRole) records one entry per user, in user-name order; one that
// changes none records nothing.
type Applied struct {
	// Seq numbers the entries from 1, with no gaps, in the order the changes were applied.
	Seq uint64
	// Time is when the change was applied (the emulator's wall clock).
	Time time.Time
	// Command is the command applied: createUser, updateUser, dropUser,
	// dropAllUsersFromDatabase, grantRolesToUser, revokeRolesFromUser, or dropRole (which takes
	// the dropped role away from every user holding it). Server.CreateUser, and the admin account
	// NewServer makes, record "createUser".
	Command string
	// User is the user changed.
	User UserRef
	// By is the account logged in on the connection that sent the command; the zero UserRef for
	// a change made through a Server method (CreateUser, NewServer's admin account).
	By UserRef
	// Conn is the connection's id (the connectionId hello reports); 0 for Server methods.
	Conn int32
	// Fields are the user fields the command set, in the command's order, among "pwd", "roles",
	// "customData", "authenticationRestrictions" and "mechanisms" (createUser and updateUser),
	// or "roles" (grantRolesToUser, revokeRolesFromUser, dropRole). Nil for drops. A field set
	// to the value it had is listed here, though the change flags below stay false.
	Fields []string
	// Created and Dropped tell a user that began or ceased to exist.
	Created, Dropped bool
	// PasswordChanged is true when new credentials were derived from a password: createUser
	// with a password (including Server.CreateUser) and updateUser with pwd, even the same one.
	PasswordChanged bool
	// RolesAdded and RolesRemoved are the roles the user gained and lost, sorted as in
	// UserSnapshot. A creation adds all its roles; a drop removes them all.
	RolesAdded, RolesRemoved []Role
	// RestrictionsChanged is true when the authentication restrictions after differ from those
	// before (see Before and After for both lists). Creating a user with restrictions and
	// dropping one that had some count as changes.
	RestrictionsChanged bool
	// CustomDataChanged is true when customData differs from before (byte for byte).
	CustomDataChanged bool
	// MechanismsChanged is true when the user's SCRAM mechanisms differ from before.
	MechanismsChanged bool
	// Before is the user just before the change, nil on creation; After is the user just after,
	// nil on a drop.
	Before, After *UserSnapshot
}

// UserSnapshot is a user as the emulator holds it, without credentials.
type UserSnapshot struct {
	User UserRef
	// UserID is the user's userId: a user dropped and re-created under the same name gets a new
	// one.
	UserID [16]byte
	// Roles are sorted by database, then role name.
	Roles []Role
	// Restrictions are the authenticationRestrictions documents, in order; nil when none.
	Restrictions []Restriction
	// CustomData is the customData document; nil when absent.
	CustomData bson.Raw
	// Mechanisms are the SCRAM mechanisms the user has credentials for.
	Mechanisms []string
	// PasswordVersion counts the passwords the user has had: 1 at creation, plus one for each
	// updateUser that set one.
	PasswordVersion int
}

// Applied returns a copy of every change recorded so far, in order.
func (s *Server) Applied() []Applied { return s.AppliedSince(0) }

// AppliedSince returns a copy of the changes recorded after seq (those with Seq > seq), in
// order: AppliedSince(0) is Applied().
func (s *Server) AppliedSince(seq uint64) []Applied {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Seq is the index plus one: entries are never removed.
	if seq >= uint64(len(s.applied)) {
		return nil
	}
	out := make([]Applied, 0, uint64(len(s.applied))-seq)
	for _, a := range s.applied[seq:] {
		out = append(out, a.clone())
	}
	return out
}

// AppliedSeq is the Seq of the last change recorded, 0 when none: changes applied after a call
// are AppliedSince(that value).
func (s *Server) AppliedSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// Snapshot returns every user the emulator holds, the admin account included.
func (s *Server) Snapshot() map[UserRef]UserSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[UserRef]UserSnapshot, len(s.users))
	for _, u := range s.users {
		out[UserRef{User: u.name, DB: u.db}] = u.snapshot()
	}
	return out
}

// CheckPassword reports whether pwd is the password of user ref: whether it gives the stored
// credentials of each of the user's mechanisms. False when the user does not exist.
func (s *Server) CheckPassword(ref UserRef, pwd string) bool {
	type stored struct {
		mech string
		kf   scram.KeyFactors
		key  []byte
	}
	s.mu.Lock()
	u := s.users[userKey{ref.DB, ref.User}]
	var creds []stored
	if u != nil {
		for _, m := range u.mechanisms {
			c := u.creds[m]
			creds = append(creds, stored{m, c.KeyFactors, slices.Clone(c.StoredKey)})
		}
	}
	s.mu.Unlock()
	if len(creds) == 0 {
		return false
	}
	for _, c := range creds {
		got, err := deriveCredentials(ref.User, pwd, c.mech, c.kf)
		if err != nil || subtle.ConstantTimeCompare(got.StoredKey, c.key) != 1 {
			return false
		}
	}
	return true
}

// CreateUser creates user name in database db with password pwd (credentials for both SCRAM
// mechanisms) and roles, directly in the emulator's state, as a test's setup would with
// createUser: for instance a second administrator for the code under test, so that the test's
// own admin connection (URI) and that code act as different accounts. UserURI logs in as it. It
// is recorded in Applied with a zero By. Each role must be built in or made by createRole.
func (s *Server) CreateUser(name, pwd, db string, roles []Role) error {
	if name == "" || db == "" || strings.ContainsRune(name, 0) {
		return fmt.Errorf("mongotest: bad user name %q@%q", name, db)
	}
	if pwd == "" {
		return errors.New("mongotest: CreateUser needs a password")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var rs []Role
	for _, r := range roles {
		if r.Role == "" || r.DB == "" {
			return fmt.Errorf("mongotest: bad role %+v", r)
		}
		if !builtin(r) && s.roles[userKey{r.DB, r.Role}] == nil {
			return fmt.Errorf("mongotest: no role %s@%s", r.Role, r.DB)
		}
		if !slices.Contains(rs, r) {
			rs = append(rs, r)
		}
	}
	key := userKey{db, name}
	if s.users[key] != nil {
		return fmt.Errorf("mongotest: user %s@%s already exists", name, db)
	}
	u, err := newUser(name, db, pwd, rs, nil)
	if err != nil {
		return err
	}
	s.users[key] = u
	s.record(nil, "createUser", nil, u, []string{"pwd", "roles"}, true)
	return nil
}

// record appends a change: before is the user's snapshot before it (nil on creation), u the
// user after it (nil on a drop; then before must be set). Caller holds s.mu.
func (s *Server) record(c *conn, command string, before *UserSnapshot, u *user, fields []string, pwdChanged bool) {
	s.seq++
	a := Applied{Seq: s.seq, Time: time.Now(), Command: command, Fields: slices.Clone(fields),
		PasswordChanged: pwdChanged, Before: before}
	if c != nil {
		a.Conn = c.id
		if c.auth != nil {
			a.By = UserRef{User: c.auth.key.name, DB: c.auth.key.db}
		}
	}
	var oldRoles, newRoles []Role
	var oldRestr, newRestr []Restriction
	var oldCustom, newCustom bson.Raw
	var oldMechs, newMechs []string
	if before != nil {
		a.User = before.User
		oldRoles, oldRestr, oldCustom, oldMechs = before.Roles, before.Restrictions, before.CustomData, before.Mechanisms
	} else {
		a.Created = true
	}
	if u != nil {
		after := u.snapshot()
		a.After = &after
		a.User = after.User
		newRoles, newRestr, newCustom, newMechs = after.Roles, after.Restrictions, after.CustomData, after.Mechanisms
	} else {
		a.Dropped = true
	}
	for _, r := range newRoles {
		if !slices.Contains(oldRoles, r) {
			a.RolesAdded = append(a.RolesAdded, r)
		}
	}
	for _, r := range oldRoles {
		if !slices.Contains(newRoles, r) {
			a.RolesRemoved = append(a.RolesRemoved, r)
		}
	}
	a.RestrictionsChanged = !slices.EqualFunc(oldRestr, newRestr, Restriction.equal)
	a.CustomDataChanged = !bytes.Equal(oldCustom, newCustom)
	a.MechanismsChanged = !slices.Equal(oldMechs, newMechs)
	s.applied = append(s.applied, a)
}

// snapshotOf is the snapshot of the user at key, nil when there is none. Caller holds s.mu.
func (s *Server) snapshotOf(key userKey) *UserSnapshot {
	u := s.users[key]
	if u == nil {
		return nil
	}
	snap := u.snapshot()
	return &snap
}

// snapshot copies u; the copy shares no memory with it.
func (u *user) snapshot() UserSnapshot {
	return UserSnapshot{
		User:            UserRef{User: u.name, DB: u.db},
		UserID:          u.id,
		Roles:           sortedRoles(u.roles),
		Restrictions:    cloneRestrictions(u.restrictions),
		CustomData:      cloneRaw(u.customData),
		Mechanisms:      slices.Clone(u.mechanisms),
		PasswordVersion: u.pwdVersion,
	}
}

func sortedRoles(rs []Role) []Role {
	if len(rs) == 0 {
		return nil
	}
	out := slices.Clone(rs)
	slices.SortFunc(out, func(a, b Role) int {
		if c := strings.Compare(a.DB, b.DB); c != 0 {
			return c
		}
		return strings.Compare(a.Role, b.Role)
	})
	return out
}

func cloneRestrictions(rs []Restriction) []Restriction {
	if len(rs) == 0 {
		return nil
	}
	out := make([]Restriction, len(rs))
	for i, r := range rs {
		out[i] = Restriction{ClientSource: slices.Clone(r.ClientSource), ServerAddress: slices.Clone(r.ServerAddress)}
	}
	return out
}

func cloneRaw(b bson.Raw) bson.Raw {
	if b == nil {
		return nil
	}
	return bson.Raw(bytes.Clone(b))
}

func (r Restriction) equal(o Restriction) bool {
	return sameList(r.ClientSource, o.ClientSource) && sameList(r.ServerAddress, o.ServerAddress)
}

// sameList tells an absent list (nil) from a present empty one, which matches no address.
func sameList(a, b []string) bool { return (a == nil) == (b == nil) && slices.Equal(a, b) }

func (sn *UserSnapshot) clone() *UserSnapshot {
	if sn == nil {
		return nil
	}
	c := *sn
	c.Roles = slices.Clone(sn.Roles)
	c.Restrictions = cloneRestrictions(sn.Restrictions)
	c.CustomData = cloneRaw(sn.CustomData)
	c.Mechanisms = slices.Clone(sn.Mechanisms)
	return &c
}

func (a Applied) clone() Applied {
	a.Fields = slices.Clone(a.Fields)
	a.RolesAdded = slices.Clone(a.RolesAdded)
	a.RolesRemoved = slices.Clone(a.RolesRemoved)
	a.Before = a.Before.clone()
	a.After = a.After.clone()
	return a
}

// UpdateUser changes user name@db directly in the emulator's state, as a control plane
// (the Atlas stand-in) applies a change it accepted: a new password when pwd is not empty,
// and the roles when roles is not nil. It is recorded in Applied with a zero By.
func (s *Server) UpdateUser(name, db, pwd string, roles []Role) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[userKey{db, name}]
	if u == nil {
		return fmt.Errorf("mongotest: no user %s@%s", name, db)
	}
	before := u.snapshot()
	var fields []string
	if pwd != "" {
		if err := u.setPassword(pwd, u.mechanisms); err != nil {
			return err
		}
		u.pwdVersion++
		fields = append(fields, "pwd")
	}
	if roles != nil {
		u.roles = slices.Clone(roles)
		fields = append(fields, "roles")
	}
	u.gen++
	s.record(nil, "updateUser", &before, u, fields, pwd != "")
	return nil
}

// RemoveUser drops user name@db directly, as UpdateUser changes one.
func (s *Server) RemoveUser(name, db string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := userKey{db, name}
	u := s.users[key]
	if u == nil {
		return fmt.Errorf("mongotest: no user %s@%s", name, db)
	}
	before := u.snapshot()
	delete(s.users, key)
	s.record(nil, "dropUser", &before, nil, nil, false)
	return nil
}
