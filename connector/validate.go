package connector

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on names, checked before anything is sent. MongoDB caps database names at 64 bytes;
// user and role names have no documented cap, so 256 bytes keeps them well inside what Slack
// and the journal show.
const (
	maxDBName   = 64
	maxUserName = 256
	maxRoleName = 256
)

// ExternalDB is the authentication database of users whose credentials live outside MongoDB
// (x.509, LDAP, Kerberos): they have no password to rotate.
const ExternalDB = "$external"

// ValidateDB checks a database name against MongoDB's rules for Unix servers.
func ValidateDB(db string) error {
	switch {
	case db == "":
		return newErr(ErrInvalid, "", "the database name is empty")
	case db == ExternalDB:
		return nil
	case len(db) >= maxDBName:
		return newErr(ErrInvalid, "", "the database name %q is %d bytes long; MongoDB allows at most %d", short(db), len(db), maxDBName-1)
	case !utf8.ValidString(db):
		return newErr(ErrInvalid, "", "the database name is not valid UTF-8")
	}
	if i := strings.IndexAny(db, "/\\. \"$\x00*<>:|?"); i >= 0 {
		return newErr(ErrInvalid, "", "the database name %q contains %q, which MongoDB does not allow in database names", short(db), printable(db[i]))
	}
	return nil
}

// ValidateUser checks a user name.
func ValidateUser(user string) error {
	switch {
	case user == "":
		return newErr(ErrInvalid, "", "the user name is empty")
	case len(user) > maxUserName:
		return newErr(ErrInvalid, "", "the user name %q is %d bytes long; the bot accepts at most %d", short(user), len(user), maxUserName)
	case strings.ContainsRune(user, 0):
		return newErr(ErrInvalid, "", "the user name contains a NUL character")
	case !utf8.ValidString(user):
		return newErr(ErrInvalid, "", "the user name is not valid UTF-8")
	}
	return nil
}

// ValidateRole checks a role reference: the role's name and the database it is defined in.
func ValidateRole(r Role) error {
	switch {
	case r.Name == "":
		return newErr(ErrInvalid, "", "the role name is empty")
	case len(r.Name) > maxRoleName:
		return newErr(ErrInvalid, "", "the role name %q is %d bytes long; the bot accepts at most %d", short(r.Name), len(r.Name), maxRoleName)
	case strings.ContainsRune(r.Name, 0):
		return newErr(ErrInvalid, "", "the role name contains a NUL character")
	case strings.HasPrefix(r.Name, "$"):
		return newErr(ErrInvalid, "", "the role name %q starts with $, which MongoDB does not allow", short(r.Name))
	case !utf8.ValidString(r.Name):
		return newErr(ErrInvalid, "", "the role name is not valid UTF-8")
	}
	if r.DB == ExternalDB {
		return newErr(ErrInvalid, "", "roles cannot be defined in $external")
	}
	if err := ValidateDB(r.DB); err != nil {
		e := err.(*Error)
		e.Msg = "in role " + r.String() + ": " + e.Msg
		return e
	}
	return nil
}

// ParseRole reads "name" (a role in admin) or "name@db".
func ParseRole(s string) (Role, error) {
	name, db := s, "admin"
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		name, db = s[:i], s[i+1:]
	}
	r := Role{Name: name, DB: db}
	return r, ValidateRole(r)
}

// ValidateRef checks a user and its database, before anything is sent.
func ValidateRef(u UserRef) error {
	if err := ValidateUser(u.User); err != nil {
		return err
	}
	return ValidateDB(u.DB)
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func printable(b byte) string {
	if b == 0 {
		return "NUL"
	}
	return fmt.Sprintf("%c", b)
}
