package store

import (
	"encoding/binary"
	"fmt"

	"mongobot/kv"
)

// Versions: a record's tag binds its version, which says nothing by itself of whether it is
// the latest one. Someone who can write the journal could put a record back as an older
// copy of itself, tag and all (etcd keeps old revisions; a file has copies): a request
// back to approved after it ran, an entry back to done after its rollback, a schedule back
// after it was stopped. So the store keeps, for every tagged record, the version it wrote
// last, in the versions bucket, written in the same transaction as each record: a record
// whose (authenticated) version is not the one its version record holds was put back, and
// fails as a forged one does. A record without a version record
// was deleted and put back (retention deletes both), or written outside the bot.
//
// A record put back together with its version record, both older copies, passes: the two
// agree. Noticing that needs something every write changes, where a writer cannot set it
// back without setting back everything written since: the whole journal set back to an
// earlier copy, which is what restoring a backup does. Neither is caught here; see
// docs/security.md.

// bucketVersions holds, for each record of a tagged bucket, the version the bot wrote last:
// key versionKey(bucket, key), value the version (8 bytes, big-endian). It carries no MAC of
// its own: whoever could put back an older version record could as well put back an older
// copy of a MAC'd one, and a version record names no work; the record's own tag binds the
// version it is compared with.
var bucketVersions = []byte("versions")

// versionKey is the key of record key of bucket b in the versions bucket.
func versionKey(b, key []byte) []byte {
	out := make([]byte, 0, len(b)+1+len(key))
	out = append(out, b...)
	out = append(out, 0)
	return append(out, key...)
}

// putVersion records, in tx, that version ver of record key of bucket b is the latest.
// Called wherever a tagged record is written (tagAt).
func putVersion(tx kv.Tx, b, key []byte, ver uint64) error {
	vb := tx.Bucket(bucketVersions)
	if vb == nil {
		return errNoVersions
	}
	return vb.Put(versionKey(b, key), u64(ver))
}

// errNoVersions is the error of a write to a journal whose versions bucket is gone while the
// bot runs: deleted outside it (on etcd, one key). Nothing more is written or vouched for.
var errNoVersions = &TamperError{Kind: "journal", Key: "versions", Why: "its versions bucket is gone: it was deleted outside the bot, so the bot writes and acts on nothing; restore the journal from a backup"}

// dropVersion forgets record key of bucket b, deleted by the bot (retention): a copy put
// back later has no version record, and fails.
func dropVersion(tx kv.Tx, b, key []byte) error {
	if vb := tx.Bucket(bucketVersions); vb != nil && tagged(b) {
		return vb.Delete(versionKey(b, key))
	}
	return nil
}

// checkVersion says why version ver of record key of bucket b is not the latest the bot
// wrote, or "" when it is (or the journal keeps no versions yet: a read-only open of a
// journal from before them).
func (s *Store) checkVersion(tx kv.Tx, b, key []byte, ver uint64) string {
	vb := tx.Bucket(bucketVersions)
	if vb == nil {
		if s.readOnly {
			return "" // a journal from before versions, read by the journal commands
		}
		return errNoVersions.Why
	}
	return versionWhy(true, b, key, ver, vb.Get(versionKey(b, key)))
}

// versionWhy is checkVersion with the version record read (t, nil when there is none;
// kept false when the journal keeps no versions).
func versionWhy(kept bool, b, key []byte, ver uint64, t []byte) string {
	if !kept {
		return ""
	}
	if t == nil {
		return "the journal holds no version of it: it was deleted and put back, or written outside the bot"
	}
	if len(t) != 8 {
		return "its version record is malformed"
	}
	switch latest := binary.BigEndian.Uint64(t); {
	case latest > ver:
		return fmt.Sprintf("it is version %d of itself, and the bot wrote version %d since: it was put back to an older copy", ver, latest)
	case latest < ver:
		return fmt.Sprintf("its version record says %d, older than the record's %d: the version record was set back", latest, ver)
	}
	return ""
}

// recordVersions makes the versions bucket of a journal that has none: a new one, or one
// written before tags (awaiting adoption, which writes its version records). A journal
// whose records carry tags and which has no versions bucket lost it outside the bot (perhaps
// to have older copies pass): it is made empty, so that every record fails, loudly, and
// nothing is vouched for again.
func (s *Store) recordVersions(tx kv.Tx) error {
	if tx.Bucket(bucketVersions) != nil {
		return nil
	}
	if _, err := tx.CreateBucket(bucketVersions); err != nil {
		return err
	}
	if unadopted(tx) {
		return nil
	}
	for _, b := range taggedBuckets {
		if bk := tx.Bucket(b); bk != nil && bk.KeyN() > 0 {
			s.onTamper.report(TamperError{Kind: "journal", Key: "versions", Why: "its version records are gone while it holds authenticated records: they were deleted outside the bot, so no record is acted on; restore the journal from a backup"})
			return nil
		}
	}
	return nil
}

// checkGone says, for record key of bucket b found missing, whether the bot still holds its
// version record: it was deleted by something other than the bot (which deletes both), and
// an index or a person naming it meets a *TamperError, reported, rather than "not found".
func (s *Store) checkGone(tx kv.Tx, b, key []byte) error {
	vb := tx.Bucket(bucketVersions)
	if s.readOnly || s.untagged || !tagged(b) || unadopted(tx) {
		return nil
	}
	if vb == nil {
		s.onTamper.report(*errNoVersions)
		return errNoVersions
	}
	if vb.Get(versionKey(b, key)) == nil {
		return nil
	}
	te := TamperError{Kind: kindOf(b), Key: keyName(b, key), Why: goneWhy}
	s.onTamper.report(te)
	return &te
}

// goneWhy is why a record the versions bucket knows and its own bucket does not fails.
const goneWhy = "it is gone, deleted by something other than the bot (which keeps its version record until it deletes the record)"
