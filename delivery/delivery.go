package delivery

import (
	"errors"

	"mongobot/secret"
)

// Credential is what a target receives: the login an application should use from now on.
type Credential struct {
	Connector string // the bot's name for the deployment
	User      string // the MongoDB user name the application logs in as
	Database  string // the user's authentication database
	Password  secret.String
	Entry     uint64 // the journal entry that set the password
}

var (
	// ErrConflict: someone else wrote the secret between the target's read and its write.
	// Nothing of theirs was overwritten; trying again starts from their version.
	ErrConflict = errors.New("the secret changed while it was being written")
	// ErrRejected: the target refused for a reason trying again will not fix by itself
	// (permission denied, a missing mount or namespace, a bad configuration). The bot still
	// retries, since a person may fix it, but says so.
	ErrRejected = errors.New("the target refused the delivery")
	// ErrMismatch: reading the secret back did not give what was written.
	ErrMismatch = errors.New("the secret read back differs from what was written")
)
