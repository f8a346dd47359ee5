package store

import (
	"encoding/binary"
	"encoding/json"

	bolt "go.etcd.io/bbolt"
)

// SupersedeSecrets records that secret keep, made by entry by, is now the password of the user
// label names ("connector/user@db"), and deletes every earlier secret offered for that label:
// those passwords no longer work, so revealing one would hand out a dead password. Each
// deleted one leaves a mark saying which entry replaced it (SupersededBy). It returns the ids
// it superseded.
func (s *Store) SupersedeSecrets(label, keep string, by uint64) ([]string, error) {
	var gone []string
	err := s.db.Update(func(tx *bolt.Tx) error {
		offers, replaced, secrets := tx.Bucket(bucketOffers), tx.Bucket(bucketReplaced), tx.Bucket(bucketSecrets)
		var ids []string
		if raw := offers.Get([]byte(label)); raw != nil {
			if err := json.Unmarshal(raw, &ids); err != nil {
				return err
			}
		}
		mark := binary.BigEndian.AppendUint64(nil, by)
		for _, id := range ids {
			if id == keep {
				continue
			}
			if secrets.Get([]byte(id)) != nil {
				gone = append(gone, id)
				if err := secrets.Delete([]byte(id)); err != nil {
					return err
				}
			}
			if err := replaced.Put([]byte(id), mark); err != nil {
				return err
			}
		}
		raw, err := json.Marshal([]string{keep})
		if err != nil {
			return err
		}
		return offers.Put([]byte(label), raw)
	})
	return gone, err
}

// SupersededBy is the entry whose password replaced secret id, or 0.
func (s *Store) SupersededBy(id string) uint64 {
	var by uint64
	_ = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReplaced)
		if b == nil {
			return nil // a journal opened read-only from before these marks existed
		}
		if v := b.Get([]byte(id)); len(v) == 8 {
			by = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return by
}
