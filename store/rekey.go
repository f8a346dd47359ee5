package store

import (
	"mongobot/kv"

	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// keyRekeyFrom marks, in a shared journal's meta, a key rotation under way: it names the key
// being replaced (keySealing already names the new one) until every secret is sealed with the
// new key. Only fingerprints are ever written, never a key.
var keyRekeyFrom = []byte("rekey-from")

// rekeyBatch is how many secrets one etcd transaction re-encrypts: with the rotation marker,
// the index mark and the transaction counter, it stays within store.etcd.max_txn_ops's
// smallest allowed value (32).
const rekeyBatch = 24

// ErrRekeyUnfinished is returned by Rekey on a shared journal when an earlier rotation to
// another key is not finished: rerun it with that key as the new one first.
var ErrRekeyUnfinished = errors.New("store: a key rotation is not finished")

// Fingerprint names key without revealing it (a truncated SHA-256 of it, domain-separated):
// what the journal records of the key that seals its secrets, and what errors and mongobot
// check print.
func Fingerprint(key []byte) string { return keyID(key) }

// Rotation is the state of the keys of a journal's sealed secrets, as mongobot check reports
// it: fingerprints and counts only.
type Rotation struct {
	// Sealing is the fingerprint of the key new secrets are sealed with: on a shared journal,
	// the one its meta names; on bbolt, the store's own ("" when a reader has no key).
	Sealing string
	// From is the fingerprint of the key a rotation is replacing while it is unfinished (a
	// shared journal's rekey was interrupted, or is running now), else "".
	From string
	// Secrets is the number of sealed secrets; Behind, how many of them are sealed with
	// another key than Sealing (a rotation's work left).
	Secrets, Behind int
	// Missing lists the fingerprints of keys that seal a secret, or that the journal names,
	// which this store was not given.
	Missing []string
}

// Rotation reads the state of the journal's keys. It opens no secret.
func (s *Store) Rotation() (Rotation, error) {
	var r Rotation
	var missing map[string]bool
	err := s.db.View(func(tx kv.Tx) error {
		r = Rotation{Sealing: s.keys.id}
		missing = map[string]bool{}
		if s.shared {
			meta := tx.Bucket(bucketMeta)
			if id := string(meta.Get(keySealing)); id != "" {
				r.Sealing = id
			}
			r.From = string(meta.Get(keyRekeyFrom))
			for _, id := range []string{r.Sealing, r.From} {
				if _, ok := s.keys.byID[id]; id != "" && !ok {
					missing[id] = true
				}
			}
		}
		return tx.Bucket(bucketSecrets).ForEach(func(k, v []byte) error {
			var rec sealed
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("store: decode secret: %w", err)
			}
			r.Secrets++
			if rec.KeyID != r.Sealing {
				r.Behind++
			}
			if _, ok := s.keys.byID[rec.KeyID]; !ok {
				missing[rec.KeyID] = true
			}
			return nil
		})
	})
	for id := range missing {
		r.Missing = append(r.Missing, id)
	}
	slices.Sort(r.Missing)
	return r, err
}

// Rekey re-encrypts every stored secret with newKey and makes it the key new secrets are
// sealed with.
//
// On bbolt it is one transaction. When the store's key came from the key file, the file is
// replaced: the new key is written beside it first, so a crash at any point leaves both keys
// readable at next Open, which finishes the rotation. When the key came from the environment,
// the operator sets BOT_ENCRYPTION_KEY to newKey (and may keep the old one as an old key
// until the secrets' TTL has passed).
//
// On a shared journal it runs while the replicas serve, each of which must hold both keys
// (Options.Key and Options.OldKeys, in either order) for as long as it lasts: first one
// transaction makes newKey the journal's sealing key and marks the rotation (keyRekeyFrom),
// so from then on every replica seals with the new key and none with the old; then the
// secrets still sealed with the old key are re-encrypted a batch per transaction; the last,
// finding none left, clears the mark. Switching first, not last, is what makes the end
// certain: no replica can seal with the old key behind the batches' backs. A crash leaves the
// mark; Rekey with the same newKey resumes where it stopped (ErrRekeyUnfinished for another).
func (s *Store) Rekey(newKey []byte) error {
	if s.shared {
		_, err := s.rekeyShared(newKey, nil)
		return err
	}
	return s.rekeyFile(newKey)
}

