package store

import (
	"bytes"
	"mongobot/approvals"
	"mongobot/kv"
	"slices"

	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the bbolt file inside the data folder.
const FileName = "journal.db"

// SchemaVersion is the layout this code reads and writes. Raise it with a migration.
const SchemaVersion = 1

var (
	bucketMeta      = []byte("meta")
	bucketRequests  = []byte("requests")
	bucketEntries   = []byte("entries")
	bucketExecuting = []byte("entries_executing") // index: ids of entries in EntryExecuting
	bucketSchedules = []byte("schedules")
	bucketSecrets   = []byte("secrets")
	bucketDedupe    = []byte("dedupe")
	bucketOffers    = []byte("offers")     // a user's offered secrets, to supersede them
	bucketReplaced  = []byte("superseded") // secret id -> the entry whose password replaced it
	bucketPairs     = []byte("pairs")      // alternating users: which one applications use now
	// bucketClaims holds, on a shared journal, entry id -> the replica working on it, bound
	// to that replica's session: see put and ClaimEntry.
	bucketClaims = []byte("claims")

	allBuckets = [][]byte{bucketMeta, bucketRequests, bucketEntries, bucketExecuting,
		bucketSchedules, bucketSecrets, bucketDedupe, bucketOffers, bucketReplaced, bucketPairs,
		bucketRequestStates, bucketTemporary, bucketDelivering, bucketLocks, bucketClaims, bucketAudit, bucketVersions}
	// firstBuckets are those every journal of schema 1 has; the others were added later and
	// are created at the next start: a read-only open reads their absence as empty, or, for
	// an index, answers by reading every record.
	firstBuckets = allBuckets[:7]
	// sharedBuckets are those a shared journal has had from its start; the audit trail and
	// the versions came later, and their absence reads as a journal older than they are.
	sharedBuckets = allBuckets[:15]

	keySchema = []byte("schema")
)

// Errors returned by the store. Test with errors.Is.
var (
	// ErrLocked is returned by Open when another process holds the file's lock for longer
	// than Options.LockTimeout, typically a running bot.
	ErrLocked = errors.New("store: the journal file is locked by another process")
	// ErrAmbiguous is the error (wrapped) of a write on a shared journal whose outcome etcd
	// could not tell: its reply was lost and reading it back failed too. It may or may not
	// have been written; say so, never "nothing was done".
	ErrAmbiguous = kv.ErrAmbiguous
	// ErrNotFound is returned when a record with the given id or key does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict is returned (wrapped in *ConflictError) when a compare-and-set finds another
	// state than the one expected: someone else got there first.
	ErrConflict = errors.New("store: state changed concurrently")
	// ErrNewerSchema is returned by Open for a file written by a newer version of the bot.
	ErrNewerSchema = errors.New("store: file written by a newer version")
	// ErrNoJournal is returned by Open with Options.ReadOnly when the data folder or the
	// journal file in it does not exist: a reader must not create them.
	ErrNoJournal = errors.New("store: no journal")
	// ErrReadOnly is returned by the methods that write (secrets, Rekey) on a store opened
	// with Options.ReadOnly.
	ErrReadOnly = errors.New("store: opened read-only")
)

// ConflictError says which record was not in the expected state, and what it was instead.
type ConflictError struct {
	Kind string // "request", "entry", "schedule"
	ID   uint64
	Want []string
	Got  string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("store: %s %d is %q, expected %q", e.Kind, e.ID, e.Got, e.Want)
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Options tune Open. The zero value is usable.
type Options struct {
	// Now is the clock; default time.Now. Tests inject a fixed one.
	Now func() time.Time
	// LockTimeout bounds the wait for the file lock; default 1s. Zero would wait forever,
	// which is never what an operator wants, so it is replaced by the default.
	LockTimeout time.Duration
	// Key is the 32-byte AES-256 key for secrets. When nil, the key is read from (or created
	// in) KeyFileName in the data folder.
	Key []byte
	// OldKeys are earlier keys, still accepted to read secrets sealed before a rotation.
	OldKeys [][]byte
	// Retention, when positive, lets Purge delete the entries and requests older than it
	// that the bot no longer needs (see Purge). Zero keeps the journal forever; the bot
	// passes the config's retention.keep (400 days by default).
	Retention time.Duration
	// ReadOnly opens an existing journal for reading only, as the journal commands do while
	// the bot is stopped: nothing is created (no folder, no file, no key file), migrated or
	// finished (an interrupted Rekey), and the methods that write fail. A missing folder or
	// file is ErrNoJournal. The key file is read when it exists, so its mode is still
	// checked; without it, sealed secrets cannot be opened, which readers never need.
	ReadOnly bool
	// OnTamper, when set, is told of every record found failing its authentication as the
	// store reads it for work (tags.go); the record is left alone. It may be called more
	// than once for one record, and inside a transaction: it must be quick and not call the
	// store.
	OnTamper func(TamperError)
	// NoSync skips fsync on commit. Only for benchmarks that want to measure the code, not
	// the disk. IMPORTANT: a machine crash can then lose committed writes.
	NoSync bool
}

// Store is the bot's state in one bbolt file. It is safe for concurrent use.
type Store struct {
	db        kv.DB
	path      string
	now       func() time.Time
	retention time.Duration
	keys      *keyring
	readOnly  bool
	// indexed says the indexes can be trusted: always after a writable Open, which rebuilds
	// them when they are not; for a read-only one, only when the file's last writer kept
	// them. Without, the questions they answer are answered by reading every record.
	indexed bool
	// shared says the journal is on a backend several replicas share (OpenShared).
	shared bool
	// restoreFailed are the requests this open failed as the first after a restore.
	restoreFailed []uint64
	// untagged turns the tags off: only BenchmarkTags sets it, to measure their cost
	// against none in the same run.
	untagged bool
	// onTamper holds Options.OnTamper, or what WatchTamper set: shared with the stores
	// made from this one (Fenced).
	onTamper *tamperHook
}

// RestoreFailed are the requests this open failed because it was the first writable one
// after a restore, and the backup held them approved but not run (see settleRestored).
func (s *Store) RestoreFailed() []uint64 { return s.restoreFailed }

// Open opens (creating if needed) the store in dir. The folder is created 0700 and the file
// 0600. It returns ErrLocked when another process holds the file, and ErrNewerSchema for a
// file this version cannot read.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.ReadOnly {
		return openReadOnly(dir, opts)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data folder: %w", err)
	}
	keys, err := loadKeyring(dir, opts.Key, opts.OldKeys)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: another bot process holds %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// A file created by hand or by an older build may be wider than owner-only.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: restrict %s: %w", path, err)
	}
	s := &Store{db: boltDB{db}, path: path, now: opts.Now, retention: opts.Retention, keys: keys, indexed: true, onTamper: &tamperHook{fn: opts.OnTamper}}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	if keys.pending != nil {
		if err := s.Rekey(keys.pending); err != nil {
			db.Close()
			return nil, fmt.Errorf("store: finish interrupted key rotation: %w", err)
		}
	}
	return s, nil
}

