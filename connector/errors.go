package connector

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/auth"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"mongobot/secret"
)

// Kinds of failure. An *Error matches exactly one with errors.Is.
var (
	ErrInvalid      = errors.New("invalid input")
	ErrUserNotFound = errors.New("user not found")
	ErrRoleNotFound = errors.New("role not found")
	ErrUserExists   = errors.New("user already exists")
	ErrUnauthorized = errors.New("not authorized")
	ErrAuthFailed   = errors.New("authentication failed")
	ErrUnsupported  = errors.New("not supported by this server")
	ErrTooOld       = errors.New("server version too old")
	ErrAtlas        = errors.New("atlas does not allow user administration over the wire")
	ErrNotPrimary   = errors.New("not the primary")
	ErrTimeout      = errors.New("timed out")
	// ErrUnconfirmed is a write the primary applied and a majority did not confirm (a
	// writeConcernError): actions report it as applied, with a warning, never as a failure.
	ErrUnconfirmed = errors.New("applied on the primary, not confirmed by a majority")
	ErrUnavailable = errors.New("server unreachable")
	ErrDrift       = errors.New("state changed since the action")
	ErrNoUndo      = errors.New("nothing to undo")
	ErrConflict    = errors.New("already in that state")
	ErrServer      = errors.New("server error")
)

// MongoDB error codes the connector maps (reference §0).
const (
	codeBadValue             = 2
	codeUserNotFound         = 11
	codeUnauthorized         = 13
	codeAuthenticationFailed = 18
	codeRoleNotFound         = 31
	codeWriteConcernTimeout  = 64
	codeCommandNotFound      = 59
	codeNotImplemented       = 238
	codeNotWritablePrimary   = 10107
	codeNotPrimaryNoSecOk    = 13435
	codeNotPrimaryOrSecond   = 13436
	codePrimarySteppedDown   = 189
	codeUserExists           = 51003
	codeAtlasError           = 8000
	codeMaxTimeMSExpired     = 50
)

// Error is what every connector method returns on failure.
type Error struct {
	Kind error  // one of the Err* kinds
	Msg  string // a plain sentence for the requester; never holds a credential
	Code int32  // the server's error code, 0 when none
	Op   string // what was being done, e.g. `updateUser "app" on admin`
	err  error  // the cause, already scrubbed
}

func (e *Error) Error() string {
	if e.Op == "" {
		return "connector: " + e.Msg
	}
	return fmt.Sprintf("connector: %s: %s", e.Op, e.Msg)
}

// Unwrap exposes the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.err}
}

// Detail is the cause's text (scrubbed), for logs and the journal.
func (e *Error) Detail() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func newErr(kind error, op, format string, a ...any) *Error {
	return &Error{Kind: kind, Op: op, Msg: fmt.Sprintf(format, a...)}
}

// uriCredentials matches the userinfo part of a MongoDB connection string.
var uriCredentials = regexp.MustCompile(`(mongodb(?:\+srv)?://)[^@/\s]*@`)

// scrubbed is an error whose text had credentials removed; it keeps no reference to the
// original, whose text may hold them.
type scrubbed struct{ msg string }

func (s scrubbed) Error() string { return s.msg }

func scrub(err error, secrets ...secret.String) error {
	if err == nil {
		return nil
	}
	msg := uriCredentials.ReplaceAllString(err.Error(), "${1}REDACTED@")
	return scrubbed{secret.Scrub(msg, secrets...)}
}

// serverCode returns the code of a MongoDB server error, or 0.
func serverCode(err error) int32 {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return ce.Code
	}
	var we mongo.WriteException
	if errors.As(err, &we) && we.WriteConcernError != nil {
		return int32(we.WriteConcernError.Code)
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		for _, c := range []int{codeWriteConcernTimeout, codeNotWritablePrimary, codeUnauthorized} {
			if se.HasErrorCode(c) {
				return int32(c)
			}
		}
	}
	return 0
}

