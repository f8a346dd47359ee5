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

// ErrKeyMismatch is returned by OpenShared when this replica lacks the key the shared
// journal's secrets are sealed with (or, during a rotation, the one they are moving from).
var ErrKeyMismatch = errors.New("store: this replica's key is not the shared journal's")

// OpenShared opens the store on db, a journal several replicas share (etcd, see package ha).
// Every replica must hold the key the journal seals with: Options.Key (BOT_ENCRYPTION_KEY),
// or a key file already in dir copied to each; none is ever created here, since two replicas
// creating their own would each seal what the other cannot open. The first replica records
// the key's fingerprint in the journal; a replica without the key the journal names is
// refused (ErrKeyMismatch) before it writes. Options.OldKeys are held too: during a rotation
// (Rekey) every replica holds the old and the new key, and seals with the one the journal
// names, whichever it was started with.
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
	keys.pending = nil // a key file's rotation is bbolt's: a shared journal's is in its meta
	s := &Store{db: unowned{db}, path: describe, now: opts.Now, retention: opts.Retention, keys: keys, indexed: true, shared: true, onTamper: &tamperHook{fn: opts.OnTamper}}
	if err := s.migrate(); err != nil {
		return nil, err
	}
	err = s.update(func(tx kv.Tx) error {
		meta := tx.Bucket(bucketMeta)
		have := string(meta.Get(keySealing))
		if have == "" {
			return meta.Put(keySealing, []byte(keys.id))
		}
		return keys.judge(have, string(meta.Get(keyRekeyFrom)))
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
	s := &Store{db: unowned{db}, path: describe, now: opts.Now, retention: opts.Retention, keys: keys, readOnly: true, shared: true, onTamper: &tamperHook{fn: opts.OnTamper}}
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

// judge says whether a replica holding k may open a shared journal that seals with key have,
// and, while a rotation is unfinished, still holds secrets sealed with key from: it must hold
// both, or it would fail to open some secrets or to seal new ones. The refusal names the
// fingerprints and the fix.
func (k *keyring) judge(have, from string) error {
	_, hasNew := k.byID[have]
	_, hasOld := k.byID[from]
	switch {
	case from == "" && !hasNew:
		return fmt.Errorf("%w: its secrets are sealed with key %s, this replica has %s; "+
			"set BOT_ENCRYPTION_KEY to the key the other replicas use (after a rotation, the new one)",
			ErrKeyMismatch, have, k.ids())
	case from != "" && !hasNew:
		return fmt.Errorf("%w: a key rotation from key %s to key %s is under way and this replica has %s; "+
			"give it the new key in BOT_NEW_ENCRYPTION_KEY beside BOT_ENCRYPTION_KEY, as the other replicas have",
			ErrKeyMismatch, from, have, k.ids())
	case from != "" && !hasOld:
		return fmt.Errorf("%w: a key rotation from key %s to key %s is not finished (secrets sealed with the old key remain) and this replica has only %s; "+
			"finish it first with mongobot rekey, BOT_ENCRYPTION_KEY set to the old key and BOT_NEW_ENCRYPTION_KEY to the new one, or give this replica both keys",
			ErrKeyMismatch, from, have, k.ids())
	}
	return nil
}
