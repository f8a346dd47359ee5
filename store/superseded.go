package store

import (
	"mongobot/kv"

	"encoding/binary"
	"encoding/json"
	"slices"
	"time"
)

// Offer is a secret offered for a user's Reveal, and where its offer was posted.
type Offer struct {
	ID      string `json:"id"`
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
	// Entry is the journal entry that made the secret, for the audit trail's reveal event.
	Entry uint64 `json:"entry,omitempty"`
}

// SupersedeSecrets records that secret keep, made by entry by, is now the password of the user
// label names ("connector/user@db"), and deletes every earlier secret offered for that label:
// those passwords no longer work, so revealing one would hand out a dead password. Each
// deleted one leaves a mark saying which entry replaced it (SupersededBy). It returns the
// offers it superseded, so that their messages can say so.
func (s *Store) SupersedeSecrets(label, keep string, by uint64) ([]Offer, error) {
	var gone []Offer
	err := s.update(func(tx kv.Tx) error {
		gone = nil // a transaction run again reports only its own
		offers, replaced, secrets := tx.Bucket(bucketOffers), tx.Bucket(bucketReplaced), tx.Bucket(bucketSecrets)
		list, err := readOffers(offers, label)
		if err != nil {
			return err
		}
		// The mark: the replacing entry, then when (for Purge).
		mark := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, by), uint64(s.now().Unix()))
		kept := []Offer{{ID: keep, Entry: by}}
		for _, o := range list {
			if o.ID == keep {
				kept[0] = o
				kept[0].Entry = by
				continue
			}
			if secrets.Get([]byte(o.ID)) != nil {
				gone = append(gone, o)
				if err := secrets.Delete([]byte(o.ID)); err != nil {
					return err
				}
			}
			if err := replaced.Put([]byte(o.ID), mark); err != nil {
				return err
			}
		}
		return writeOffers(offers, label, kept)
	})
	return gone, err
}

// NoteOffer records where secret id's offer was posted.
func (s *Store) NoteOffer(label, id, channel, ts string) error {
	return s.update(func(tx kv.Tx) error {
		b := tx.Bucket(bucketOffers)
		list, err := readOffers(b, label)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(list, func(o Offer) bool { return o.ID == id })
		if i < 0 {
			list, i = append(list, Offer{ID: id}), len(list)
		}
		list[i].Channel, list[i].TS = channel, ts
		return writeOffers(b, label, list)
	})
}

func readOffers(b kv.Bucket, label string) ([]Offer, error) {
	var list []Offer
	if raw := b.Get([]byte(label)); raw != nil {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, err
		}
	}
	return list, nil
}

func writeOffers(b kv.Bucket, label string, list []Offer) error {
	raw, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return b.Put([]byte(label), raw)
}

// SupersededBy is the entry whose password replaced secret id, or 0.
func (s *Store) SupersededBy(id string) uint64 {
	var by uint64
	_ = s.db.View(func(tx kv.Tx) error {
		b := tx.Bucket(bucketReplaced)
		if b == nil {
			return nil // a journal opened read-only from before these marks existed
		}
		if v := b.Get([]byte(id)); len(v) >= 8 {
			by = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return by
}

// markTTL is how long a superseded mark is kept: longer than any reveal window (at most 7
// days), after which the older offer would have expired anyway.
const markTTL = 30 * 24 * time.Hour

// purgeOffers drops superseded marks older than markTTL and offers whose secret is gone
// (revealed or expired), so neither bucket grows with every rotation ever made.
func purgeOffers(tx kv.Tx, now time.Time) (int, error) {
	cutoff := uint64(now.Add(-markTTL).Unix())
	n, err := deleteWhere(tx.Bucket(bucketReplaced), func(v []byte) bool {
		return len(v) == 16 && binary.BigEndian.Uint64(v[8:]) < cutoff
	})
	if err != nil {
		return n, err
	}
	offers, secrets := tx.Bucket(bucketOffers), tx.Bucket(bucketSecrets)
	var labels [][]byte
	if err := offers.ForEach(func(k, _ []byte) error { labels = append(labels, append([]byte(nil), k...)); return nil }); err != nil {
		return n, err
	}
	for _, label := range labels {
		list, err := readOffers(offers, string(label))
		if err != nil {
			return n, err
		}
		live := slices.DeleteFunc(list, func(o Offer) bool { return secrets.Get([]byte(o.ID)) == nil })
		switch {
		case len(live) == 0:
			err = offers.Delete(label)
			n++
		case len(live) < len(list):
			err = writeOffers(offers, string(label), live)
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
