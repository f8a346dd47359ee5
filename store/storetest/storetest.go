// Package storetest changes a journal file the way only another version of the bot could, for
// tests of what this version does with it. It writes the bbolt file directly, so it lives
// beside the store (the one importer of bbolt) rather than in a test of another package.
package storetest

import (
	"encoding/binary"
	"errors"
	"path/filepath"

	"go.etcd.io/bbolt"
)

// MarkSchema sets the schema number of the journal in dir (store.FileName inside it) to v,
// as a newer (or older) version of the bot would have left it. The store cannot write a
// schema it does not know, on purpose.
func MarkSchema(dir string, v int) error {
	db, err := bbolt.Open(filepath.Join(dir, "journal.db"), 0o600, nil)
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		if meta == nil {
			return errors.New("storetest: the file has no meta bucket: not a journal")
		}
		return meta.Put([]byte("schema"), binary.BigEndian.AppendUint64(nil, uint64(v)))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}
