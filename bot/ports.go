package bot

import (
	"context"
	"time"

	"mongobot/connector"
	"mongobot/secret"
)

// Chat is what the bot needs from a chat platform.
type Chat interface {
	// Post sends m to a channel (in a thread when m.Thread is set).
	Post(ctx context.Context, channel string, m Message) (Ref, error)
	// Update replaces a message the bot posted.
	Update(ctx context.Context, ref Ref, m Message) error
	// Ephemeral shows m to user only, in channel; platforms do not keep it.
	Ephemeral(ctx context.Context, channel, user string, m Message) error
	// DM sends m to user in a direct conversation with the bot.
	DM(ctx context.Context, user string, m Message) (Ref, error)
}

// Directory says which user groups a user belongs to.
type Directory interface {
	Groups(ctx context.Context, user string) ([]string, error)
}

// Metrics is what the bot counts; observe.Metrics implements it. Nil means no metrics.
type Metrics interface {
	Command(verb string)
	Decision(outcome string)
	Action(connector, action, result string, d time.Duration)
}

type noMetrics struct{}

func (noMetrics) Command(string)                               {}
func (noMetrics) Decision(string)                              {}
func (noMetrics) Action(string, string, string, time.Duration) {}

// Mongo is what the bot needs from one MongoDB connector; *connector.Mongo has it.
type Mongo interface {
	Name() string
	// Atlas reports a MongoDB Atlas connection, where users cannot be managed over the wire.
	Atlas() bool
	// Account is the user the connector logs in as: no action may target it.
	Account() connector.UserRef
	Discover(ctx context.Context) (connector.ServerInfo, error)
	Users(ctx context.Context, db string) ([]connector.User, error)
	// Roles lists the roles that can be granted on db (for a form's choices).
	Roles(ctx context.Context, db string) ([]connector.Role, error)
	State(ctx context.Context, u connector.UserRef) (connector.UserState, error)
	Login(ctx context.Context, u connector.UserRef, pw secret.String) error
	RotatePassword(ctx context.Context, o connector.RotateOptions) (connector.Change, secret.String, error)
	GrantRole(ctx context.Context, u connector.UserRef, r connector.Role) (connector.Change, error)
	RevokeRole(ctx context.Context, u connector.UserRef, r connector.Role) (connector.Change, error)
	CreateReadOnlyUser(ctx context.Context, u connector.UserRef, db string, beforeApply func(secret.String) error) (connector.Change, secret.String, error)
	CreateAccessUser(ctx context.Context, u connector.UserRef, roles []connector.Role, owner connector.AccessOwner, beforeApply func(secret.String) error) (connector.Change, secret.String, error)
	DropUser(ctx context.Context, u connector.UserRef, beforeDrop func(connector.UserState) error) (connector.Change, error)
	Supports(ctx context.Context, action string, killSessions bool) error
	// CanRecreate says whether the account can create u again as st after a drop
	// (--logout-all), before anyone approves it.
	CanRecreate(ctx context.Context, u connector.UserRef, st connector.UserState) error
	// Aftercare refreshes every router's user cache and, with killSessions, ends u's sessions
	// everywhere, for a change settled as applied after its action was interrupted.
	Aftercare(ctx context.Context, u connector.UserRef, killSessions bool) []string
	// CheckRole says whether a role exists, before anyone is asked to approve a grant of it.
	CheckRole(ctx context.Context, r connector.Role) error
	// Health is the connector's circuit breaker: down, nothing is sent to the server.
	Health() connector.Health
	// ServerLine describes the deployment as last discovered, for the journal ("" before).
	ServerLine() string
	LockUser(ctx context.Context, u connector.UserRef) (connector.Change, error)
	UnlockUser(ctx context.Context, u connector.UserRef, restore []connector.Restriction) (connector.Change, error)
	Recreate(ctx context.Context, u connector.UserRef, pre connector.UserState, pw secret.String) (connector.Change, secret.String, error)
	Undo(ctx context.Context, ch connector.Change) (connector.Change, error)
	Close(ctx context.Context) error
}

var _ Mongo = (*connector.Mongo)(nil)

// Handler is what a chat adapter hands work to: the Bot implements it.
type Handler interface {
	HandleCommand(ctx context.Context, in Invocation)
	HandleClick(ctx context.Context, c Click)
}
