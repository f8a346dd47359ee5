package approvals

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Vote is one approver's decision.
type Vote struct {
	User    string
	Approve bool
	At      time.Time
}

// Ballot is what a vote is cast on: the request's requester, state, expiry and votes so far.
type Ballot struct {
	Requester string
	State     string
	ExpiresAt time.Time
	Votes     []Vote
}

// Refusals of a vote. Each is a sentence to show the voter.
var (
	ErrNotApprover  = errors.New("you are not an approver for this request")
	ErrSelfApproval = errors.New("you cannot approve your own request: someone else must")
	ErrAlreadyVoted = errors.New("you have already voted on this request")
	ErrExpired      = errors.New("this request has expired; ask again if it is still needed")
	ErrSelfDenial   = errors.New("you cannot deny your own request; use cancel to withdraw it")
)

// DecidedError refuses a vote on a request that is no longer pending.
type DecidedError struct{ State string }

func (e *DecidedError) Error() string {
	return fmt.Sprintf("this request is already %s", Describe(e.State))
}

// Result is the outcome of a vote: the votes with the new one, and the state the request
// should move to (Pending while the quorum is not reached).
type Result struct {
	Votes     []Vote
	State     string
	Approvals int
	Needed    int
}

// Cast records voter's vote on b under policy e at now. One approval short of the quorum
// keeps the request pending; reaching it approves. A single deny from an approver denies:
// one informed objection is enough to stop a change to a production database. A requester's
// own deny (allowed or not to approve) is refused here: they withdraw with cancel instead.
func Cast(e Effective, b Ballot, voter Who, approve bool, now time.Time) (Result, error) {
	if b.State != Pending {
		return Result{}, &DecidedError{State: b.State}
	}
	if !now.Before(b.ExpiresAt) {
		return Result{}, ErrExpired
	}
	if !e.Approvers.Has(voter) {
		return Result{}, ErrNotApprover
	}
	if voter.User == b.Requester && (!e.AllowSelfApproval || !approve) {
		if !approve {
			return Result{}, ErrSelfDenial
		}
		return Result{}, ErrSelfApproval
	}
	for _, v := range b.Votes {
		if v.User == voter.User {
			return Result{}, ErrAlreadyVoted
		}
	}
	r := Result{Votes: append(append([]Vote{}, b.Votes...), Vote{User: voter.User, Approve: approve, At: now}),
		State: Pending, Needed: e.Quorum}
	r.Approvals = len(Approvers(r.Votes))
	switch {
	case !approve:
		r.State = Denied
	case r.Approvals >= e.Quorum:
		r.State = Approved
	}
	return r, nil
}

// Approvers are the distinct users who approved, in voting order. A quorum is counted over
// people, never over votes: a record carrying two approvals by one person (written by whoever
// can write the store, or by a bug) counts that person once.
func Approvers(votes []Vote) []string {
	var out []string
	for _, v := range votes {
		if v.Approve && !slices.Contains(out, v.User) {
			out = append(out, v.User)
		}
	}
	return out
}

// Due reports whether a pending request has expired at now.
func Due(state string, expiresAt, now time.Time) bool {
	return state == Pending && !now.Before(expiresAt)
}
