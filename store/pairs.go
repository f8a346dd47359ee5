package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
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
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPairs)
		if b == nil { // a journal from before pairs, opened read-only
			return nil
		}
		raw := b.Get([]byte(key))
		if raw == nil {
			return nil
		}
		ok = true
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("store: pair %q does not decode: %w", key, err)
		}
		return nil
	})
	return p, ok, err
}

// SwapPair makes user, delivered by entry with the sealed password secret (owned by owner),
// the current user of pair key, if the current one is still expect (compare-and-set: two
// deliveries to one pair cannot both win). The former current user becomes the previous one.
// The sealed password the pair held for the former previous user is deleted in the same
// transaction: this rotation changed that user's password, so it no longer works (for a
// rollback, which delivers the previous user again, it is the one passed in, and kept).
func (s *Store) SwapPair(key, expect string, next PairUser) (Pair, error) {
	if s.readOnly {
		return Pair{}, ErrReadOnly
	}
	var p Pair
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPairs)
		if raw := b.Get([]byte(key)); raw != nil {
			if err := json.Unmarshal(raw, &p); err != nil {
				return fmt.Errorf("store: pair %q does not decode: %w", key, err)
			}
		}
		cur := p.Current.User
		if cur != expect && !(cur == "" && p.Key == "") {
			return &ConflictError{Kind: "pair " + key, Want: []string{expect}, Got: cur}
		}
		if old := p.Previous.Secret; old != "" && old != next.Secret {
			if err := tx.Bucket(bucketSecrets).Delete([]byte(old)); err != nil {
				return err
			}
		}
		prev := p.Current
		if prev.User == "" {
			prev = PairUser{User: expect}
		}
		p = Pair{Key: key, Current: next, Previous: prev, Updated: s.now()}
		raw, err := json.Marshal(p)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), raw)
	})
	return p, err
}
