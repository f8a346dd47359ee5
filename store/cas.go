package store

import (
	"mongobot/kv"

	"slices"
)

// record is what compare-and-set needs from a stored type.
type record interface {
	state() string
	step(Step)
}

func (r *Request) state() string  { return r.State }
func (r *Request) step(s Step)    { r.State = s.State; r.History = append(r.History, s) }
func (r *Entry) state() string    { return r.State }
func (r *Entry) step(s Step)      { r.State = s.State; r.History = append(r.History, s) }
func (r *Schedule) state() string { return r.State }
func (r *Schedule) step(s Step)   { r.State = s.State; r.History = append(r.History, s) }

// insert assigns the next id of bucket b to rec, stamps its first step and stores it.
func insert[T any, P interface {
	*T
	record
}](s *Store, b []byte, rec P, first Step, setID func(P, uint64)) (T, error) {
	if first.At.IsZero() {
		first.At = s.now()
	}
	base := *rec
	err := s.update(func(tx kv.Tx) error {
		*rec = base // a transaction run again starts from the record as given
		id, err := tx.Bucket(b).NextSequence()
		if err != nil {
			return err
		}
		setID(rec, id)
		rec.step(first)
		return put(s, tx, b, id, rec)
	})
	return *rec, err
}

// update reads record id of bucket b, lets fn change it and writes it back, all in one
// read-write transaction. An error from fn aborts the transaction and is returned as is.
func update[T any, P interface {
	*T
	record
}](s *Store, b []byte, id uint64, fn func(P) error) (T, error) {
	var out T
	err := s.update(func(tx kv.Tx) error {
		rec, err := get[T](s, tx, b, id)
		if err != nil {
			return err
		}
		if err := fn(P(&rec)); err != nil {
			return err
		}
		out = rec
		return putOver(s, tx, b, id, P(&rec), true)
	})
	return out, err
}

// transition is the compare-and-set: it moves record id from one of the states in from to
// next.State, applying mutate (which may be nil) in the same transaction.
func transition[T any, P interface {
	*T
	record
}](s *Store, b []byte, id uint64, from []string, next Step, mutate func(P)) (T, error) {
	if next.At.IsZero() {
		next.At = s.now()
	}
	return update[T, P](s, b, id, func(rec P) error {
		if !slices.Contains(from, rec.state()) {
			return &ConflictError{Kind: kindOf(b), ID: id, Want: from, Got: rec.state()}
		}
		if mutate != nil {
			mutate(rec)
		}
		rec.step(next)
		return nil
	})
}
