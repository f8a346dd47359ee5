package store

import (
	"mongobot/kv"

	"slices"
)

// CreateRequest stores r in the given initial state and returns it with its new id.
func (s *Store) CreateRequest(r Request, state, by string) (Request, error) {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.now()
	}
	if r.Token == "" {
		r.Token = newToken()
	}
	return insert(s, bucketRequests, &r, Step{State: state, At: r.CreatedAt, By: by},
		func(r *Request, id uint64) { r.ID = id })
}

// Request returns request id, or ErrNotFound.
func (s *Store) Request(id uint64) (Request, error) {
	var r Request
	err := s.db.View(func(tx kv.Tx) (err error) {
		r, err = get[Request](s, tx, bucketRequests, id)
		return err
	})
	return r, err
}

// TransitionRequest moves request id from one of the states in from to next.State, applying
// mutate in the same transaction, or returns a *ConflictError when it is in another state.
func (s *Store) TransitionRequest(id uint64, from []string, next Step, mutate func(*Request)) (Request, error) {
	return transition(s, bucketRequests, id, from, next, mutate)
}

// UpdateRequest lets fn change request id inside one read-write transaction; fn returning an
// error aborts it. Use it for changes that are not a state transition, such as adding a vote
// while checking the state.
func (s *Store) UpdateRequest(id uint64, fn func(*Request) error) (Request, error) {
	return update(s, bucketRequests, id, fn)
}

// Requests lists requests newest first, limit at a time; when states is not empty only those
// in one of them. Pass the returned next as before for the following page; next is 0 on the
// last page. With states, a page costs what it holds, however many requests are in others.
func (s *Store) Requests(before uint64, limit int, states ...string) ([]Request, uint64, error) {
	if len(states) > 0 && s.indexed {
		return s.requestsIn(before, limit, states)
	}
	return list(s, bucketRequests, before, limit, func(r *Request) bool {
		return len(states) == 0 || slices.Contains(states, r.State)
	})
}
