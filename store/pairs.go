package store

import (
	"mongobot/kv"

	"encoding/json"
	"fmt"
	"time"
)

// Pair is what the bot knows of a pair of alternating users (AWS's alternating-users
// rotation): which of the two applications were last given, and the sealed passwords it still
// holds for both, so that a rollback can give them the other one again. It is rewritten, in
// one transaction, when a delivery to every target is verified.
type Pair struct {
	Key      string    `json:"key"` // the pair's name: connector and the two users
	Current  PairUser  `json:"current"`
	Previous PairUser  `json:"previous,omitzero"`
	Updated  time.Time `json:"updated,omitzero"`
}

// PairUser is one user of a pair, as last delivered.
type PairUser struct {
	User string `json:"user"`
	// Entry is the journal entry that delivered it (0: never delivered by the bot).
	Entry uint64 `json:"entry,omitempty"`
	// Secret is the id of its sealed password, owned by Owner: the bot keeps it while the
	// password works, to deliver it again on a rollback. Empty when the bot never had it.
	Secret string `json:"secret,omitempty"`
	Owner  string `json:"owner,omitempty"`
}

// Pair returns the record of pair key; a pair the bot has not delivered yet is the zero Pair
// (ok false).
func (s *Store) Pair(key string) (p Pair, ok bool, err error) {
	err = s.db.View(func(tx kv.Tx) error {
		b := tx.Bucket(bucketPairs)
		if b == nil { // a journal from before pairs, opened read-only
			return nil
		}
		raw := b.Get([]byte(key))
		if raw == nil {
			// Deleted behind the bot's back, the pair would look new: the next rotation
			// could change the user applications use now.
			return s.checkGone(tx, bucketPairs, []byte(key))
		}
		ok = true
		if err := s.checkTag(tx, bucketPairs, []byte(key), raw); err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("store: pair %q does not decode: %w", key, err)
		}
		return nil
	})
	return p, ok, err
}

// SwapPair makes next (a user, the entry that delivered it, and its sealed password) the
// current user of pair key, if the current one is still expect (compare-and-set: two
// deliveries to one pair cannot both win). The former current user becomes the previous one.
// The sealed password the pair held for the former previous user is deleted in the same
// transaction: the rotation changed that user's password, so it no longer works (for a
// rollback, which delivers the previous user again, it is the one passed in, and kept).
// Swapping to what is already current (the same user by the same entry) changes nothing.
func (s *Store) SwapPair(key, expect string, next PairUser) (Pair, error) {
	if s.readOnly {
		return Pair{}, ErrReadOnly
	}
	var p Pair
	err := s.update(func(tx kv.Tx) (err error) {
		p, err = s.swapPair(tx, key, expect, next)
		return err
	})
	return p, err
}

func (s *Store) swapPair(tx kv.Tx, key, expect string, next PairUser) (Pair, error) {
	var p Pair
	b := tx.Bucket(bucketPairs)
	if raw := b.Get([]byte(key)); raw == nil {
		if err := s.checkGone(tx, bucketPairs, []byte(key)); err != nil {
			return p, err
		}
	} else {
		if err := s.checkTag(tx, bucketPairs, []byte(key), raw); err != nil {
			return p, err
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return p, fmt.Errorf("store: pair %q does not decode: %w", key, err)
		}
	}
	if p.Current.User == next.User && p.Current.Entry == next.Entry && p.Key != "" {
		return p, nil // done before (a retry after a crash)
	}
	cur := p.Current.User
	if cur != expect && !(cur == "" && p.Key == "") {
		return p, &ConflictError{Kind: "pair " + key, Want: []string{expect}, Got: cur}
	}
	if old := p.Previous.Secret; old != "" && old != next.Secret {
		if err := tx.Bucket(bucketSecrets).Delete([]byte(old)); err != nil {
			return p, err
		}
	}
	prev := p.Current
	if prev.User == "" {
		prev = PairUser{User: expect}
	}
	p = Pair{Key: key, Current: next, Previous: prev, Updated: s.now()}
	raw, err := json.Marshal(p)
	if err != nil {
		return p, err
	}
	value, err := s.tag(tx, bucketPairs, []byte(key), raw)
	if err != nil {
		return p, err
	}
	return p, b.Put([]byte(key), value)
}

// FinishDelivery records, in one transaction, that every target has entry id's password:
// the step is appended, DeliverySecret cleared, and the sealed password either deleted (one
// user) or handed to pair (alternating users: SwapPair's compare-and-set, the pair keeping
// it for a rollback). A crash leaves all of it done or none of it. Finishing an entry that is
// already finished changes nothing.
func (s *Store) FinishDelivery(id uint64, step Step, note string, pair *PairSwap) (Entry, error) {
	return s.endDelivery(id, step, func(tx kv.Tx, e *Entry) error {
		if note != "" {
			e.Notes = append(e.Notes, note)
		}
		if pair == nil {
			return tx.Bucket(bucketSecrets).Delete([]byte(e.DeliverySecret))
		}
		next := PairUser{User: pair.User, Entry: id, Secret: e.DeliverySecret, Owner: e.DeliveryOwner}
		_, err := s.swapPair(tx, pair.Key, pair.Expect, next)
		return err
	})
}

// PairSwap is what FinishDelivery records for alternating users: in pair Key, User (delivered
// by the entry) replaces Expect as the one applications use.
type PairSwap struct {
	Key, Expect, User string
}

// DropDelivery ends entry id's delivery unfinished, in one transaction: every delivery not
// verified is marked markAs (when not empty), the step appended, DeliverySecret cleared and
// its sealed password deleted. For a delivery a later rotation superseded, or whose sealed
// password is gone.
func (s *Store) DropDelivery(id uint64, markAs string, step Step) (Entry, error) {
	return s.endDelivery(id, step, func(tx kv.Tx, e *Entry) error {
		for i := range e.Deliveries {
			if markAs != "" && e.Deliveries[i].State != DeliveryVerified {
				e.Deliveries[i].State, e.Deliveries[i].At = markAs, s.now()
			}
		}
		return tx.Bucket(bucketSecrets).Delete([]byte(e.DeliverySecret))
	})
}

// endDelivery is what finishing and dropping a delivery share: in one transaction, fn settles
// the sealed password (deleted, or handed to a pair), then DeliverySecret is cleared and step
// appended. An entry whose delivery already ended is returned unchanged.
func (s *Store) endDelivery(id uint64, step Step, fn func(kv.Tx, *Entry) error) (Entry, error) {
	if s.readOnly {
		return Entry{}, ErrReadOnly
	}
	var e Entry
	err := s.update(func(tx kv.Tx) error {
		var err error
		if e, err = get[Entry](s, tx, bucketEntries, id); err != nil || e.DeliverySecret == "" {
			return err
		}
		if err := fn(tx, &e); err != nil {
			return err
		}
		e.DeliverySecret, e.DeliverAt = "", time.Time{}
		if step.At.IsZero() {
			step.At = s.now()
		}
		e.History = append(e.History, step)
		return put(s, tx, bucketEntries, id, &e)
	})
	return e, err
}
