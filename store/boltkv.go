package store

import (
	bolt "go.etcd.io/bbolt"

	"mongobot/kv"
)

// boltDB is a bbolt file as a kv.DB: the thinnest adapter, every call is bbolt's own.
type boltDB struct{ db *bolt.DB }

func (d boltDB) View(fn func(kv.Tx) error) error {
	return d.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (d boltDB) Update(fn func(kv.Tx) error) error {
	return d.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (d boltDB) Close() error { return d.db.Close() }

type boltTx struct{ tx *bolt.Tx }

// bucket wraps b, keeping nil a nil interface: callers test Bucket(name) == nil.
func bucket(b *bolt.Bucket) kv.Bucket {
	if b == nil {
		return nil
	}
	return boltBucket{b}
}

func (t boltTx) Bucket(name []byte) kv.Bucket { return bucket(t.tx.Bucket(name)) }
func (t boltTx) CreateBucket(name []byte) (kv.Bucket, error) {
	b, err := t.tx.CreateBucket(name)
	return bucket(b), err
}
func (t boltTx) CreateBucketIfNotExists(name []byte) (kv.Bucket, error) {
	b, err := t.tx.CreateBucketIfNotExists(name)
	return bucket(b), err
}
func (t boltTx) DeleteBucket(name []byte) error { return t.tx.DeleteBucket(name) }
func (t boltTx) ID() uint64                     { return uint64(t.tx.ID()) }
func (t boltTx) Writable() bool                 { return t.tx.Writable() }

// checkFile is bbolt's consistency check of every page, for Store.Check.
func (t boltTx) checkFile() error {
	for err := range t.tx.Check() {
		return err
	}
	return nil
}

type boltBucket struct{ b *bolt.Bucket }

func (b boltBucket) Get(k []byte) []byte                      { return b.b.Get(k) }
func (b boltBucket) Put(k, v []byte) error                    { return b.b.Put(k, v) }
func (b boltBucket) Delete(k []byte) error                    { return b.b.Delete(k) }
func (b boltBucket) NextSequence() (uint64, error)            { return b.b.NextSequence() }
func (b boltBucket) Sequence() uint64                         { return b.b.Sequence() }
func (b boltBucket) SetSequence(n uint64) error               { return b.b.SetSequence(n) }
func (b boltBucket) ForEach(fn func(k, v []byte) error) error { return b.b.ForEach(fn) }
func (b boltBucket) Cursor() kv.Cursor                        { return b.b.Cursor() }
func (b boltBucket) KeyN() int                                { return b.b.Stats().KeyN }