// openReadOnly is Open for Options.ReadOnly. The file is opened with a shared lock, so a
// running bot (which holds the exclusive one) still makes it ErrLocked after LockTimeout.
func openReadOnly(dir string, opts Options) (*Store, error) {
	path := filepath.Join(dir, FileName)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: the data folder %s does not exist", ErrNoJournal, dir)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w: the data folder %s has no %s", ErrNoJournal, dir, FileName)
	}
	keys, err := readKeyring(dir, opts.Key, opts.OldKeys)
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, ReadOnly: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: another bot process holds %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: boltDB{db}, path: path, now: opts.Now, retention: opts.Retention, keys: keys, readOnly: true, onTamper: &tamperHook{fn: opts.OnTamper}}
	// Without migrate, the buckets must already be there: a file this version never set up
	// is reported, not read as an empty journal.
	err = s.db.View(func(tx kv.Tx) error {
		if err := checkRestored(tx, path); err != nil {
			return err
		}
		for _, b := range firstBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("store: %s is not a journal this bot has opened for writing (no %s bucket); start the bot once to set it up", path, b)
			}
		}
		have := int(binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchema)))
		if have > SchemaVersion {
			return fmt.Errorf("%w: %s has schema %d, this bot reads up to %d; run the newer bot or restore a backup",
				ErrNewerSchema, path, have, SchemaVersion)
		}
		if have < SchemaVersion {
			return fmt.Errorf("store: %s has schema %d and needs migrating to %d; start the bot once to migrate it", path, have, SchemaVersion)
		}
		s.indexed = indexFresh(tx)
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Path is the file's path.
func (s *Store) Path() string { return s.path }