// reseal is rec, secret k, opened with the keys held and sealed again with a, named keyID.
func (s *Store) reseal(k string, rec sealed, keyID string, a cipher.AEAD) (sealed, error) {
	plain, err := s.keys.open(k, rec)
	if err != nil {
		return sealed{}, err
	}
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return sealed{}, err
	}
	rec.KeyID, rec.Nonce = keyID, nonce
	rec.Box = a.Seal(nil, nonce, plain, aad(k, rec.Owner, rec.ExpiresAt, rec.Use))
	return rec, nil
}

// rekeyShared is Rekey on a shared journal. after, when set, is called after each batch
// committed with the number of batches so far; an error from it stops the rotation there, as
// a crash would (tests). It returns how many secrets it re-encrypted and tags it remade.
func (s *Store) rekeyShared(newKey []byte, after func(batches int) error) (int, error) {
	if s.readOnly {
		return 0, ErrReadOnly
	}
	id, a, err := s.keys.add(newKey)
	if err != nil {
		return 0, err
	}
	err = s.update(func(tx kv.Tx) error {
		meta := tx.Bucket(bucketMeta)
		have, from := string(meta.Get(keySealing)), string(meta.Get(keyRekeyFrom))
		switch {
		case have == id:
			return nil // switched already: a rotation resumed, or one long finished
		case from != "":
			return fmt.Errorf("%w: the journal is moving from key %s to key %s, and the new key given is %s: run mongobot rekey with BOT_NEW_ENCRYPTION_KEY set to the key of fingerprint %s first",
				ErrRekeyUnfinished, from, have, id, have)
		}
		if _, ok := s.keys.byID[have]; !ok && have != "" {
			return fmt.Errorf("%w: the journal's secrets are sealed with key %s, which was not given here (given: %s): set BOT_ENCRYPTION_KEY to the replicas' current key",
				ErrKeyMismatch, have, s.keys.ids())
		}
		if have != "" {
			if err := meta.Put(keyRekeyFrom, []byte(have)); err != nil {
				return err
			}
		}
		return meta.Put(keySealing, []byte(id))
	})
	if err != nil {
		return 0, fmt.Errorf("store: rekey: %w", err)
	}
	// The batches walk the secrets, then the records' tags, forward from where the last one
	// stopped (pos), so a rotation reads each about twice: once in its batch, and once in the
	// last walk, from the start, which must find nothing left in the transaction that clears
	// the mark.
	total := 0
	var pos walkPos
	for batches := 1; ; batches++ {
		var n int
		var done bool
		var next walkPos
		err := s.update(func(tx kv.Tx) (err error) {
			done = false // a transaction run again decides afresh
			n, next, err = s.rekeyBatch(tx, pos, id, a)
			if err != nil {
				return err
			}
			if n > 0 || next.phase < walkEnd || pos.phase != 0 || pos.from != nil {
				// More to walk; or the walk reached the end from the middle, and one more
				// from the start must find nothing before the mark goes.
				return nil
			}
			// A whole walk found nothing sealed with another key, and (the transaction
			// being serializable, every seal since the switch using the new key) nothing
			// will be: the rotation is over.
			done = true
			meta := tx.Bucket(bucketMeta)
			if string(meta.Get(keySealing)) != id {
				return fmt.Errorf("%w: another rotation moved the journal to key %s meanwhile", ErrRekeyUnfinished, meta.Get(keySealing))
			}
			return meta.Delete(keyRekeyFrom)
		})
		if err != nil {
			return total, fmt.Errorf("store: rekey (resume it by running it again): %w", err)
		}
		total += n
		if done {
			return total, nil
		}
		if pos = next; next.phase == walkEnd {
			pos = walkPos{} // the end, reached from the middle: once more from the start
		}
		if after != nil {
			if err := after(batches); err != nil {
				return total, err
			}
		}
	}
}

// walkPos is where a shared rotation's walk stands: in the secrets (phase 0) or the records
// of tagged bucket phase-1, at key from (nil: the bucket's first); phase walkEnd is past all.
type walkPos struct {
	phase int
	from  []byte
}

// walked are the buckets a shared rotation walks, in order.
var walked = append([][]byte{bucketSecrets}, taggedBuckets...)

