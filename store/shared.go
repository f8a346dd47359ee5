package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"mongobot/kv"
)

// keySealing names, in meta, the key a shared journal's secrets are sealed with.
var keySealing = []byte("sealing-key")

// ErrKeyMismatch is returned by OpenShared when this replica's key is not the one the shared
// journal's secrets are sealed with.
var ErrKeyMismatch = errors.New("store: this replica's key is not the shared journal's")

// OpenShared opens the store on db, a journal several replicas share (etcd, see package ha).
// Every replica must seal with the same key: Options.Key (BOT_ENCRYPTION_KEY), or a key file
// already in dir copied to each; none is ever created here, since two replicas creating
// their own would each seal what the other cannot open. The first replica records the key's
// id in the journal; a replica with another key is refused (ErrKeyMismatch) before it writes.
// The store does not own db: Close leaves it open.
func OpenShared(db kv.DB, dir, describe string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReadOnly {
		return openSharedReadOnly(db, dir, describe, opts)
	}
	keys, err := readKeyring(dir, opts.Key, opts.OldKeys)
	if err != nil {
		return nil, err
	}
	if keys.current == nil {
		return nil, fmt.Errorf("store: a shared journal needs the same key on every replica: set BOT_ENCRYPTION_KEY (`openssl rand -hex 32`, the same on every replica) or copy %s into %s on each", KeyFileName, dir)
	}
	keys.pending = nil // Rekey is refused on a shared journal: nothing to finish
	s := &Store{db: unowned{db}, path: describe, now: opts.Now, retention: opts.Retention, keys: keys, indexed: true, shared: true}
	if err := s.migrate(); err != nil {
		return nil, err
	}
	err = s.update(func(tx kv.Tx) error {
		meta := tx.Bucket(bucketMeta)
		have := string(meta.Get(keySealing))
		if have == "" {
			return meta.Put(keySealing, []byte(keys.id))
		}
		if _, ok := keys.byID[have]; !ok {
			return fmt.Errorf("%w: its secrets are sealed with key %s, this replica has %s; give every replica the same BOT_ENCRYPTION_KEY",
				ErrKeyMismatch, have, keys.id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Shared says the journal is one several replicas share (OpenShared).
func (s *Store) Shared() bool { return s.shared }

// openSharedReadOnly is OpenShared for Options.ReadOnly, as the journal commands read the
// shared journal: nothing is written (no buckets, no key id), no key is needed (readers open
// no secret), and a prefix no replica has set up is ErrNoJournal.
func openSharedReadOnly(db kv.DB, dir, describe string, opts Options) (*Store, error) {
	keys, err := readKeyring(dir, opts.Key, opts.OldKeys)
	if err != nil {
		return nil, err
	}
	s := &Store{db: unowned{db}, path: describe, now: opts.Now, retention: opts.Retention, keys: keys, readOnly: true, shared: true}
	err = s.db.View(func(tx kv.Tx) error {
		if err := checkRestored(tx, describe); err != nil {
			return err
		}
		for _, b := range sharedBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("%w: %s has no journal (no %s bucket): no replica has started on it", ErrNoJournal, describe, b)
			}
		}
		if have := int(binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchema))); have > SchemaVersion {
			return fmt.Errorf("%w: %s has schema %d, this bot reads %d", ErrNewerSchema, describe, have, SchemaVersion)
		}
		s.indexed = indexFresh(tx)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// unowned is a kv.DB whose Close does nothing: the shared backend's client is the caller's.
type unowned struct{ kv.DB }

func (unowned) Close() error { return nil }

// Fenced is this store writing through db instead: the same journal with every commit also
// conditioned on something (ha.KV.Fenced: the replica's term as leader). The bot's timer work
// writes its write-ahead steps through it.
func (s *Store) Fenced(db kv.DB) *Store {
	c := *s
	c.db = unowned{db}
	return &c
}