// Close releases the file and its lock.
func (s *Store) Close() error { return s.db.Close() }

// migration upgrades the file from version i+1 to i+2 (migrations[0] turns 1 into 2).
type migration func(tx kv.Tx) error

// migrations is the ordered list; len(migrations)+1 must equal SchemaVersion. A variable so
// tests can exercise the runner.
var migrations []migration

func (s *Store) migrate() error {
	return s.migrateTo(SchemaVersion, migrations)
}

// migrateTo creates the buckets a journal lacks, runs the migrations from the file's schema
// to target, and rebuilds the indexes unless the last transaction kept them (a new file; a
// journal from before the indexes; one written since by an older build), all in one
// transaction: a crash leaves the file as it was.
func (s *Store) migrateTo(target int, steps []migration) error {
	return s.db.Update(func(tx kv.Tx) error {
		if err := checkRestored(tx, s.path); err != nil {
			return err
		}
		fresh := indexFresh(tx) // first: creating the buckets would hide their absence
		if tx.Bucket(bucketAudit) == nil && tx.Bucket(bucketRequests) != nil {
			// The trail begins now: what the journal holds already is legacy, reconstructed
			// by the export (exportLegacy), never rewritten.
			if _, err := tx.CreateBucket(bucketAudit); err != nil {
				return err
			}
			if err := markLegacy(tx, s.now()); err != nil {
				return err
			}
		}
		for _, b := range allBuckets {
			if bytes.Equal(b, bucketVersions) {
				continue // made by recordVersions, whose cue is its absence
			}
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		// Records written before tags: none is acted on until a person adopts them.
		if err := markTagged(tx, s.now()); err != nil {
			return err
		}
		if err := s.recordVersions(tx); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		have := target
		if v := meta.Get(keySchema); v != nil {
			have = int(binary.BigEndian.Uint64(v))
		}
		if have > target {
			return fmt.Errorf("%w: %s has schema %d, this bot reads up to %d; run the newer bot or restore a backup",
				ErrNewerSchema, s.path, have, target)
		}
		for ; have < target; have++ {
			if err := steps[have-1](tx); err != nil {
				return fmt.Errorf("store: migrate schema %d to %d: %w", have, have+1, err)
			}
		}
		if err := meta.Put(keySchema, u64(uint64(target))); err != nil {
			return err
		}
		if !fresh {
			if _, err := reindex(tx); err != nil {
				return fmt.Errorf("store: rebuild the indexes: %w", err)
			}
		}
		// After the indexes, which put keeps from here.
		failed, err := settleRestored(s, tx, s.now())
		if err != nil {
			return fmt.Errorf("store: settle the requests of a restored journal: %w", err)
		}
		s.restoreFailed = failed
		return markIndexed(tx)
	})
}

// Schema returns the file's schema version.
func (s *Store) Schema() (int, error) {
	var v int
	err := s.db.View(func(tx kv.Tx) error {
		v = int(binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchema)))
		return nil
	})
	return v, err
}

// fileChecker is a transaction on a file whose pages can be checked (bbolt's).
type fileChecker interface{ checkFile() error }

