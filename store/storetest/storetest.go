// Package storetest holds journals other versions of the bot wrote, and changes a journal file
// the way only another version could, for tests of what this version does with them. It writes the bbolt file directly, so it lives
// beside the store (the one importer of bbolt) rather than in a test of another package.
package storetest

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"

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

// The journal v0.1.0 left (commit 3b0c5ab): its console demo (examples/demo.txt), then a grant
// for 8h, a schedule, an access for 8h and a create-readonly-user whose passwords were never
// revealed, and a lock request still pending, all sealed with V010Key. V010Export is what
// v0.1.0's `journal export` printed for it. Keep both when the schema changes: the upgrade
// tests (store's TestJournalFromV010, cmd/bot's TestUpgradeRule) must still pass on them.
//
//go:embed testdata/journal-v0.1.0.db.gz
var v010Journal []byte

//go:embed testdata/journal-v0.1.0.export.jsonl
var V010Export []byte

// V010Key is the BOT_ENCRYPTION_KEY the v0.1.0 journal was written with (a test key).
const V010Key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// V010Time is when that demo ran: its sealed passwords were still offered then.
var V010Time = time.Date(2026, 12, 7, 17, 50, 0, 0, time.UTC)

// WriteV010 makes dir (mode 0700) a data folder holding the journal v0.1.0 wrote.
func WriteV010(dir string) error {
	zr, err := gzip.NewReader(bytes.NewReader(v010Journal))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(filepath.Join(dir, "journal.db"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, zr); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Put writes value under key in bucket of the journal in dir, as someone who can write the
// file would: no tag, no index, no audit event. The store must refuse what it did not write.
func Put(dir, bucket string, key, value []byte) error {
	db, err := bbolt.Open(filepath.Join(dir, "journal.db"), 0o600, nil)
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return errors.New("storetest: the journal has no bucket " + bucket)
		}
		return b.Put(key, value)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get is the value under key in bucket of the journal in dir, as stored (nil when absent),
// read as someone who can read the file would.
func Get(dir, bucket string, key []byte) ([]byte, error) {
	db, err := bbolt.Open(filepath.Join(dir, "journal.db"), 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var out []byte
	err = db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket([]byte(bucket)); b != nil {
			if v := b.Get(key); v != nil {
				out = append([]byte(nil), v...)
			}
		}
		return nil
	})
	return out, err
}
