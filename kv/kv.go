package kv

import (
	"errors"
	"time"
)

// ErrFenced is the error (wrapped) of a commit whose fence no longer holds: a write made for
// a role the process has lost, such as a leader's timer work after its term ended. Nothing
// of it was written.
var ErrFenced = errors.New("the write's fence no longer holds")

// ErrAmbiguous is the error (wrapped) of a commit whose outcome could not be established:
// its reply was lost and reading it back failed too. It may or may not have been written;
// the caller must not assume either (say so, and let a later read settle it).
var ErrAmbiguous = errors.New("the journal could not tell whether the write was applied")

// DB runs transactions. Both kinds see one consistent snapshot; Update's writes become
// visible together or not at all.
type DB interface {
	// View runs fn in a read-only transaction, once.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction and commits it when fn returns nil.
	// IMPORTANT: a backend with optimistic concurrency (etcd) runs fn again when another
	// writer committed first, so fn must not leave effects outside the transaction that a
	// second run would double (assign results, do not append to them).
	Update(fn func(Tx) error) error
	Close() error
}

// Tx is one transaction.
type Tx interface {
	// Bucket is the named bucket, or nil when it does not exist.
	Bucket(name []byte) Bucket
	CreateBucket(name []byte) (Bucket, error)
	CreateBucketIfNotExists(name []byte) (Bucket, error)
	DeleteBucket(name []byte) error
	// ID numbers the committed transactions: a read-only transaction's is the last one
	// committed, a read-write one's the one it will commit as.
	ID() uint64
	Writable() bool
}

// Ref names one key of one bucket.
type Ref struct{ Bucket, Key []byte }

// Prefetcher is a Tx whose reads each cost a round trip (etcd's): Prefetch reads the keys
// given in one, and the Gets of them that follow in the transaction read nothing more. A
// key of a bucket that does not exist is skipped; a failed prefetch leaves the Gets to read
// one by one.
type Prefetcher interface {
	Prefetch(refs ...Ref)
}

// Bounded is a DB whose transactions carry at most MaxOps writes (etcd's --max-txn-ops):
// work too big for one is done in batches sized from it.
type Bounded interface {
	MaxOps() int
}

// Bucket is an ordered set of keys. Keys and values returned are valid only during the
// transaction; copy them to keep them.
type Bucket interface {
	// Get is the value of k, or nil when k is absent.
	Get(k []byte) []byte
	Put(k, v []byte) error
	Delete(k []byte) error
	// NextSequence is the bucket's next id, starting at 1.
	NextSequence() (uint64, error)
	// Sequence is the last id NextSequence gave, 0 before the first.
	Sequence() uint64
	// ForEach calls fn for every key in order; an error from fn stops it and is returned.
	ForEach(fn func(k, v []byte) error) error
	Cursor() Cursor
	// KeyN is the number of keys.
	KeyN() int
}

// Cursor walks a bucket in key order. Each method returns nil, nil past either end.
type Cursor interface {
	First() (k, v []byte)
	Last() (k, v []byte)
	Next() (k, v []byte)
	Prev() (k, v []byte)
	// Seek moves to the first key at or after k.
	Seek(k []byte) (key, v []byte)
}

// Expiring is a Bucket that can forget a key by itself after a while (etcd's leases), so
// nothing has to sweep it. Callers still store the expiry in the value: the sweep stays
// the rule where a backend cannot.
type Expiring interface {
	PutExpiring(k, v []byte, ttl time.Duration) error
}

// Leased is a Bucket whose keys can be bound to this process's session (an etcd lease): they
// vanish by themselves when the process dies or loses its session. Claims across replicas
// are such keys. Without one (bbolt: one process), nothing needs claiming across processes.
type Leased interface {
	// PutLeased writes k bound to the session, its value the session's holder.
	PutLeased(k []byte) error
	// Holder names this process's session (the replica).
	Holder() string
}

// Sequencer is a Bucket whose sequence can be set, as a restore sets it to the one the
// backup recorded. Both backends have it.
type Sequencer interface {
	SetSequence(n uint64) error
}
