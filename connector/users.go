package connector

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// userDoc is one entry of a usersInfo reply.
type userDoc struct {
	User         string        `bson:"user"`
	DB           string        `bson:"db"`
	Roles        []Role        `bson:"roles"`
	Mechanisms   []string      `bson:"mechanisms"`
	CustomData   bson.RawValue `bson:"customData"`
	Restrictions []bson.Raw    `bson:"authenticationRestrictions"`
	// Inherited is one array of restriction documents per restricted role.
	Inherited []bson.RawValue `bson:"inheritedAuthenticationRestrictions"`
	// UserID is the server's id of this incarnation of the user: a user dropped and
	// created again under the same name gets a new one (user_management_commands.cpp makes
	// it with UUID::gen() in createUser).
	UserID bson.Binary `bson:"userId"`
}

func (d userDoc) state() (UserState, error) {
	s := UserState{Exists: true, Roles: sortedRoles(d.Roles), Mechanisms: d.Mechanisms}
	for _, raw := range d.Restrictions {
		r, err := readRestriction(raw)
		if err != nil {
			return s, fmt.Errorf("authenticationRestrictions of %s@%s: %w", d.User, d.DB, err)
		}
		s.Restrictions = append(s.Restrictions, r)
	}
	for _, set := range d.Inherited {
		if arr, ok := set.ArrayOK(); ok {
			if vals, _ := arr.Values(); len(vals) > 0 {
				s.RoleRestricted = true
			}
		}
	}
	if len(d.UserID.Data) > 0 {
		s.UserID = hex.EncodeToString(d.UserID.Data)
	}
	if d.CustomData.Type == bson.TypeEmbeddedDocument {
		ext, err := bson.MarshalExtJSON(bson.Raw(d.CustomData.Value), true, false)
		if err != nil {
			return s, fmt.Errorf("customData of %s@%s: %w", d.User, d.DB, err)
		}
		if string(ext) != "{}" {
			s.CustomData = string(ext)
		}
	}
	return s, nil
}

