package store

import (
	"mongobot/kv"

	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"mongobot/approvals"
	"mongobot/commands"
)

// openRequestStates are the states in which a request still waits for a vote or for its
// action to run: such a request is never purged, whatever its age.
var openRequestStates = []string{approvals.Pending, approvals.Approved, approvals.Executing}

// purgeBatch bounds the entries, and the requests, one pass deletes: the first pass over a
// journal of years would otherwise rewrite most of the file in one transaction, holding it
// all in memory. The hourly passes take the rest. A variable for tests.
var purgeBatch = 10_000

// sharedPurgeBatch is purgeBatch on a shared journal: etcd bounds the operations of one
// transaction (128 by default), and each record deleted costs a few (its index keys, its
// sealed password). Purge runs passes of it until one deletes less.
const sharedPurgeBatch = 10

// batch is the purge batch of s.
func (s *Store) batch() int {
	if s.shared {
		return min(purgeBatch, sharedPurgeBatch)
	}
	return purgeBatch
}

// purgeOld deletes the entries and requests created before cutoff that the bot no longer
// needs, with their index keys and the sealed passwords they still point to. What it keeps,
// whatever its age, is what the bot would miss:
//
//   - an entry executing (its outcome is not known yet), and the entry a rollback executing
//     is undoing (the rollback marks it rolled back when it ends);
//   - a temporary action not ended yet (done, UndoAt set): the bot must still undo it;
//   - an entry whose password some target still awaits;
//   - for each user the bot locked or unlocked, the newest such entry past the cutoff when it
//     is a lock: it is the lock in force (LatestLock), or becomes it again if the newer ones
//     are rolled back;
//   - the entries a pair of alternating users names, and their sealed passwords, which a
//     rollback delivers again;
//   - a request still open, one whose entry is kept, and one a schedule not removed was
//     created by (each run reads its reason).
//
// Both buckets are read oldest first and the reading stops at the first record created at or
// after cutoff: ids grow with time, so the cost is what is deleted (and the few kept), not
// the whole journal. A record written out of order is left for a later pass.
func purgeOld(tx kv.Tx, cutoff time.Time, batch int) (entries, requests, secrets int, err error) {
	keepEntry, keepSecret, keepRequest := map[uint64]bool{}, map[string]bool{}, map[uint64]bool{}
	err = tx.Bucket(bucketPairs).ForEach(func(k, v []byte) error {
		var p Pair
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("store: pair %q does not decode: %w", k, err)
		}
		for _, u := range []PairUser{p.Current, p.Previous} {
			keepEntry[u.Entry], keepSecret[u.Secret] = true, true
		}
		return nil
	})
	if err != nil {
		return 0, 0, 0, err
	}
	err = tx.Bucket(bucketExecuting).ForEach(func(k, _ []byte) error {
		// An index key without its entry is Check's to report; it undoes nothing.
		if e, err := decode[Entry](tx, bucketEntries, idOf(k)); err == nil {
			keepEntry[e.RollbackOf] = true
		}
		return nil
	})
	if err != nil {
		return 0, 0, 0, err
	}
	err = tx.Bucket(bucketSchedules).ForEach(func(k, v []byte) error {
		var sc Schedule
		if err := json.Unmarshal(v, &sc); err != nil {
			return fmt.Errorf("store: schedule %d does not decode: %w", binary.BigEndian.Uint64(k), err)
		}
		if sc.State != ScheduleRemoved {
			keepRequest[sc.RequestID] = true
		}
		return nil
	})
	if err != nil {
		return 0, 0, 0, err
	}

	var doomed []Entry
	gone := map[uint64]bool{}
	c := tx.Bucket(bucketEntries).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var e Entry
		if json.Unmarshal(v, &e) != nil {
			continue // kept for a person to read: Check reports it
		}
		if !e.CreatedAt.Before(cutoff) {
			break
		}
		keep, err := stillNeeded(tx, &e, cutoff)
		if err != nil {
			return 0, 0, 0, err
		}
		if keep || keepEntry[e.ID] {
			keepRequest[e.RequestID] = true
			continue
		}
		doomed = append(doomed, e)
		gone[e.ID] = true
		if len(doomed) == batch {
			break
		}
	}
	// Deleted after the reading: stillNeeded looks at the lock index as it was.
	for _, e := range doomed {
		if err := remove(tx, bucketEntries, e.ID); err != nil {
			return 0, 0, 0, err
		}
		for _, id := range []string{e.PendingSecret, e.DeliverySecret} {
			if id == "" || keepSecret[id] || tx.Bucket(bucketSecrets).Get([]byte(id)) == nil {
				continue
			}
			if err := tx.Bucket(bucketSecrets).Delete([]byte(id)); err != nil {
				return 0, 0, 0, err
			}
			secrets++
		}
	}

	var oldRequests []uint64
	rb := tx.Bucket(bucketRequests)
	c = rb.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var r Request
		if json.Unmarshal(v, &r) != nil {
			continue // kept, like an entry that does not decode
		}
		if !r.CreatedAt.Before(cutoff) {
			break
		}
		// A request whose entry is gone (now or at an earlier pass) goes too; one whose entry
		// stays is its reason and votes.
		entryStays := r.EntryID != 0 && !gone[r.EntryID] && tx.Bucket(bucketEntries).Get(u64(r.EntryID)) != nil
		if slices.Contains(openRequestStates, r.State) || keepRequest[r.ID] || entryStays {
			continue
		}
		if oldRequests = append(oldRequests, r.ID); len(oldRequests) == batch {
			break
		}
	}
	for _, id := range oldRequests {
		if err := remove(tx, bucketRequests, id); err != nil {
			return 0, 0, 0, err
		}
	}
	return len(doomed), len(oldRequests), secrets, nil
}

// stillNeeded reports whether entry e, created before cutoff, is one the bot still needs for
// what it is (purgeOld also keeps those other records point to).
func stillNeeded(tx kv.Tx, e *Entry, cutoff time.Time) (bool, error) {
	switch {
	case e.State == EntryExecuting, e.State == EntryDone && !e.UndoAt.IsZero(), e.AwaitsDelivery():
		return true, nil
	case e.State != EntryDone || e.Action != commands.LockUser:
		return false, nil
	}
	// A done lock: kept unless a newer lock or unlock of the same user is past the cutoff too.
	prefix := lockPrefix(e.Connector, e.Args["user"], e.Args["authdb"])
	c := tx.Bucket(bucketLocks).Cursor()
	k, _ := c.Seek(binary.BigEndian.AppendUint64(prefix, e.ID))
	if k == nil || !bytes.HasPrefix(k, prefix) || idOf(k) != e.ID {
		return true, nil // not in the index as it should be: kept, and Check says why
	}
	next, _ := c.Next()
	if next == nil || !bytes.HasPrefix(next, prefix) {
		return true, nil
	}
	newer, err := decode[Entry](tx, bucketEntries, idOf(next))
	if err != nil {
		return false, err
	}
	return !newer.CreatedAt.Before(cutoff), nil
}
