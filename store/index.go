package store

import (
	"errors"
	"mongobot/kv"
	"strconv"

	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"mongobot/commands"
)

// The indexes answer the bot's frequent questions (what is pending, what must it end or
// deliver, which lock does an unlock undo) at a cost that does not grow with every record
// ever written. Each is a bucket of keys with empty values, sorted so that one cursor range
// is the answer, and each is kept by put and remove in the same transaction as the record it
// describes: no caller can write a record and forget its index.
//
// Schedules have no index by next slot: there are few of them (one per rotated user), and
// the bot reads them all once at start and keeps their next runs in memory.
var (
	// bucketRequestStates holds state, id for every request: the requests in a few states
	// are one range per state, whatever the number of decided ones. Keyed by every state,
	// not only the open ones, so the store need not know the approvals state machine.
	bucketRequestStates = []byte("requests_by_state")
	// bucketTemporary holds UndoAt, id for each done entry the bot must still undo itself:
	// by time, so that the ends due before a moment are one range.
	bucketTemporary = []byte("entries_temporary")
	// bucketDelivering holds the ids of the entries whose password a target still awaits.
	bucketDelivering = []byte("entries_delivering")
	// bucketLocks holds connector, user, database, id for every done lock-user and
	// unlock-user entry: the last key under a user's prefix says whether a lock by the bot is
	// in force. Earlier ones are kept, since rolling back the latest brings its predecessor
	// back into force.
	bucketLocks = []byte("entries_locks")

	// indexBuckets are every index, bucketExecuting included (it came first, with the
	// write-ahead journal).
	indexBuckets = [][]byte{bucketExecuting, bucketRequestStates, bucketTemporary, bucketDelivering, bucketLocks}

	// keyIndexed, in the meta bucket, is indexVersion then the id of the last transaction
	// that kept the indexes. A transaction written by anything else (a build from before
	// the indexes, run again after an upgrade was rolled back; a hand edit) leaves a stale
	// id, and the next Open rebuilds the indexes.
	keyIndexed = []byte("indexed")
)

// indexVersion is the layout of the index keys. Raise it when it changes: Open then rebuilds.
const indexVersion = 1

// indexKey is one key in one index bucket.
type indexKey struct {
	bucket, key []byte
}

// entryKeys are the index keys of entry e, stored under id.
func entryKeys(id uint64, e *Entry) []indexKey {
	var ks []indexKey
	if e.State == EntryExecuting {
		ks = append(ks, indexKey{bucketExecuting, u64(id)})
	}
	if e.State == EntryDone && !e.UndoAt.IsZero() {
		ks = append(ks, indexKey{bucketTemporary, binary.BigEndian.AppendUint64(timeKey(e.UndoAt), id)})
	}
	if e.AwaitsDelivery() {
		ks = append(ks, indexKey{bucketDelivering, u64(id)})
	}
	if e.State == EntryDone && (e.Action == commands.LockUser || e.Action == commands.UnlockUser) {
		user, db := e.Args["user"], e.Args["authdb"]
		ks = append(ks, indexKey{bucketLocks, binary.BigEndian.AppendUint64(lockPrefix(e.Connector, user, db), id)})
	}
	return ks
}

// requestKeys are the index keys of request r, stored under id.
func requestKeys(id uint64, r *Request) []indexKey {
	return []indexKey{{bucketRequestStates, binary.BigEndian.AppendUint64(statePrefix(r.State), id)}}
}

// statePrefix is the requests_by_state prefix of state. States never hold a NUL.
func statePrefix(state string) []byte { return append([]byte(state), 0) }

// lockPrefix is the entries_locks prefix of a user: each part length-prefixed, so that no
// name can run into the next. db is the user's authentication database, "admin" when empty,
// as the bot reads an entry's "authdb" argument.
func lockPrefix(conn, user, db string) []byte {
	if db == "" {
		db = "admin"
	}
	var b []byte
	for _, part := range []string{conn, user, db} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(part)))
		b = append(b, part...)
	}
	return b
}

