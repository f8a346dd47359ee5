package store

import (
	"encoding/json"
	"time"
)

// Journal entry states. The write-ahead rule: an entry is EntryExecuting, and committed, before
// MongoDB is touched; it leaves that state only once the outcome is known.
const (
	EntryExecuting  = "executing"
	EntryDone       = "done"
	EntryFailed     = "failed"
	EntryRolledBack = "rolled_back"
	// EntryUnknown marks an entry whose outcome could not be established by reconciliation;
	// a person must look.
	EntryUnknown = "unknown"
)

// Step is one state a record went through, with when and who.
type Step struct {
	State string    `json:"state"`
	At    time.Time `json:"at"`
	By    string    `json:"by,omitempty"`
	Note  string    `json:"note,omitempty"`
}

// Vote is one approver's decision on a request.
type Vote struct {
	User    string    `json:"user"`
	Approve bool      `json:"approve"`
	At      time.Time `json:"at"`
	// Lapsed marks a vote whose voter was found, at a later vote, to be no longer an
	// approver: it is kept for the record and no longer counts.
	Lapsed bool `json:"lapsed,omitempty"`
}

// MessageRef locates a Slack message so it can be updated in place.
type MessageRef struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

// Request is an approval request. Its states are the approvals package's; the store only
// compares and sets them.
type Request struct {
	ID        uint64            `json:"id"`
	Action    string            `json:"action"`
	Connector string            `json:"connector"`
	Args      map[string]string `json:"args,omitempty"`
	Requester string            `json:"requester"`
	Reason    string            `json:"reason,omitempty"`
	Votes     []Vote            `json:"votes,omitempty"`
	State     string            `json:"state"`
	History   []Step            `json:"history"`
	Card      MessageRef        `json:"card"`
	CreatedAt time.Time         `json:"created_at"`
	ExpiresAt time.Time         `json:"expires_at"`
	// EntryID is the journal entry the execution of this request wrote, once it has run.
	EntryID uint64 `json:"entry_id,omitempty"`
	// Preview is what the card showed when the request was made: the user's state then,
	// what it will be after, and what Roll back would do. Words, never secrets.
	Preview map[string]string `json:"preview,omitempty"`
	// Token is an unguessable value, made at creation, that the card's buttons carry: a
	// click must name both the id and the token, so a stale card (from a journal that was
	// replaced, or another request) or a forged value cannot vote on this request.
	Token string `json:"token,omitempty"`
	// AutoApproved, when set, names the policy rule that approved the request without a vote
	// (approvals.AutoRule's String: "connectors[prod].jit.auto_approve[0] (roles read@*, …)").
	// Made from the config, never from what the requester typed.
	AutoApproved string `json:"auto_approved,omitempty"`
}

