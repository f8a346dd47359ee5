package store

import (
	"mongobot/kv"

	"encoding/binary"
	"time"
)

// Seen records key (a Slack envelope id, a click's action id plus message ts) for ttl and
// reports whether it was new. Checking and recording happen in one transaction, so of two
// deliveries of the same key exactly one sees first == true. An expired key counts as new.
func (s *Store) Seen(key string, ttl time.Duration) (first bool, err error) {
	now := s.now()
	err = s.update(func(tx kv.Tx) error {
		first = false // a transaction run again decides afresh
		b := tx.Bucket(bucketDedupe)
		if v := b.Get([]byte(key)); v != nil && !expired(v, now) {
			return nil
		}
		first = true
		exp := make([]byte, 8)
		binary.BigEndian.PutUint64(exp, uint64(now.Add(ttl).UnixNano()))
		if e, ok := b.(kv.Expiring); ok {
			// etcd forgets the key by itself when its lease ends; the expiry in the value
			// still rules for the store's clock, and Purge's sweep finds nothing to do.
			return e.PutExpiring([]byte(key), exp, ttl)
		}
		return b.Put([]byte(key), exp)
	})
	return first, err
}