// timeKey sorts times from 1970 to 2262 in order, which covers every UndoAt.
func timeKey(t time.Time) []byte { return u64(uint64(t.UnixNano())) }

// keysOf returns the index keys of record rec (an *Entry or a *Request) stored under id.
func keysOf(id uint64, rec any) []indexKey {
	switch r := rec.(type) {
	case *Entry:
		return entryKeys(id, r)
	case *Request:
		return requestKeys(id, r)
	}
	return nil
}

// storedKeys returns the index keys of the record stored as raw in bucket b.
func storedKeys(b []byte, id uint64, raw []byte) ([]indexKey, error) {
	var rec any
	switch string(b) {
	case string(bucketEntries):
		rec = new(Entry)
	case string(bucketRequests):
		rec = new(Request)
	default:
		return nil, nil
	}
	if err := json.Unmarshal(raw, rec); err != nil {
		return nil, fmt.Errorf("store: decode %s %d: %w", kindOf(b), id, err)
	}
	return keysOf(id, rec), nil
}

// reindexRecord moves the index keys of record id of bucket b from those of its stored form
// old (nil for a new record) to those of rec (nil for a deleted one).
func reindexRecord(tx kv.Tx, b []byte, id uint64, old []byte, rec any) error {
	next := keysOf(id, rec)
	var prev []indexKey
	if old != nil {
		var err error
		if prev, err = storedKeys(b, id, old); err != nil {
			return err
		}
	}
	for _, k := range prev {
		if !slices.ContainsFunc(next, k.equal) {
			if err := tx.Bucket(k.bucket).Delete(k.key); err != nil {
				return err
			}
		}
	}
	for _, k := range next {
		if !slices.ContainsFunc(prev, k.equal) {
			if err := tx.Bucket(k.bucket).Put(k.key, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func (k indexKey) equal(o indexKey) bool {
	return bytes.Equal(k.bucket, o.bucket) && bytes.Equal(k.key, o.key)
}

// idOf is the record id at the end of an index key.
func idOf(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-8:]) }

// indexFresh reports whether tx sees indexes it can trust: every index bucket is there, in
// this version's layout, and the last transaction committed was one that kept them.
func indexFresh(tx kv.Tx) bool {
	for _, b := range indexBuckets {
		if tx.Bucket(b) == nil {
			return false
		}
	}
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return false
	}
	v := meta.Get(keyIndexed)
	last := uint64(tx.ID())
	if tx.Writable() {
		last-- // a read-write transaction's id is the one it will commit as
	}
	return len(v) == 16 && binary.BigEndian.Uint64(v) == indexVersion && binary.BigEndian.Uint64(v[8:]) == last
}

// markIndexed records, in meta, that transaction tx kept the indexes.
func markIndexed(tx kv.Tx) error {
	v := binary.BigEndian.AppendUint64(u64(indexVersion), uint64(tx.ID()))
	return tx.Bucket(bucketMeta).Put(keyIndexed, v)
}

// update is the store's read-write transaction: fn, then the mark that the indexes were kept.
// IMPORTANT: write only through it (never s.db.Update), or the next Open finds the mark stale
// and rebuilds every index, which reads the whole journal.
// IMPORTANT: on etcd, fn runs again when another replica committed first: fn must start from
// what it was given each time (reset what it reports, copy records it appends steps to).
func (s *Store) update(fn func(tx kv.Tx) error) error {
	return s.db.Update(func(tx kv.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return markIndexed(tx)
	})
}

// IndexCount is the number of keys in one index.
type IndexCount struct {
	Name string // the index's bucket
	Keys int
}

// ReindexStats says what Reindex read and wrote.
type ReindexStats struct {
	Entries, Requests int // records read
	Indexes           []IndexCount
}

// Reindex rebuilds every index from the records, in one transaction. Open does it by itself
// when the indexes are missing or stale; this is for an operator who wants it done now
// (bot journal reindex), with the bot stopped.
func (s *Store) Reindex() (ReindexStats, error) {
	if s.readOnly {
		return ReindexStats{}, ErrReadOnly
	}
	var st ReindexStats
	err := s.update(func(tx kv.Tx) (err error) {
		st, err = reindex(tx)
		return err
	})
	return st, err
}

// reindex empties every index bucket (creating those missing) and fills them again from the
// entries and the requests.
func reindex(tx kv.Tx) (ReindexStats, error) {
	var st ReindexStats
	for _, b := range indexBuckets {
		if tx.Bucket(b) != nil {
			if err := tx.DeleteBucket(b); err != nil {
				return st, err
			}
		}
		if _, err := tx.CreateBucket(b); err != nil {
			return st, err
		}
	}
	// The keys are gathered, then written in order: bbolt splits no node before the commit,
	// so keys put out of order each move every key after them in their node, which made a
	// rebuild of a million entries take minutes instead of seconds.
	keys := map[string][][]byte{}
	for _, b := range [][]byte{bucketEntries, bucketRequests} {
		err := tx.Bucket(b).ForEach(func(k, v []byte) error {
			if string(b) == string(bucketEntries) {
				st.Entries++
			} else {
				st.Requests++
			}
			ks, err := storedKeys(b, binary.BigEndian.Uint64(k), v)
			for _, ik := range ks {
				keys[string(ik.bucket)] = append(keys[string(ik.bucket)], ik.key)
			}
			return err
		})
		if err != nil {
			return st, err
		}
	}
	for _, b := range indexBuckets {
		ks := keys[string(b)]
		slices.SortFunc(ks, bytes.Compare)
		for _, k := range ks {
			if err := tx.Bucket(b).Put(k, nil); err != nil {
				return st, err
			}
		}
		st.Indexes = append(st.Indexes, IndexCount{Name: string(b), Keys: len(ks)})
	}
	return st, nil
}

// checkIndexes compares every index with what the records say it should hold.
//
// Records that fail their authentication (tags.go) are left out on both sides: the bot never
// wrote them, so the indexes it keeps cannot match them, and the bot never acts on them.
func checkIndexes(s *Store, tx kv.Tx) error {
	want := map[string]map[string]uint64{} // bucket -> key -> record id
	for _, b := range indexBuckets {
		want[string(b)] = map[string]uint64{}
	}
	suspect := map[string]map[uint64]bool{}
	for _, b := range [][]byte{bucketEntries, bucketRequests} {
		suspect[string(b)] = map[uint64]bool{}
		err := tx.Bucket(b).ForEach(func(k, v []byte) error {
			id := binary.BigEndian.Uint64(k)
			if len(s.keys.macs) > 0 && s.verifyTag(tx, b, k, v) != nil {
				suspect[string(b)][id] = true
				return nil
			}
			ks, err := storedKeys(b, id, v)
			for _, ik := range ks {
				want[string(ik.bucket)][string(ik.key)] = id
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	for _, b := range indexBuckets {
		if tx.Bucket(b) == nil {
			return fmt.Errorf("store: index %s is missing; run mongobot journal reindex", b)
		}
		missing := want[string(b)]
		of := bucketEntries
		if bytes.Equal(b, bucketRequestStates) {
			of = bucketRequests
		}
		err := tx.Bucket(b).ForEach(func(k, _ []byte) error {
			if suspect[string(of)][idOf(k)] {
				return nil
			}
			if _, ok := missing[string(k)]; !ok {
				return fmt.Errorf("store: index %s has key %x, which no record gives (record %d); run mongobot journal reindex", b, k, idOf(k))
			}
			delete(missing, string(k))
			return nil
		})
		if err != nil {
			return err
		}
		for k, id := range missing {
			return fmt.Errorf("store: index %s lacks key %x of record %d; run mongobot journal reindex", b, k, id)
		}
	}
	return nil
}

// seekBelow places c on the last key that starts with prefix and sorts before prefix+bound,
// and returns it, or nil when there is none.
func seekBelow(c kv.Cursor, prefix, bound []byte) []byte {
	k, _ := c.Seek(append(prefix[:len(prefix):len(prefix)], bound...))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil
	}
	return k
}

// requestsIn is Requests for a few states, from requests_by_state: one cursor per state,
// walked newest first and merged, so a page costs its own size whatever the number of
// requests in other states.
func (s *Store) requestsIn(before uint64, limit int, states []string) (out []Request, next uint64, err error) {
	if limit <= 0 {
		limit = 20
	}
	if before == 0 {
		before = math.MaxUint64
	}
	states = slices.Compact(slices.Sorted(slices.Values(states)))
	err = s.db.View(func(tx kv.Tx) error {
		type head struct {
			c      kv.Cursor
			prefix []byte
			k      []byte
		}
		var heads []*head
		for _, st := range states {
			h := &head{c: tx.Bucket(bucketRequestStates).Cursor(), prefix: statePrefix(st)}
			if h.k = seekBelow(h.c, h.prefix, u64(before)); h.k != nil {
				heads = append(heads, h)
			}
		}
		for len(heads) > 0 {
			top := slices.MaxFunc(heads, func(a, b *head) int { return cmp.Compare(idOf(a.k), idOf(b.k)) })
			id, key := idOf(top.k), slices.Clone(top.k)
			if top.k, _ = top.c.Prev(); top.k == nil || !bytes.HasPrefix(top.k, top.prefix) {
				heads = slices.DeleteFunc(heads, func(h *head) bool { return h == top })
			}
			if len(out) > 0 && out[len(out)-1].ID == id {
				continue // under two states: a damaged index (Check says so), listed once
			}
			if len(out) == limit {
				next = id + 1
				return nil
			}
			r, err := get[Request](s, tx, bucketRequests, id)
			if errors.Is(err, ErrTampered) {
				continue // reported; never listed for work
			}
			if err != nil {
				return err
			}
			if !s.indexedBy(bucketRequestStates, key, id, &r) {
				continue // an index key the record does not give: reported, not followed
			}
			out = append(out, r)
		}
		return nil
	})
	return out, next, err
}

// entriesIn returns the entries whose ids end the keys of index b, oldest (lowest id) first.
//
// An entry that fails its authentication is left out (and reported): these lists are work.
func entriesIn(s *Store, tx kv.Tx, b []byte) ([]Entry, error) {
	var out []Entry
	err := tx.Bucket(b).ForEach(func(k, _ []byte) error {
		e, err := get[Entry](s, tx, bucketEntries, idOf(k))
		if errors.Is(err, ErrTampered) || err == nil && !s.indexedBy(b, k, e.ID, &e) {
			return nil
		}
		out = append(out, e)
		return err
	})
	slices.SortFunc(out, func(a, b Entry) int { return cmp.Compare(a.ID, b.ID) })
	return out, err
}

// scanEntries returns the entries that match keep, oldest first, reading every one: the
// answer without an index, for a journal opened read-only before its indexes were built.
func scanEntries(tx kv.Tx, keep func(*Entry) bool) ([]Entry, error) {
	var out []Entry
	err := tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("store: entry %d does not decode: %w", binary.BigEndian.Uint64(k), err)
		}
		if keep(&e) {
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// indexedBy says index key k of index b is one that rec, stored under id, gives (keysOf).
// The indexes are not authenticated: they steer the bot to records, whose tags are checked,
// but a key the record does not give (written outside the bot: a done entry put in the
// temporary index to have it undone) must not choose the work. Such a key is reported, as a
// record failing its tag is, and not followed.
func (s *Store) indexedBy(b, k []byte, id uint64, rec any) bool {
	for _, ik := range keysOf(id, rec) {
		if bytes.Equal(ik.bucket, b) && bytes.Equal(ik.key, k) {
			return true
		}
	}
	if s.untagged || len(s.keys.macs) == 0 {
		return true // a store that checks nothing (a reader without the key) reports nothing
	}
	s.onTamper.report(TamperError{Kind: "index " + string(b), Key: strconv.FormatUint(id, 10),
		Why: "it names a record that does not belong in it"})
	return false
}