// Entry is one journaled action (or rollback, or scheduled run). It never holds a secret:
// Before, After and Undo are the connector's descriptions of user state, which carry roles and
// restrictions, never passwords.
type Entry struct {
	ID         uint64            `json:"id"`
	RequestID  uint64            `json:"request_id,omitempty"`
	ScheduleID uint64            `json:"schedule_id,omitempty"`
	RollbackOf uint64            `json:"rollback_of,omitempty"`
	Requester  string            `json:"requester"`
	Approvers  []string          `json:"approvers,omitempty"`
	Connector  string            `json:"connector"`
	Action     string            `json:"action"`
	Args       map[string]string `json:"args,omitempty"`
	Before     json.RawMessage   `json:"before,omitempty"`
	After      json.RawMessage   `json:"after,omitempty"`
	Undo       json.RawMessage   `json:"undo,omitempty"`
	State      string            `json:"state"`
	History    []Step            `json:"history"`
	Error      string            `json:"error,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	// RolledBackBy is the id of the entry that undid this one, or is undoing it now.
	RolledBackBy uint64 `json:"rolled_back_by,omitempty"`
	// Notes are facts about the outcome ("verified: logged in with the new password").
	Notes []string `json:"notes,omitempty"`
	// PendingSecret is the id of the sealed new password while the action runs, so that a
	// crash between setting it and recording the outcome can still deliver it to its owner.
	// It is an id in the secrets bucket, never the password.
	PendingSecret string `json:"pending_secret,omitempty"`
	// UndoAt, when set, is when a temporary action (--for) is undone by the bot itself. It
	// stays set until the end is done (or found already done): an obligation, not an attempt.
	UndoAt time.Time `json:"undo_at,omitzero"`
	// UndoTries counts failed attempts at ending a temporary action; UndoError is the last
	// failure, in words. Both are shown while the end is overdue.
	UndoTries int    `json:"undo_tries,omitempty"`
	UndoError string `json:"undo_error,omitempty"`
	// Token is an unguessable value the entry's Roll back button carries (see Request.Token).
	Token string `json:"token,omitempty"`
	// Slot is, for a scheduled run, the cron slot it ran for: with ScheduleID it is the run's
	// claim (see BeginRun).
	Slot time.Time `json:"slot,omitzero"`
	// Server is the MongoDB server's version and topology line (as bot check prints it, say
	// "7.0.14, replica set primary") when the action ran: an audit reader can then tell which
	// server behaviour applied. Empty in entries written before it was recorded.
	Server string `json:"server,omitempty"`
	// Deliveries are, for a rotation whose password goes where applications read it, one
	// record per target in the configured order: journaled pending with the write-ahead
	// step, then written, then verified (see Delivery).
	Deliveries []Delivery `json:"deliveries,omitempty"`
	// DeliverySecret is the id of the sealed password kept until every target has it,
	// whatever the Reveal window (never the password). Empty once delivered (or superseded).
	DeliverySecret string `json:"delivery_secret,omitempty"`
	// DeliveryOwner is whom DeliverySecret is sealed for (the store checks it on every read).
	DeliveryOwner string `json:"delivery_owner,omitempty"`
	// DeliverAt is when the next attempt at a pending delivery is due: an obligation like
	// UndoAt, kept until every target has the password; DeliverTries counts the attempts.
	DeliverAt    time.Time `json:"deliver_at,omitzero"`
	DeliverTries int       `json:"deliver_tries,omitempty"`
	// AutoApproved is the request's AutoApproved: the policy rule that let the action run
	// without a vote, when one did.
	AutoApproved string `json:"auto_approved,omitempty"`
}

// Delivery states.
const (
	DeliveryPending    = "pending"    // not yet written
	DeliveryWritten    = "written"    // written; not yet read back
	DeliveryVerified   = "verified"   // read back (or, for a command, accepted)
	DeliverySuperseded = "superseded" // a later rotation's password replaced this one first
	DeliveryDropped    = "dropped"    // the target left the configuration before it had it
)

// Delivery is one target's part in a delivering rotation.
type Delivery struct {
	Target string `json:"target"` // the target as it describes itself
	// Index is the target's place in the configured list (descriptions may repeat).
	Index    int       `json:"index"`
	State    string    `json:"state"`
	Version  string    `json:"version,omitempty"`  // what the write created ("version 7")
	Verified string    `json:"verified,omitempty"` // how it was checked, in words
	Error    string    `json:"error,omitempty"`    // the last failure, in words
	Tries    int       `json:"tries,omitempty"`
	At       time.Time `json:"at,omitzero"` // of the last state change or failure
}

// AwaitsDelivery reports whether e's delivery is unfinished: its sealed password is still
// held for it. That includes the moment after every target has it and before the delivery is
// recorded as finished (FinishDelivery), which a crash can make last: the next start finishes
// it.
func (e Entry) AwaitsDelivery() bool { return e.DeliverySecret != "" && len(e.Deliveries) > 0 }

// TargetsPending reports whether some target of e does not have its password yet.
func (e Entry) TargetsPending() bool {
	for _, d := range e.Deliveries {
		if d.State == DeliveryPending || d.State == DeliveryWritten {
			return true
		}
	}
	return false
}

// Schedule is a recurring password rotation.
type Schedule struct {
	ID         uint64    `json:"id"`
	Connector  string    `json:"connector"`
	User       string    `json:"user"`
	DB         string    `json:"db"`
	Spec       string    `json:"spec"`
	Owner      string    `json:"owner"`
	RequestID  uint64    `json:"request_id,omitempty"`
	State      string    `json:"state"` // ScheduleActive, SchedulePaused or ScheduleRemoved
	History    []Step    `json:"history"`
	CreatedAt  time.Time `json:"created_at"`
	LastRun    time.Time `json:"last_run,omitzero"`
	LastResult string    `json:"last_result,omitempty"`
	LastEntry  uint64    `json:"last_entry,omitempty"`
	// Slot is the latest cron slot a run was claimed for, and SlotEntry the journal entry of
	// that run: BeginRun never claims a slot at or before it, so a restart at any instant
	// cannot run one slot twice.
	Slot      time.Time `json:"slot,omitzero"`
	SlotEntry uint64    `json:"slot_entry,omitempty"`
	// DueSlot is the latest slot the bot saw fall due, and DueAt when: journaled at once,
	// for all the schedules due together, before their runs wait for a turn on their
	// connector. A DueSlot later than Slot is a run due and not yet claimed.
	DueSlot time.Time `json:"due_slot,omitzero"`
	DueAt   time.Time `json:"due_at,omitzero"`
	// Paused says why a paused schedule does not run (its owner lost access, say).
	Paused string `json:"paused,omitempty"`
}

// Schedule states.
const (
	ScheduleActive  = "active"
	SchedulePaused  = "paused"
	ScheduleRemoved = "removed"
)
