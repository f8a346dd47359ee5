package store

import (
	"errors"
	"mongobot/kv"

	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"mongobot/approvals"
	"mongobot/commands"
)

// BeginEntry is the write-ahead step: it commits e in state EntryExecuting and returns it with
// its id. IMPORTANT: call it, and check its error, before touching MongoDB; if it fails, do not
// run the action.
func (s *Store) BeginEntry(e Entry, by string) (Entry, error) {
	if e.CreatedAt.IsZero() {
		e.CreatedAt = s.now()
	}
	if e.Token == "" {
		e.Token = newToken()
	}
	return insert(s, bucketEntries, &e, Step{State: EntryExecuting, At: e.CreatedAt, By: by},
		func(e *Entry, id uint64) { e.ID = id })
}

// BeginRollback is the write-ahead step of a rollback, and its claim: in one transaction it
// checks that entry of is EntryDone and not already being rolled back, commits r (its
// RollbackOf set to of) in EntryExecuting, and marks of as being rolled back by r. Of two
// rollbacks of one entry, one wins; the other gets a *ConflictError and nothing is written.
// A rollback that fails must call ReleaseRollback so that another may be tried.
func (s *Store) BeginRollback(of uint64, r Entry, by string) (Entry, error) {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.now()
	}
	r.RollbackOf = of
	if r.Token == "" {
		r.Token = newToken()
	}
	base := r
	err := s.update(func(tx kv.Tx) error {
		r = base // a transaction run again starts from the entry as given
		orig, err := get[Entry](s, tx, bucketEntries, of)
		if err != nil {
			return err
		}
		if orig.State != EntryDone || orig.RolledBackBy != 0 {
			got := orig.State
			if orig.RolledBackBy != 0 {
				got = fmt.Sprintf("being rolled back by #%d", orig.RolledBackBy)
			}
			return &ConflictError{Kind: "entry", ID: of, Want: []string{EntryDone}, Got: got}
		}
		id, err := tx.Bucket(bucketEntries).NextSequence()
		if err != nil {
			return err
		}
		r.ID = id
		r.step(Step{State: EntryExecuting, At: r.CreatedAt, By: by})
		if err := put(s, tx, bucketEntries, id, &r); err != nil {
			return err
		}
		orig.RolledBackBy = id
		return put(s, tx, bucketEntries, of, &orig)
	})
	return r, err
}

// ReleaseRollback clears the claim rollback r holds on entry of, after r failed.
func (s *Store) ReleaseRollback(of, r uint64) error {
	_, err := s.UpdateEntry(of, func(e *Entry) error {
		if e.RolledBackBy == r {
			e.RolledBackBy = 0
		}
		return nil
	})
	return err
}

// Entry returns journal entry id, or ErrNotFound.
func (s *Store) Entry(id uint64) (Entry, error) {
	var e Entry
	err := s.db.View(func(tx kv.Tx) (err error) {
		e, err = get[Entry](s, tx, bucketEntries, id)
		return err
	})
	return e, err
}

// TransitionEntry moves entry id from one of the states in from to next.State, applying mutate
// in the same transaction (to record After, Undo or Error), or returns a *ConflictError.
func (s *Store) TransitionEntry(id uint64, from []string, next Step, mutate func(*Entry)) (Entry, error) {
	return transition(s, bucketEntries, id, from, next, mutate)
}

// UpdateEntry lets fn change entry id inside one read-write transaction, for changes that are
// not a state transition (such as recording the pre-image before a destructive step).
func (s *Store) UpdateEntry(id uint64, fn func(*Entry) error) (Entry, error) {
	return update(s, bucketEntries, id, fn)
}

// ErrClaimed is returned by ClaimEntry and ClaimRequest while another replica works on the
// record (for a request, this one too): the holder's session still lives.
var ErrClaimed = errors.New("store: the record is claimed")