// Check runs bbolt's consistency check over the whole file (on bbolt), decodes every record, and
// compares every index in use with what the records say it should hold.
func (s *Store) Check() error {
	return s.db.View(func(tx kv.Tx) error {
		if f, ok := tx.(fileChecker); ok {
			if err := f.checkFile(); err != nil {
				return fmt.Errorf("store: consistency: %w", err)
			}
		}
		for _, b := range [][]byte{bucketRequests, bucketEntries, bucketSchedules, bucketSecrets, bucketAudit} {
			if tx.Bucket(b) == nil {
				continue // the audit trail, on a journal older than it
			}
			err := tx.Bucket(b).ForEach(func(k, v []byte) error {
				var m map[string]any
				if err := json.Unmarshal(v, &m); err != nil {
					return fmt.Errorf("store: %s/%x does not decode: %w", b, k, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if s.indexed {
			return checkIndexes(s, tx)
		}
		return nil
	})
}

func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// decode is the record stored under id in bucket b, as stored: unauthenticated, for what
// only describes records (the audit trail's joins, retention's dates), never for work.
func decode[T any](tx kv.Tx, b []byte, id uint64) (T, error) {
	var v T
	raw := tx.Bucket(b).Get(u64(id))
	if raw == nil {
		return v, fmt.Errorf("%w: %s %d", ErrNotFound, kindOf(b), id)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("store: decode %s %d: %w", kindOf(b), id, err)
	}
	return v, nil
}

// get decodes the record stored under id in bucket b, once its tag says the bot wrote it
// (a *TamperError when not).
func get[T any](s *Store, tx kv.Tx, b []byte, id uint64) (T, error) {
	var v T
	if p, ok := tx.(kv.Prefetcher); ok && tagged(b) {
		p.Prefetch(kv.Ref{Bucket: b, Key: u64(id)}, kv.Ref{Bucket: bucketVersions, Key: versionKey(b, u64(id))})
	}
	raw := tx.Bucket(b).Get(u64(id))
	if raw == nil {
		if err := s.checkGone(tx, b, u64(id)); err != nil {
			return v, err
		}
		return v, fmt.Errorf("%w: %s %d", ErrNotFound, kindOf(b), id)
	}
	if err := s.checkTag(tx, b, u64(id), raw); err != nil {
		return v, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("store: decode %s %d: %w", kindOf(b), id, err)
	}
	return v, nil
}

// put stores v as record id of bucket b and, in the same transaction, moves its index keys
// from those of the record it replaces: the write-ahead index among them, so an entry is
// never executing without being listed by Executing.
//
// The record is tagged in the same transaction (tags.go), with a new version (versions.go).
func put(s *Store, tx kv.Tx, b []byte, id uint64, v any) error {
	return putOver(s, tx, b, id, v, false)
}

// putOver is put; verified says the caller read the record it replaces with get in tx (so
// its tag and version were checked already, and are not again).
func putOver(s *Store, tx kv.Tx, b []byte, id uint64, v any, verified bool) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %s %d: %w", kindOf(b), id, err)
	}
	bk := tx.Bucket(b)
	// What the record replaces decides its claims and its events: only when the bot wrote
	// it. One written behind its back (a record planted at the next id) is replaced as if
	// absent; its index keys still go.
	stored := bk.Get(u64(id))
	old := stored
	if old != nil && !verified && tagged(b) && !unadopted(tx) && s.checkTag(tx, b, u64(id), old) != nil {
		old = nil
	}
	switch rec := v.(type) {
	case *Entry:
		if err := claimWhileExecuting(tx, id, rec); err != nil {
			return err
		}
	case *Request:
		if err := claimWhileRunning(tx, id, old, rec); err != nil {
			return err
		}
	}
	if err := reindexRecord(tx, b, id, stored, v); err != nil {
		return err
	}
	// The record's events go with it: in this transaction, or not at all (audit.go).
	if err := auditPut(tx, old, v); err != nil {
		return err
	}
	value, err := s.tag(tx, b, u64(id), raw)
	if err != nil {
		return err
	}
	return bk.Put(u64(id), value)
}

// requestClaim is a request's key in the claims bucket (an entry's is its bare id).
func requestClaim(id uint64) []byte { return append([]byte("r"), u64(id)...) }

// runningState says a request is between its approval and its entry: the replica that moved
// it there runs it (it sits in that replica's queue, in memory), so it is claimed for as long.
func runningState(s string) bool { return s == approvals.Approved || s == approvals.Executing }

// claimWhileRunning keeps, on a shared journal, request id claimed by the replica that
// approved it while it waits for its turn and begins, as claimWhileExecuting does for an
// entry: the leader's reconciliation leaves it alone until that replica's session ends. raw
// is the record it replaces, as the bot wrote it (nil for none).
func claimWhileRunning(tx kv.Tx, id uint64, raw []byte, r *Request) error {
	claims, ok := tx.Bucket(bucketClaims).(kv.Leased)
	if !ok {
		return nil
	}
	was := false
	if raw != nil {
		var old Request
		if err := json.Unmarshal(raw, &old); err != nil {
			return fmt.Errorf("store: decode request %d: %w", id, err)
		}
		was = runningState(old.State)
	}
	switch now := runningState(r.State); {
	case now && !was:
		return claims.PutLeased(requestClaim(id))
	case was && !now:
		return tx.Bucket(bucketClaims).Delete(requestClaim(id))
	}
	return nil
}

// claimWhileExecuting keeps, on a shared journal, entry id claimed by the replica that put it
// into EntryExecuting for as long as it stays there: the claim is written in the same
// transaction as the write-ahead step, so no other replica ever sees the entry executing and
// unclaimed while its replica lives; it vanishes with that replica's session, which is what
// lets the leader reconcile the entry then. Called before the index moves: the executing
// index still tells the entry's previous state.
func claimWhileExecuting(tx kv.Tx, id uint64, e *Entry) error {
	claims, ok := tx.Bucket(bucketClaims).(kv.Leased)
	if !ok {
		return nil // one process: its own claims (the bot's) are enough
	}
	was := tx.Bucket(bucketExecuting).Get(u64(id)) != nil
	switch now := e.State == EntryExecuting; {
	case now && !was:
		return claims.PutLeased(u64(id))
	case was && !now:
		return tx.Bucket(bucketClaims).Delete(u64(id))
	}
	return nil
}

// remove deletes record id of bucket b and its index keys.
func remove(tx kv.Tx, b []byte, id uint64) error {
	bk := tx.Bucket(b)
	old := bk.Get(u64(id))
	if old == nil {
		return nil
	}
	if err := reindexRecord(tx, b, id, old, nil); err != nil {
		return err
	}
	if err := dropVersion(tx, b, u64(id)); err != nil {
		return err
	}
	return bk.Delete(u64(id))
}

func kindOf(b []byte) string {
	switch string(b) {
	case string(bucketRequests):
		return "request"
	case string(bucketEntries):
		return "entry"
	case string(bucketSchedules):
		return "schedule"
	case string(bucketPairs):
		return "pair"
	}
	return string(b)
}

// list returns up to limit records of bucket b, newest (highest id) first, starting below
// before (0 means from the newest). next is the id to pass as before for the following page,
// or 0 when there is none.
func list[T any](s *Store, b []byte, before uint64, limit int, keep func(*T) bool) (out []T, next uint64, err error) {
	if limit <= 0 {
		limit = 20
	}
	err = s.db.View(func(tx kv.Tx) error {
		c := tx.Bucket(b).Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			// Seek lands on the first id >= before; the page starts just below it.
			if sk, _ := c.Seek(u64(before)); sk == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for k != nil {
			// In chunks, whose version records are read together: one etcd round trip
			// for a chunk rather than one per record.
			var chunk [][2][]byte
			for ; k != nil && len(chunk) < listChunk; k, v = c.Prev() {
				chunk = append(chunk, [2][]byte{slices.Clone(k), slices.Clone(v)})
			}
			prefetchVersions(tx, b, chunk)
			for _, r := range chunk {
				if len(out) == limit {
					next = binary.BigEndian.Uint64(r[0]) + 1
					return nil
				}
				if s.checkTag(tx, b, r[0], r[1]) != nil {
					continue // reported; never listed for work
				}
				var rec T
				if err := json.Unmarshal(r[1], &rec); err != nil {
					return fmt.Errorf("store: decode %s %d: %w", kindOf(b), binary.BigEndian.Uint64(r[0]), err)
				}
				if keep == nil || keep(&rec) {
					out = append(out, rec)
				}
			}
		}
		return nil
	})
	return out, next, err
}

// listChunk is how many records list reads before checking them, their version records in
// one read (within etcd's default bound of 128 operations a transaction).
const listChunk = 64

// prefetchVersions reads the version records of the records of bucket b in chunk (key,
// value pairs) in one round trip, where reads cost one each (etcd).
func prefetchVersions(tx kv.Tx, b []byte, chunk [][2][]byte) {
	p, ok := tx.(kv.Prefetcher)
	if !ok || !tagged(b) {
		return
	}
	refs := make([]kv.Ref, len(chunk))
	for i, r := range chunk {
		refs[i] = kv.Ref{Bucket: bucketVersions, Key: versionKey(b, r[0])}
	}
	p.Prefetch(refs...)
}
