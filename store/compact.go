package store

import (
	"mongobot/kv"

	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// CompactStats are the journal file's sizes, in bytes, before and after Compact.
type CompactStats struct {
	Before, After int64
}

// compactTxSize bounds what one transaction of the copy holds, so that compacting a large
// journal does not hold all of it in memory.
const compactTxSize = 64 << 20

// Compact rewrites the journal in dir into a new file holding only what is live, and puts it
// in place of the old one: bbolt never gives freed pages back to the file system, so this is
// how the space of purged records is reclaimed. The bot must be stopped: a process holding the
// file makes it ErrLocked after lockTimeout, and nothing is changed.
//
// The copy goes to a temporary file in the same folder (mode 0600), is committed with fsync
// and checked, and only then renamed over the journal; the folder is synced after. The
// rename is atomic, so a crash at any point leaves either the old journal whole or the new
// one whole (and at worst a stray temporary file, removed on failure): no backup copy is
// needed. The old file stays locked until the new one is in place.
func Compact(dir string, lockTimeout time.Duration) (CompactStats, error) {
	var st CompactStats
	path := filepath.Join(dir, FileName)
	fi, err := os.Stat(path)
	if err != nil {
		return st, fmt.Errorf("%w: %v", ErrNoJournal, err)
	}
	st.Before = fi.Size()
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, ReadOnly: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return st, fmt.Errorf("%w: another bot process holds %s", ErrLocked, path)
	}
	if err != nil {
		return st, fmt.Errorf("store: open %s: %w", path, err)
	}
	defer src.Close()
	var fresh bool
	if err := (boltDB{src}).View(func(tx kv.Tx) error { fresh = indexFresh(tx); return nil }); err != nil {
		return st, err
	}

	tmp, err := os.CreateTemp(dir, FileName+".compact-*")
	if err != nil {
		return st, fmt.Errorf("store: compact: %w", err)
	}
	tmpPath := tmp.Name()
	tmp.Close()
	done := false
	defer func() {
		if !done {
			os.Remove(tmpPath)
		}
	}()
	if err := os.Chmod(tmpPath, 0o600); err != nil {
		return st, fmt.Errorf("store: compact: %w", err)
	}
	dst, err := bolt.Open(tmpPath, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return st, fmt.Errorf("store: compact: open %s: %w", tmpPath, err)
	}
	err = bolt.Compact(dst, src, compactTxSize)
	if err == nil && fresh {
		// The copy has transaction ids of its own: the mark that the indexes were kept
		// names the copy's last one, or the next Open would rebuild every index.
		err = (boltDB{dst}).Update(markIndexed)
	}
	if err == nil {
		err = dst.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return fmt.Errorf("the copy is inconsistent: %w", err)
			}
			return nil
		})
	}
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return st, fmt.Errorf("store: compact %s: %w", path, err)
	}
	if err := os.Rename(tmpPath, path); err != nil {
		return st, fmt.Errorf("store: compact: put the copy in place: %w", err)
	}
	done = true
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return st, fmt.Errorf("store: compact: sync %s: %w", dir, err)
		}
	}
	if fi, err := os.Stat(path); err == nil {
		st.After = fi.Size()
	}
	return st, nil
}