// ClaimEntry claims executing entry id for this replica, to settle it, on a shared journal:
// it fails with ErrClaimed, naming the holder, while another replica holds it, and with a
// *ConflictError when the entry is no longer executing. This replica's own claim is its own
// (names are unique among live replicas): an action of it that left the entry executing;
// the caller's in-process claim keeps it from racing one still running here. On a journal
// of one process there is nothing to claim across processes, and it succeeds.
func (s *Store) ClaimEntry(id uint64) error {
	return s.claimIn(u64(id), true, func(tx kv.Tx) error {
		e, err := get[Entry](s, tx, bucketEntries, id)
		if err == nil && e.State != EntryExecuting {
			err = &ConflictError{Kind: "entry", ID: id, Want: []string{EntryExecuting}, Got: e.State}
		}
		return err
	})
}

// ClaimRequest claims request id, approved or executing without an entry, for this replica
// to settle it, on a shared journal: ErrClaimed while any replica holds it (this one
// included: it is in this replica's own queue then), a *ConflictError once it has moved on.
// On a journal of one process it succeeds.
func (s *Store) ClaimRequest(id uint64) error {
	return s.claimIn(requestClaim(id), false, func(tx kv.Tx) error {
		r, err := get[Request](s, tx, bucketRequests, id)
		if err == nil && !runningState(r.State) {
			err = &ConflictError{Kind: "request", ID: id, Want: []string{approvals.Approved, approvals.Executing}, Got: r.State}
		}
		return err
	})
}

// claimIn claims key of the claims bucket for this replica once check passes, in one
// transaction; ownIsOurs says this replica's own claim counts as won.
func (s *Store) claimIn(key []byte, ownIsOurs bool, check func(kv.Tx) error) error {
	return s.withClaims(func(tx kv.Tx, claims kv.Leased) error {
		if err := check(tx); err != nil {
			return err
		}
		switch holder := tx.Bucket(bucketClaims).Get(key); {
		case holder == nil:
			return claims.PutLeased(key)
		case ownIsOurs && string(holder) == claims.Holder():
			return nil
		default:
			return fmt.Errorf("%w by %s", ErrClaimed, holder)
		}
	})
}

// ReleaseEntry gives up this replica's claim on entry id (a settling that left it executing);
// a claim of another replica is left alone.
func (s *Store) ReleaseEntry(id uint64) error {
	return s.withClaims(func(tx kv.Tx, claims kv.Leased) error {
		if string(tx.Bucket(bucketClaims).Get(u64(id))) != claims.Holder() {
			return nil
		}
		return tx.Bucket(bucketClaims).Delete(u64(id))
	})
}

// withClaims runs fn in a read-write transaction with the claims bucket, on a shared
// journal; on a journal of one process there are no claims across processes, and it does
// nothing.
func (s *Store) withClaims(fn func(kv.Tx, kv.Leased) error) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if !s.shared {
		return nil
	}
	return s.update(func(tx kv.Tx) error {
		claims, ok := tx.Bucket(bucketClaims).(kv.Leased)
		if !ok {
			return nil // a shared journal opened without a session claims nothing
		}
		return fn(tx, claims)
	})
}

