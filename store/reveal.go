package store

import (
	"mongobot/kv"

	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// RecoveryTTL is the life of a password kept so that a crash between setting it on MongoDB
// and recording the outcome can still deliver it: long enough to outlast any outage, since
// reconciliation, not a clock, decides when it is no longer needed. ExtendSecret gives it
// the owner's reveal window once the result is posted.
const RecoveryTTL = 10 * 365 * 24 * time.Hour

// ErrNotOffered is RevealSecret's answer for a password the bot keeps for itself (a
// recovery copy, a delivery's, a pair's), which no person reveals, whoever it names.
var ErrNotOffered = errors.New("store: this password was not offered to anyone")

// revealLegacy is how long after its sealing a password sealed before uses were recorded
// may still be revealed: reveal windows are hours or days, the bot's own copies live
// RecoveryTTL (years), so only an offer made before the upgrade passes.
const revealLegacy = 90 * 24 * time.Hour

// RevealSecret is PeekSecret for a person's Reveal: only a password offered to owner
// (ExtendSecret) is returned, never one of the bot's own copies (ErrNotOffered), whatever
// button or list points at it.
func (s *Store) RevealSecret(id, owner string) ([]byte, error) {
	return s.peek(id, owner, true)
}

// PeekSecret returns secret id to its owner without deleting it, so that it is deleted
// (TakeSecret) only once it was delivered. Errors as TakeSecret's; an expired secret is
// deleted. IMPORTANT: the caller must keep two reveals of one secret from overlapping.
func (s *Store) PeekSecret(id, owner string) ([]byte, error) {
	return s.peek(id, owner, false)
}

func (s *Store) peek(id, owner string, reveal bool) ([]byte, error) {
	var plain []byte
	now := s.now()
	var expiredNow bool
	err := s.update(func(tx kv.Tx) error {
		expiredNow = false // a transaction run again decides afresh
		b := tx.Bucket(bucketSecrets)
		rec, err := getSealed(b, id)
		if err != nil {
			return err
		}
		if rec.Owner != owner {
			return ErrNotOwner
		}
		if reveal && !offered(rec, now) {
			return ErrNotOffered
		}
		if !now.Before(rec.ExpiresAt) {
			expiredNow = true
			return b.Delete([]byte(id))
		}
		plain, err = s.keys.open(id, rec)
		return err
	})
	if err == nil && expiredNow {
		return nil, ErrExpired
	}
	return plain, err
}

// ExtendSecret seals secret id again with a time to live of ttl from now, for its owner to
// reveal (RevealSecret): a recovery copy becomes a reveal with its own window, which starts
// when its owner is told. Only the bot offers a password; its own copies stay its own.
func (s *Store) ExtendSecret(id, owner string, ttl time.Duration) error {
	if s.readOnly {
		return ErrReadOnly
	}
	return s.update(func(tx kv.Tx) error {
		b := tx.Bucket(bucketSecrets)
		rec, err := getSealed(b, id)
		if err != nil {
			return err
		}
		if rec.Owner != owner {
			return ErrNotOwner
		}
		plain, err := s.keys.open(id, rec)
		if err != nil {
			return err
		}
		keyID, a, err := s.sealer(tx)
		if err != nil {
			return err
		}
		fresh, err := seal(keyID, a, id, owner, s.now().Add(ttl), useReveal, plain)
		if err != nil {
			return err
		}
		raw, err := json.Marshal(fresh)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), raw)
	})
}

func getSealed(b kv.Bucket, id string) (sealed, error) {
	var rec sealed
	raw := b.Get([]byte(id))
	if raw == nil {
		return rec, fmt.Errorf("%w: secret", ErrNotFound)
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		return rec, fmt.Errorf("store: decode secret: %w", err)
	}
	return rec, nil
}

// offered says rec was offered to its owner: sealed for a reveal, or, sealed before uses
// were recorded, with a reveal's short life rather than the years of the bot's own copies.
func offered(rec sealed, now time.Time) bool {
	return rec.Use == useReveal || rec.Use == "" && !rec.ExpiresAt.After(now.Add(revealLegacy))
}