// mapErr turns a driver error into an *Error with a sentence for people. what names the
// target in words ("user app@admin"); op is the command for logs.
func (m *Mongo) mapErr(err error, op, what string) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	code := serverCode(err)
	if old := m.tooOld(); old != nil && code == 0 {
		old.Op, old.err = op, scrub(err, m.secrets()...)
		return old
	}
	e := &Error{Op: op, Code: code, err: scrub(err, m.secrets()...)}
	var ae *auth.Error
	if m.x509 && errors.As(err, &ae) {
		// The bot's own certificate login failed: the server says whether the subject has
		// no user (11) or was refused (18).
		e.Kind = ErrAuthFailed
		why := "the server refused it"
		if code == codeUserNotFound {
			why = "no such user exists in $external: create it there, named exactly as the certificate's subject"
		}
		e.Msg = fmt.Sprintf("the bot could not log in to %s with its client certificate (MONGODB-X509, as %q in $external): %s", m.name, m.Account().User, why)
		return e
	}
	if wce, ok := writeConcernError(err); ok {
		// Whatever the code (64 WriteConcernTimeout, 91 ShutdownInProgress, 189
		// PrimarySteppedDown, 11602 InterruptedDueToReplStateChange, 50 MaxTimeMSExpired, 79,
		// 100...), an ok:1 reply with a writeConcernError means the command ran on the primary
		// (write_concern.cpp waits for it after the command succeeded); only its replication
		// is unknown, and a failover could still undo it.
		e.Kind, e.Code = ErrUnconfirmed, int32(wce.Code)
		e.Msg = fmt.Sprintf("%s applied %s on its primary, but a majority of the replica set did not confirm it (%s, code %d): it is in effect now and could still be undone by a failover before it replicates; check with `users` in a minute",
			m.name, op, orName(wce.Name), wce.Code)
		return e
	}
	switch {
	case code == codeUserNotFound:
		e.Kind, e.Msg = ErrUserNotFound, fmt.Sprintf("%s does not exist on %s", what, m.name)
	case code == codeRoleNotFound:
		e.Kind, e.Msg = ErrRoleNotFound, fmt.Sprintf("a role named in %s does not exist on %s", op, m.name)
	case code == codeUserExists:
		e.Kind, e.Msg = ErrUserExists, fmt.Sprintf("%s already exists on %s", what, m.name)
	case code == codeUnauthorized:
		e.Kind, e.Msg = ErrUnauthorized, fmt.Sprintf("the bot's MongoDB account on %s lacks the privilege for %s (run `mongobot check` to see which actions it can perform)", m.name, op)
	case code == codeAuthenticationFailed:
		e.Kind, e.Msg = ErrAuthFailed, fmt.Sprintf("the bot could not log in to %s: authentication failed (check the connector's user, password and authSource)", m.name)
	case code == codeCommandNotFound || code == codeNotImplemented:
		e.Kind, e.Msg = ErrUnsupported, fmt.Sprintf("%s does not support %s (server answered %s)", m.name, op, codeName(code))
	case code == codeAtlasError:
		e.Kind, e.Msg = ErrAtlas, atlasSentence(m.name)
	case code == codeNotWritablePrimary || code == codeNotPrimaryNoSecOk || code == codeNotPrimaryOrSecond || code == codePrimarySteppedDown:
		e.Kind, e.Msg = ErrNotPrimary, fmt.Sprintf("%s answered from a node that is not the primary; user changes must go to the replica set's primary (or a mongos): connect with the replica set name or a mongos address", m.name)
	case code == codeWriteConcernTimeout:
		// As the command's own error: how a mongos reports that the config servers applied a
		// user change and did not confirm it (sharding_catalog_client_impl.cpp).
		e.Kind, e.Msg = ErrUnconfirmed, fmt.Sprintf("%s applied %s on its primary, but a majority of the replica set did not confirm it (WriteConcernTimeout, code 64): it is in effect now and could still be undone by a failover before it replicates; check with `users` in a minute", m.name, op)
	case isSelectionError(err):
		// No usable server within the selection timeout: refused, unreachable, untrusted
		// certificate, or a handshake that never answered. The driver's text says which.
		e.Kind, e.Msg = ErrUnavailable, fmt.Sprintf("%s is unreachable: %s", m.name, firstLine(e.err.Error()))
	case code == codeMaxTimeMSExpired || mongo.IsTimeout(err) || errors.Is(err, context.DeadlineExceeded):
		e.Kind, e.Msg = ErrTimeout, fmt.Sprintf("%s did not answer in time (%s)", m.name, op)
	case mongo.IsNetworkError(err) || errors.Is(err, mongo.ErrClientDisconnected):
		e.Kind, e.Msg = ErrUnavailable, fmt.Sprintf("%s is unreachable: %s", m.name, firstLine(e.err.Error()))
	case code != 0:
		e.Kind, e.Msg = ErrServer, fmt.Sprintf("%s refused %s: %s (code %d)", m.name, op, firstLine(e.err.Error()), code)
	default:
		e.Kind, e.Msg = ErrServer, fmt.Sprintf("%s failed: %s", op, firstLine(e.err.Error()))
	}
	if e.Kind == ErrAuthFailed || e.Kind == ErrServer {
		if m.isAtlas() {
			e.Kind, e.Msg = ErrAtlas, atlasSentence(m.name)
		}
	}
	return e
}

// writeConcernError returns the writeConcernError of a reply that had no other error.
func writeConcernError(err error) (*mongo.WriteConcernError, bool) {
	var we mongo.WriteException
	if errors.As(err, &we) && we.WriteConcernError != nil && len(we.WriteErrors) == 0 {
		return we.WriteConcernError, true
	}
	return nil, false
}

func orName(name string) string {
	if name == "" {
		return "no codeName"
	}
	return name
}

func isSelectionError(err error) bool {
	var se topology.ServerSelectionError
	return errors.As(err, &se)
}

func codeName(code int32) string {
	switch code {
	case codeCommandNotFound:
		return "CommandNotFound"
	case codeNotImplemented:
		return "NotImplemented"
	}
	return fmt.Sprint(code)
}

func atlasSentence(name string) string {
	return fmt.Sprintf("%s is a MongoDB Atlas cluster: Atlas does not allow creating, changing or dropping database users over the MongoDB protocol, only through the Atlas Administration API (or the Atlas UI); this bot cannot manage its users", name)
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