func sortedRoles(rs []Role) []Role {
	out := append([]Role(nil), rs...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].DB != out[j].DB {
			return out[i].DB < out[j].DB
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// User is one user as listing shows it.
type User struct {
	UserRef
	Roles      []Role   `json:"roles"`
	Mechanisms []string `json:"mechanisms,omitempty"`
}

// Users lists the users of db with their roles, or of every database when db is "".
func (m *Mongo) Users(ctx context.Context, db string) ([]User, error) {
	cmd, runOn := bson.D{{Key: "usersInfo", Value: bson.D{{Key: "forAllDBs", Value: true}}}}, "admin"
	if db != "" {
		if err := ValidateDB(db); err != nil {
			return nil, err
		}
		cmd, runOn = bson.D{{Key: "usersInfo", Value: 1}}, db
	}
	var reply struct {
		Users []userDoc `bson:"users"`
	}
	if err := m.run(ctx, runOn, cmd, &reply, "the users"); err != nil {
		return nil, err
	}
	out := make([]User, 0, len(reply.Users))
	for _, d := range reply.Users {
		out = append(out, User{UserRef: UserRef{User: d.User, DB: d.DB}, Roles: sortedRoles(d.Roles), Mechanisms: d.Mechanisms})
	}
	// MongoDB sorts by user, then db; FerretDB does not. Listings are the same everywhere.
	sort.Slice(out, func(i, j int) bool {
		if out[i].User != out[j].User {
			return out[i].User < out[j].User
		}
		return out[i].DB < out[j].DB
	})
	return out, nil
}

// State reads one user: roles, custom data, authentication restrictions. A user that does not
// exist is a state (Exists false), not an error.
func (m *Mongo) State(ctx context.Context, u UserRef) (UserState, error) {
	if err := ValidateRef(u); err != nil {
		return UserState{}, err
	}
	// No showCustomData: customData is shown by default, and before 5.0 usersInfo refuses
	// the option (2 BadValue: it is new in 5.0, docs usersInfo.txt; the 4.4 parser,
	// parseUsersInfoCommand, accepts only its known fields).
	cmd := bson.D{
		{Key: "usersInfo", Value: bson.D{{Key: "user", Value: u.User}, {Key: "db", Value: u.DB}}},
		{Key: "showAuthenticationRestrictions", Value: true},
	}
	var reply struct {
		Users []userDoc `bson:"users"`
	}
	if err := m.run(ctx, u.DB, cmd, &reply, "user "+u.String()); err != nil {
		return UserState{}, err
	}
	for _, d := range reply.Users {
		if d.User == u.User && d.DB == u.DB {
			return d.state()
		}
	}
	return UserState{}, nil
}

// existing reads u's state and fails with ErrUserNotFound when it does not exist.
func (m *Mongo) existing(ctx context.Context, u UserRef) (UserState, error) {
	st, err := m.State(ctx, u)
	if err == nil && !st.Exists {
		err = newErr(ErrUserNotFound, "", "user %s does not exist on %s", u, m.name)
	}
	return st, err
}

// readRestriction reads one authenticationRestrictions document, keeping its exact form.
func readRestriction(raw bson.Raw) (Restriction, error) {
	var r Restriction
	ext, err := bson.MarshalExtJSON(raw, true, false)
	if err != nil {
		return r, err
	}
	r.Doc = string(ext)
	elems, err := raw.Elements()
	if err != nil {
		return r, err
	}
	for _, e := range elems {
		arr, ok := e.Value().ArrayOK()
		if !ok {
			continue
		}
		list := []string{} // present, even when empty: it then matches no address
		vals, _ := arr.Values()
		for _, v := range vals {
			if s, ok := v.StringValueOK(); ok {
				list = append(list, s)
			}
		}
		switch e.Key() {
		case "clientSource":
			r.ClientSource = list
		case "serverAddress":
			r.ServerAddress = list
		}
	}
	return r, nil
}

// Built-in roles (src/mongo/db/auth/builtin_roles.yml): dbRoles exist in every database,
// adminRoles only in admin. They need no round trip to know.
var (
	dbRoles    = []string{"read", "readWrite", "dbAdmin", "userAdmin", "dbOwner", "enableSharding"}
	adminRoles = []string{"readAnyDatabase", "readWriteAnyDatabase", "userAdminAnyDatabase", "dbAdminAnyDatabase",
		"clusterMonitor", "clusterManager", "hostManager", "clusterAdmin", "backup", "restore", "root",
		"directShardOperations", "searchCoordinator", "__queryableBackup", "__system"}
)

// Roles lists the roles that can be granted on db, for a form's choices: the built-in ones
// (known here) and the custom ones the server has there (rolesInfo: 1). A server that will
// not list them (no viewRole) gives the built-in ones alone, and no error.
func (m *Mongo) Roles(ctx context.Context, db string) ([]Role, error) {
	if err := ValidateDB(db); err != nil {
		return nil, err
	}
	var out []Role
	for _, n := range dbRoles {
		out = append(out, Role{Name: n, DB: db})
	}
	if db == "admin" {
		for _, n := range adminRoles {
			if !strings.HasPrefix(n, "__") {
				out = append(out, Role{Name: n, DB: db})
			}
		}
	}
	var reply struct {
		Roles []struct {
			Role string `bson:"role"`
			DB   string `bson:"db"`
		} `bson:"roles"`
	}
	err := m.run(ctx, db, bson.D{{Key: "rolesInfo", Value: 1}}, &reply, "the roles of "+db)
	switch {
	case errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrUnsupported):
		return out, nil
	case err != nil:
		return out, err
	}
	for _, x := range reply.Roles {
		if r := (Role{Name: x.Role, DB: x.DB}); !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// CheckRole says, before anyone is asked to approve a grant, whether role r exists: built-in
// roles are known here, custom ones are asked for (rolesInfo on r's database). It answers
// ErrRoleNotFound with a sentence that says what was probably meant, and nil when r exists or
// when the server cannot tell (no viewRole, or no rolesInfo: the grant itself will say).
func (m *Mongo) CheckRole(ctx context.Context, r Role) error {
	if err := ValidateRole(r); err != nil {
		return err
	}
	if slices.Contains(dbRoles, r.Name) || (r.DB == "admin" && slices.Contains(adminRoles, r.Name)) {
		return nil
	}
	if slices.Contains(adminRoles, r.Name) {
		return newErr(ErrRoleNotFound, "", "role %s does not exist: %s is a built-in role of the admin database only; write %s@admin", r, r.Name, r.Name)
	}
	var reply struct {
		Roles []struct {
			Role string `bson:"role"`
			DB   string `bson:"db"`
		} `bson:"roles"`
	}
	cmd := bson.D{{Key: "rolesInfo", Value: bson.D{{Key: "role", Value: r.Name}, {Key: "db", Value: r.DB}}}}
	if err := m.run(ctx, r.DB, cmd, &reply, "role "+r.String()); err != nil {
		if errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrUnsupported) {
			return nil
		}
		return err
	}
	for _, x := range reply.Roles {
		if x.Role == r.Name && x.DB == r.DB {
			return nil
		}
	}
	hint := ""
	if strings.Contains(r.Name, "@") {
		hint = fmt.Sprintf(" (the role is read as %q on the database %q: a role is written name@db, with one @)", r.Name, r.DB)
	}
	return newErr(ErrRoleNotFound, "", "role %s does not exist on %s%s; built-in roles are %s on any database, and %s on admin only",
		r, m.name, hint, strings.Join(dbRoles, ", "), strings.Join(adminRoles[:11], ", "))
}