// Executing returns every entry still in EntryExecuting, oldest first: after a crash these
// are the actions whose outcome start-up must establish.
func (s *Store) Executing() ([]Entry, error) {
	var out []Entry
	err := s.db.View(func(tx kv.Tx) error {
		return tx.Bucket(bucketExecuting).ForEach(func(k, _ []byte) error {
			e, err := get[Entry](s, tx, bucketEntries, binary.BigEndian.Uint64(k))
			if errors.Is(err, ErrTampered) {
				return nil // reported; reconciliation is work
			}
			if err != nil {
				return err
			}
			if !s.indexedBy(bucketExecuting, k, e.ID, &e) {
				return nil // not executing, whatever the index says
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// History lists journal entries newest first, limit at a time. Pass the returned next as
// before for the following page; next is 0 on the last page.
func (s *Store) History(before uint64, limit int) ([]Entry, uint64, error) {
	return list[Entry](s, bucketEntries, before, limit, nil)
}

// Temporary returns the entries the bot must still undo by itself (UndoAt set, done), oldest
// first: registered again at start-up. It includes entries a rollback is undoing now: that
// rollback may fail, or have died with the process, and the obligation stays until one works.
func (s *Store) Temporary() ([]Entry, error) {
	return s.indexedEntries(bucketTemporary, func(e *Entry) bool { return !e.UndoAt.IsZero() && e.State == EntryDone })
}

// Undelivered returns the entries whose password some target still waits for, oldest first:
// registered again at start-up, like Temporary.
func (s *Store) Undelivered() ([]Entry, error) {
	return s.indexedEntries(bucketDelivering, (*Entry).AwaitsDelivery)
}

// indexedEntries lists the entries of index, oldest first; on a journal whose indexes are not
// built yet it reads every entry and keeps those that match, the index's own definition.
func (s *Store) indexedEntries(index []byte, match func(*Entry) bool) ([]Entry, error) {
	var out []Entry
	err := s.db.View(func(tx kv.Tx) (err error) {
		if s.indexed {
			out, err = entriesIn(s, tx, index)
		} else {
			out, err = scanEntries(tx, match)
		}
		return err
	})
	return out, err
}

// LatestLock returns the bot's lock of user (of database db, "admin" when empty) on connector
// conn that is in force: the most recent done lock-user entry for that user, unless a done
// unlock-user entry came after it. ok is false when there is none, or when the latest was
// unlocked: a lock found on the server then came from elsewhere. A lock that was rolled back
// is not done any more, and the one before it counts again.
func (s *Store) LatestLock(conn, user, db string) (e Entry, ok bool, err error) {
	prefix := lockPrefix(conn, user, db)
	err = s.db.View(func(tx kv.Tx) error {
		var id uint64
		if s.indexed {
			k := seekBelow(tx.Bucket(bucketLocks).Cursor(), prefix, u64(math.MaxUint64))
			if k == nil {
				return nil
			}
			id = idOf(k)
		} else {
			// Newest first, the first done lock or unlock of the user decides.
			c := tx.Bucket(bucketEntries).Cursor()
			for k, v := c.Last(); k != nil; k, v = c.Prev() {
				var x Entry
				if err := json.Unmarshal(v, &x); err != nil {
					return fmt.Errorf("store: entry %d does not decode: %w", binary.BigEndian.Uint64(k), err)
				}
				// The keys the index would hold say whether x is such a lock or unlock.
				ks := entryKeys(binary.BigEndian.Uint64(k), &x)
				if slices.ContainsFunc(ks, func(ik indexKey) bool {
					return bytes.Equal(ik.bucket, bucketLocks) && bytes.HasPrefix(ik.key, prefix)
				}) {
					id = binary.BigEndian.Uint64(k)
					break
				}
			}
			if id == 0 {
				return nil
			}
		}
		var err error
		if e, err = get[Entry](s, tx, bucketEntries, id); err != nil {
			return err
		}
		if s.indexed && !s.indexedBy(bucketLocks, append(prefix[:len(prefix):len(prefix)], u64(id)...), id, &e) {
			return fmt.Errorf("store: the index of locks names entry %d for %s, which is not such a lock or unlock: it was written outside the bot; run mongobot journal verify, then mongobot journal reindex", id, user)
		}
		ok = e.Action == commands.LockUser
		return nil
	})
	if !ok {
		e = Entry{}
	}
	return e, ok, err
}

// Export writes the whole journal to w as JSON lines, oldest first: its entries as stored.
// The audit trail, with every decision, is ExportAudit.
func (s *Store) Export(w io.Writer) error {
	return s.db.View(func(tx kv.Tx) error {
		enc := json.NewEncoder(w)
		return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			if !json.Valid(v) {
				return fmt.Errorf("store: entry %d does not decode", binary.BigEndian.Uint64(k))
			}
			return enc.Encode(json.RawMessage(v))
		})
	})
}

// PurgeStats says what Purge removed.
type PurgeStats struct {
	Dedupe, Secrets, Entries, Requests int
	// Offers counts the superseded marks and the finished offers dropped.
	Offers int
	// Events counts the audit trail's events dropped: those older than the retention.
	Events int
}

// Purge deletes expired dedupe keys and secrets, old superseded marks and finished offers, and,
// when a retention is set, the entries and requests created before now minus the retention
// that the bot no longer needs (see purgeOld for what it keeps), with the sealed passwords
// they point to. All in one transaction.
func (s *Store) Purge() (PurgeStats, error) {
	var total PurgeStats
	for {
		st, err := s.purgePass()
		total.Dedupe += st.Dedupe
		total.Secrets += st.Secrets
		total.Entries += st.Entries
		total.Requests += st.Requests
		total.Offers += st.Offers
		total.Events += st.Events
		// One pass on bbolt (the hourly ones take the rest); on a shared journal, whose
		// passes are small, as many as it takes.
		if err != nil || !s.shared || (st.Entries < s.batch() && st.Requests < s.batch() && st.Events < s.batch()) {
			return total, err
		}
	}
}

// purgePass is one transaction of Purge.
func (s *Store) purgePass() (PurgeStats, error) {
	var st PurgeStats
	now := s.now()
	err := s.update(func(tx kv.Tx) error {
		st = PurgeStats{} // a transaction run again counts afresh
		var err error
		if st.Dedupe, err = deleteWhere(tx.Bucket(bucketDedupe), func(v []byte) bool {
			return expired(v, now)
		}); err != nil {
			return err
		}
		if st.Secrets, err = deleteWhere(tx.Bucket(bucketSecrets), func(v []byte) bool {
			var sec sealed
			return json.Unmarshal(v, &sec) == nil && !now.Before(sec.ExpiresAt)
		}); err != nil {
			return err
		}
		if s.retention > 0 {
			var secrets int
			if st.Entries, st.Requests, secrets, err = purgeOld(tx, now.Add(-s.retention), s.batch()); err != nil {
				return err
			}
			st.Secrets += secrets
			if st.Events, err = purgeEvents(tx, now.Add(-s.retention), s.batch()); err != nil {
				return err
			}
		}
		// Last: an offer whose secret went with its entry goes too.
		st.Offers, err = purgeOffers(tx, now)
		return err
	})
	return st, err
}

func deleteWhere(b kv.Bucket, match func(v []byte) bool) (int, error) {
	var doomed [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if match(v) {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(doomed), nil
}

func expired(v []byte, now time.Time) bool {
	if len(v) != 8 {
		return true
	}
	return !now.Before(time.Unix(0, int64(binary.BigEndian.Uint64(v))))
}

// Claim makes this replica the one doing what name stands for ("reveal/<secret>", "target/…")
// across the replicas of a shared journal, until release is called or its session ends (a
// crash: the claim goes with the lease). It is ErrClaimed, naming the holder, while another
// replica holds it. A claim this replica's own session holds counts as won: the caller
// serializes its own claims of one name with a lock, so such a claim can only be one a
// failed release left behind. On a journal of one process there is nobody else: the bot's
// own locks serialize, and Claim always succeeds.
func (s *Store) Claim(name string) (release func(), err error) {
	key := append([]byte("x"), name...)
	err = s.claimIn(key, true, func(kv.Tx) error { return nil })
	if err != nil {
		return func() {}, err
	}
	return func() {
		// Tried a few times: a claim left behind blocks the next holder until this
		// replica's session ends (its lease, seconds to a minute), never for good.
		for try := range 3 {
			err := s.withClaims(func(tx kv.Tx, claims kv.Leased) error {
				if string(tx.Bucket(bucketClaims).Get(key)) != claims.Holder() {
					return nil
				}
				return tx.Bucket(bucketClaims).Delete(key)
			})
			if err == nil {
				return
			}
			time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
		}
	}, nil
}