var walkEnd = len(walked)

// rekeyBatch re-seals, from pos on, up to rekeyBatch secrets not sealed with key id (a) and
// remakes the tags of the records not made with it, and says where the walk stopped (the
// first key it did not look at).
func (s *Store) rekeyBatch(tx kv.Tx, pos walkPos, id string, a cipher.AEAD) (int, walkPos, error) {
	n := 0
	for pos.phase < walkEnd {
		name := walked[pos.phase]
		b := tx.Bucket(name)
		var puts [][2][]byte
		c := b.Cursor()
		var k, v []byte
		if pos.from == nil {
			k, v = c.First()
		} else {
			k, v = c.Seek(pos.from)
		}
		for ; k != nil && n < rekeyBatch; k, v = c.Next() {
			if pos.phase > 0 {
				if t, ok := s.retag(tx, name, k, v, id); ok {
					puts, n = append(puts, [2][]byte{append([]byte(nil), k...), t}), n+1
				}
				continue
			}
			var rec sealed
			if err := json.Unmarshal(v, &rec); err != nil {
				return 0, pos, fmt.Errorf("store: decode secret: %w", err)
			}
			if rec.KeyID == id {
				continue
			}
			rec, err := s.reseal(string(k), rec, id, a)
			if err != nil {
				return 0, pos, err
			}
			raw, err := json.Marshal(rec)
			if err != nil {
				return 0, pos, err
			}
			puts, n = append(puts, [2][]byte{append([]byte(nil), k...), raw}), n+1
		}
		var stop []byte
		if k != nil {
			stop = append([]byte(nil), k...)
		}
		for _, p := range puts {
			if err := b.Put(p[0], p[1]); err != nil {
				return 0, pos, err
			}
		}
		if stop != nil {
			return n, walkPos{pos.phase, stop}, nil
		}
		pos = walkPos{phase: pos.phase + 1}
	}
	return n, pos, nil
}

// rekeyFile is Rekey on bbolt: one transaction, and the key file replaced around it.
func (s *Store) rekeyFile(newKey []byte) error {
	// Checked first: a read-only store must not even write the new key file.
	if s.readOnly {
		return ErrReadOnly
	}
	id, a, err := s.keys.add(newKey)
	if err != nil {
		return err
	}
	keyPath := filepath.Join(s.keys.dir, KeyFileName)
	if !s.keys.fromEnv {
		// Replace any pending key atomically: the old pending key may still seal secrets
		// until the transaction below commits.
		tmp := keyPath + ".new.tmp"
		os.Remove(tmp)
		if err := writeFileSync(tmp, []byte(hex.EncodeToString(newKey)+"\n")); err != nil {
			return fmt.Errorf("store: write new key file: %w", err)
		}
		if err := os.Rename(tmp, keyPath+".new"); err != nil {
			return fmt.Errorf("store: write new key file: %w", err)
		}
	}
	err = s.update(func(tx kv.Tx) error {
		b := tx.Bucket(bucketSecrets)
		type rekeyed struct {
			k   []byte
			rec sealed
		}
		var redo []rekeyed
		err := b.ForEach(func(k, v []byte) error {
			var rec sealed
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			rec, err := s.reseal(string(k), rec, id, a)
			if err != nil {
				return err
			}
			redo = append(redo, rekeyed{append([]byte(nil), k...), rec})
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range redo {
			raw, err := json.Marshal(r.rec)
			if err != nil {
				return err
			}
			if err := b.Put(r.k, raw); err != nil {
				return err
			}
		}
		// The records' tags, made again with the new key (those that hold: tags.go).
		for _, name := range taggedBuckets {
			bk := tx.Bucket(name)
			var again [][2][]byte
			err := bk.ForEach(func(k, v []byte) error {
				if t, ok := s.retag(tx, name, k, v, id); ok {
					again = append(again, [2][]byte{append([]byte(nil), k...), t})
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, kv := range again {
				if err := bk.Put(kv[0], kv[1]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: rekey: %w", err)
	}
	s.keys.id, s.keys.current = id, a
	if !s.keys.fromEnv {
		if err := os.Rename(keyPath+".new", keyPath); err != nil {
			return fmt.Errorf("store: install new key file: %w", err)
		}
	}
	return nil
}
