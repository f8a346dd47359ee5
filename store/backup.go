package store

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"mongobot/approvals"
	"mongobot/kv"
)

// A backup is the journal as JSON lines, portable between the backends:
//
//	{"format":"mongobot-journal-backup","version":1,"schema":1,"backend":"bbolt",...}   header
//	{"bucket":"requests","seq":42}                                                     a bucket
//	{"b":"requests","k":"<base64>","v":"<base64>"}                                     a key
//	...
//	{"sha256":"<hex>"}                                                                 trailer
//
// The trailer's checksum covers every byte before it, header included, so a backup that was
// cut short, edited or corrupted is refused before anything is written. It is taken from one
// read transaction, so its records, indexes and sequences agree with each other. It leaves
// out the claims (they belong to live replica sessions) and never holds the encryption key:
// sealed passwords stay sealed, and the restored bot needs the key that sealed them.

// BackupFormat names the format in a backup's header; BackupVersion is its version.
const (
	BackupFormat  = "mongobot-journal-backup"
	BackupVersion = 1
)

// Errors of backup and restore. Test with errors.Is.
var (
	// ErrBadBackup is returned by ReadBackup for a file that is not a whole, unaltered
	// backup of a version it reads.
	ErrBadBackup = errors.New("store: not a valid journal backup")
	// ErrNotEmpty is returned by the restores when the target already holds a journal, or
	// part of one.
	ErrNotEmpty = errors.New("store: the restore target is not empty")
	// ErrRestoreUnfinished is returned by Open and OpenShared for a journal a restore began
	// writing and did not finish: it holds part of a backup.
	ErrRestoreUnfinished = errors.New("store: a restore into this journal did not finish")
	// ErrRestoreLost is returned by RestoreShared when the mark of its restore vanished
	// after it began writing: something else wrote to (or emptied) the prefix meanwhile,
	// which now holds part of the backup, or of something else.
	ErrRestoreLost = errors.New("store: the restore lost its journal while it wrote")
)

// keyRestoring, in meta, marks a journal a restore is writing; it is deleted by the restore's
// last transaction. Its value is the restore's random id.
var keyRestoring = []byte("restoring")

// keyRestored, in meta, marks a journal restored from a backup and not yet opened for
// writing since: the first writable open settles what the backup left between approval and
// entry (settleRestored), then deletes it.
var keyRestored = []byte("restored")

// auditRestoreGap is added to the audit trail's sequence by a restore. The journal the backup
// was taken from may have gone on issuing cursors after it; every cursor the restored one
// issues is greater than those, so a shipper that kept the last one misses nothing.
const auditRestoreGap = 1 << 32

// BackupHeader is the first line of a backup.
type BackupHeader struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Schema  int       `json:"schema"`
	Backend string    `json:"backend"` // "bbolt" or "etcd": where it was taken
	Source  string    `json:"source"`  // the file's path, or the etcd cluster and prefix
	Created time.Time `json:"created"`
	// Indexed says the indexes in the backup were kept by the journal's last write. For
	// information only: a restore never trusts them, the first writable open rebuilds them.
	Indexed bool `json:"indexed"`
	// Counts is the number of keys of each bucket; Records their sum.
	Counts  map[string]int `json:"counts"`
	Records int            `json:"records"`
}

type backupLine struct {
	Bucket string `json:"bucket,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	B      string `json:"b,omitempty"`
	K      []byte `json:"k,omitempty"`
	V      []byte `json:"v,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// Backup is a verified backup read by ReadBackup.
type Backup struct {
	Header  BackupHeader
	buckets []backupBucket
}

type backupBucket struct {
	name  string
	seq   uint64
	pairs [][2][]byte
}

// backedUp are the buckets a backup holds: every bucket but the claims.
func backedUp() [][]byte {
	var out [][]byte
	for _, b := range allBuckets {
		if !bytes.Equal(b, bucketClaims) {
			out = append(out, b)
		}
	}
	return out
}

// backedUpName refuses a bucket a backup never holds: the claims (a live replica's, which a
// restore must not bring back) and any name the journal does not have. The checksum is not
// a signature, so whatever ReadBackup accepts must be something Backup could have written.
func backedUpName(name string) error {
	if name == string(bucketClaims) {
		return errors.New("it holds a claims bucket, which no backup holds (claims belong to running replicas): it was not written by mongobot journal backup; use a backup it wrote")
	}
	for _, b := range backedUp() {
		if name == string(b) {
			return nil
		}
	}
	return fmt.Errorf("it holds a bucket %q this journal does not have: it was not written by mongobot journal backup of this version; use a backup it wrote, or restore with the newer bot that took it", name)
}

// Backup writes the whole journal to w as a backup, from one read transaction: on bbolt one
// read transaction of the file, on etcd one revision. It works on a read-only store, and
// while other processes (or replicas) write. The backup is built in memory before the first
// byte is written, so w receives all of it or, on an error, nothing. source names the
// journal in the header (a snapshot's reader gives the original's path); "" is the store's
// own path or description.
func (s *Store) Backup(w io.Writer, source string) (BackupHeader, error) {
	if source == "" {
		source = s.path
	}
	h := BackupHeader{Format: BackupFormat, Version: BackupVersion, Backend: "bbolt", Source: source,
		Created: s.now().UTC(), Counts: map[string]int{}}
	if s.shared {
		h.Backend = "etcd"
	}
	var body bytes.Buffer
	err := s.db.View(func(tx kv.Tx) error {
		if err := checkRestored(tx, s.path); err != nil {
			return err
		}
		h.Indexed = indexFresh(tx)
		enc := json.NewEncoder(&body)
		for _, name := range backedUp() {
			b := tx.Bucket(name)
			if b == nil {
				continue // a bucket a later version added, not made yet: empty
			}
			if err := enc.Encode(backupLine{Bucket: string(name), Seq: b.Sequence()}); err != nil {
				return err
			}
			n := 0
			err := b.ForEach(func(k, v []byte) error {
				n++
				return enc.Encode(backupLine{B: string(name), K: k, V: v})
			})
			if err != nil {
				return fmt.Errorf("store: back up %s: %w", name, err)
			}
			h.Counts[string(name)] = n
			h.Records += n
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil || meta.Get(keySchema) == nil {
			return fmt.Errorf("%w: %s has no journal to back up", ErrNoJournal, s.path)
		}
		h.Schema = int(beUint(meta.Get(keySchema)))
		return nil
	})
	if err != nil {
		return h, err
	}
	var all bytes.Buffer
	if err := json.NewEncoder(&all).Encode(h); err != nil {
		return h, err
	}
	all.Write(body.Bytes())
	sum := sha256.Sum256(all.Bytes())
	if err := json.NewEncoder(&all).Encode(backupLine{SHA256: hex.EncodeToString(sum[:])}); err != nil {
		return h, err
	}
	_, err = w.Write(all.Bytes())
	return h, err
}

func beUint(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

// ReadBackup reads and verifies a backup: the checksum over all of it, its format and
// version, a schema this version reads (a newer one is ErrNewerSchema), and the counts of
// its header. Nothing is written anywhere.
func ReadBackup(r io.Reader) (*Backup, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("store: read the backup: %w", err)
	}
	bad := func(why string) error { return fmt.Errorf("%w: %s", ErrBadBackup, why) }
	trimmed := bytes.TrimSuffix(raw, []byte("\n"))
	cut := bytes.LastIndexByte(trimmed, '\n')
	if cut < 0 {
		return nil, bad("it is not a mongobot journal backup (no header and trailer lines); take one with mongobot journal backup")
	}
	var tr backupLine
	if err := json.Unmarshal(trimmed[cut+1:], &tr); err != nil || tr.SHA256 == "" {
		return nil, bad("its last line is not the checksum: the file was cut short or is not a backup; use a whole copy of it")
	}
	sum := sha256.Sum256(raw[:cut+1])
	if hex.EncodeToString(sum[:]) != tr.SHA256 {
		return nil, bad("its checksum does not match: the file was changed or damaged since it was written; use another copy of it")
	}
	sc := bufio.NewScanner(bytes.NewReader(raw[:cut+1]))
	sc.Buffer(make([]byte, 0, 64<<10), len(raw)+1)
	b := &Backup{}
	first := true
	byName := map[string]int{}
	for sc.Scan() {
		if first {
			first = false
			if err := json.Unmarshal(sc.Bytes(), &b.Header); err != nil || b.Header.Format != BackupFormat {
				return nil, bad("its header does not name the format " + BackupFormat)
			}
			if b.Header.Version > BackupVersion {
				return nil, bad(fmt.Sprintf("it is in version %d of the format, this bot reads up to %d: restore it with the newer bot that wrote it", b.Header.Version, BackupVersion))
			}
			if b.Header.Schema > SchemaVersion {
				return nil, fmt.Errorf("%w: the backup holds a journal of schema %d, this bot reads up to %d; restore it with the newer bot that took it", ErrNewerSchema, b.Header.Schema, SchemaVersion)
			}
			if b.Header.Schema < 1 {
				return nil, bad("its header has no schema")
			}
			continue
		}
		var l backupLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, bad(fmt.Sprintf("a line does not decode: %v", err))
		}
		switch {
		case l.Bucket != "":
			if err := backedUpName(l.Bucket); err != nil {
				return nil, bad(err.Error())
			}
			if _, dup := byName[l.Bucket]; dup {
				return nil, bad("bucket " + l.Bucket + " appears twice")
			}
			byName[l.Bucket] = len(b.buckets)
			b.buckets = append(b.buckets, backupBucket{name: l.Bucket, seq: l.Seq})
		case l.B != "" && len(l.K) > 0:
			i, ok := byName[l.B]
			if !ok || i != len(b.buckets)-1 {
				return nil, bad("a key of bucket " + l.B + " is outside its bucket")
			}
			if l.V == nil {
				l.V = []byte{}
			}
			b.buckets[i].pairs = append(b.buckets[i].pairs, [2][]byte{l.K, l.V})
		default:
			return nil, bad("a line is neither a bucket nor a key")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, bad(err.Error())
	}
	n := 0
	for _, bk := range b.buckets {
		if len(bk.pairs) != b.Header.Counts[bk.name] {
			return nil, bad(fmt.Sprintf("bucket %s holds %d keys, its header says %d", bk.name, len(bk.pairs), b.Header.Counts[bk.name]))
		}
		n += len(bk.pairs)
	}
	if n != b.Header.Records {
		return nil, bad(fmt.Sprintf("it holds %d keys, its header says %d", n, b.Header.Records))
	}
	if i, ok := byName[string(bucketMeta)]; !ok || len(b.buckets[i].pairs) == 0 {
		return nil, bad("it has no meta bucket: it is not a journal")
	}
	return b, nil
}

// Secrets is the number of sealed passwords the backup holds.
func (b *Backup) Secrets() int { return b.Header.Counts[string(bucketSecrets)] }

// CheckKey says whether key (nil: the key file in dir, if any) opens every sealed password
// of the backup and, when it was taken on etcd, is the key its replicas sealed with. A
// restored journal is only useful with that key: the backup never holds it.
func (b *Backup) CheckKey(dir string, key []byte) error {
	keys, err := readKeyring(dir, key, nil)
	if err != nil {
		return err
	}
	for _, bk := range b.buckets {
		switch bk.name {
		case string(bucketMeta):
			for _, p := range bk.pairs {
				if bytes.Equal(p[0], keySealing) {
					if _, ok := keys.byID[string(p[1])]; !ok {
						return fmt.Errorf("%w: the backup's journal is sealed with key %s, and %s", ErrBadKey, p[1], haveKey(keys))
					}
				}
			}
		case string(bucketSecrets):
			for _, p := range bk.pairs {
				var s sealed
				if err := json.Unmarshal(p[1], &s); err != nil {
					return fmt.Errorf("%w: sealed password %s does not decode", ErrBadBackup, p[0])
				}
				if _, err := keys.open(string(p[0]), s); err != nil {
					return fmt.Errorf("%w: the backup's %d sealed password(s) do not open with %s", ErrBadKey, b.Secrets(), haveKey(keys))
				}
			}
		}
	}
	return nil
}

func haveKey(k *keyring) string {
	switch {
	case k.current == nil:
		return "no key is given (no BOT_ENCRYPTION_KEY, no key file)"
	case k.fromEnv:
		return "BOT_ENCRYPTION_KEY is key " + k.id
	}
	return "the key file is key " + k.id
}

// checkRestored refuses a journal whose restore did not finish.
func checkRestored(tx kv.Tx, where string) error {
	if meta := tx.Bucket(bucketMeta); meta != nil && meta.Get(keyRestoring) != nil {
		return fmt.Errorf("%w: %s holds only part of a backup; empty it and run mongobot journal restore again", ErrRestoreUnfinished, where)
	}
	return nil
}

// RestoreFile writes b as the journal of dir (created 0700), which must have none: the
// whole backup goes into a new file beside it in one transaction, and the file takes the
// journal's name only when complete, so a crash leaves no journal, never part of one.
func RestoreFile(dir string, b *Backup) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("store: create data folder: %w", err)
	}
	path := filepath.Join(dir, FileName)
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%w: %s already holds a journal (%s): restore into an empty data folder (set BOT_DATA_DIR to a new one), or move that file away first", ErrNotEmpty, dir, FileName)
	}
	tmp, err := os.CreateTemp(dir, "."+FileName+".restore-*")
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	tmpPath := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpPath)
	if err := os.Chmod(tmpPath, 0o600); err != nil {
		return err
	}
	db, err := bolt.Open(tmpPath, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	err = db.Update(func(btx *bolt.Tx) error {
		tx := boltTx{btx}
		for _, bk := range b.buckets {
			nb, err := btx.CreateBucketIfNotExists([]byte(bk.name))
			if err != nil {
				return err
			}
			if err := nb.SetSequence(bk.seq); err != nil {
				return err
			}
			for _, p := range bk.pairs {
				if err := nb.Put(p[0], p[1]); err != nil {
					return err
				}
			}
		}
		if err := createAll(tx); err != nil {
			return err
		}
		if err := tx.Bucket(bucketAudit).(kv.Sequencer).SetSequence(auditSeq(b)); err != nil {
			return err
		}
		if err := gapVersions(tx, b); err != nil {
			return err
		}
		return finishRestore(tx, b, time.Now())
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: restore into %s: %w", tmpPath, err)
	}
	// Link, not rename: it fails when a journal appeared meanwhile, instead of replacing it.
	if err := os.Link(tmpPath, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: a journal appeared in %s while the backup was restored; nothing was changed", ErrNotEmpty, dir)
		}
		return fmt.Errorf("store: restore: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// untagged says b holds records but is of a journal whose records carried no tags (older
// than them, or awaiting adoption).
func (b *Backup) untagged() bool {
	n, marked := 0, false
	for _, bk := range b.buckets {
		if bk.name == string(bucketMeta) {
			for _, p := range bk.pairs {
				marked = marked || bytes.Equal(p[0], keyTagged)
			}
		}
		if tagged([]byte(bk.name)) {
			n += len(bk.pairs)
		}
	}
	return n > 0 && !marked
}

// createAll makes the buckets a backup leaves out (the claims) or a version before the
// backup's did not have yet: a journal is whole with all of them, as readers expect.
func createAll(tx kv.Tx) error {
	for _, name := range allBuckets {
		if bytes.Equal(name, bucketVersions) {
			continue // a backup from before them: the first open makes them (recordVersions)
		}
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// gapVersions moves the version counter of a journal restored from b past every version the
// journal it was taken from can have issued since, as auditSeq does the trail's: a record
// of that journal written after the backup never shares a version with one of this.
func gapVersions(tx kv.Tx, b *Backup) error {
	vb := tx.Bucket(bucketVersions)
	if vb == nil {
		return nil // a backup from before versions: the first open makes them
	}
	for _, bk := range b.buckets {
		if bk.name == string(bucketVersions) {
			return vb.(kv.Sequencer).SetSequence(bk.seq + auditRestoreGap)
		}
	}
	return nil
}

// auditSeq is the audit trail's sequence in a journal restored from b: the backup's, past
// every cursor the journal it was taken from can have issued since (auditRestoreGap).
func auditSeq(b *Backup) uint64 {
	for _, bk := range b.buckets {
		if bk.name == string(bucketAudit) {
			return bk.seq + auditRestoreGap
		}
	}
	return auditRestoreGap
}

// finishRestore is the last step of a restore: the restore's mark goes, the journal is
// marked restored (for the first writable open to settle, see settleRestored), and the
// indexes are left for that open to rebuild from the records. Never trusted from the
// backup, whatever its header says: its checksum is no signature, and a crafted index
// that disagrees with the records (a temporary grant missing from the temporary index)
// would hide an obligation for good.
//
// A backup of a journal from before record tags restores as one awaiting Adopt, as that
// journal was.
func finishRestore(tx kv.Tx, b *Backup, now time.Time) error {
	meta := tx.Bucket(bucketMeta)
	if b.untagged() {
		if err := meta.Put(keyUnadopted, []byte(now.UTC().Format(time.RFC3339))); err != nil {
			return err
		}
		if err := meta.Put(keyTagged, []byte{1}); err != nil {
			return err
		}
	}
	if err := meta.Delete(keyRestoring); err != nil {
		return err
	}
	if err := meta.Put(keyRestored, []byte{1}); err != nil {
		return err
	}
	return meta.Delete(keyIndexed)
}

// restoredNote is the step a restore's settling writes on a request it fails.
const restoredNote = "it was approved before the journal was restored from a backup and was not run; ask again"

// settleRestored, in the first writable open after a restore, fails every request the
// backup held between approval and its journal entry (approved, or executing with no
// entry): the journal the backup came from may have run it after the backup was taken, so
// running it now on that old approval could do it twice. Entries that were executing are
// left to reconciliation, which settles them from the server's actual state. It returns
// the requests it failed, and deletes the mark, in tx.
func settleRestored(s *Store, tx kv.Tx, now time.Time) ([]uint64, error) {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyRestored) == nil {
		return nil, nil
	}
	var waiting []Request
	err := tx.Bucket(bucketRequests).ForEach(func(k, v []byte) error {
		var r Request
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("store: decode request %x: %w", k, err)
		}
		// A record that fails its tag is not the bot's to settle: writing it as failed
		// would give it a valid tag. (On a journal awaiting adoption, nothing is tagged,
		// and Adopt sees it as failed.)
		if s.checkTag(tx, bucketRequests, k, v) != nil && !unadopted(tx) {
			return nil
		}
		if runningState(r.State) && r.EntryID == 0 {
			waiting = append(waiting, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	withEntry := map[uint64]bool{}
	if len(waiting) > 0 {
		err = tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			var e struct {
				RequestID uint64 `json:"request_id"`
			}
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("store: decode entry %x: %w", k, err)
			}
			withEntry[e.RequestID] = true
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var failed []uint64
	for _, r := range waiting {
		if withEntry[r.ID] {
			continue // its entry is reconciliation's
		}
		r.step(Step{State: approvals.Failed, At: now, By: "restore", Note: restoredNote})
		if err := put(s, tx, bucketRequests, r.ID, &r); err != nil {
			return nil, err
		}
		failed = append(failed, r.ID)
	}
	return failed, meta.Delete(keyRestored)
}

// RestoreOptions tune RestoreShared.
type RestoreOptions struct {
	// MaxOps is the most operations one transaction may carry (store.etcd.max_txn_ops);
	// default 128, etcd's.
	MaxOps int
	// MaxBytes bounds the size of one transaction's values; default 1 MiB, under etcd's
	// default request limit of 1.5 MiB.
	MaxBytes int
	// afterChunk, in tests, is called after each data transaction (n from 1): an error
	// stops the restore there, as a crash would.
	afterChunk func(n int) error
}

// RestoreShared writes b into db, a shared journal (etcd) that must hold none. etcd bounds a
// transaction's operations and size, so the restore takes several: the first checks the
// prefix is empty, creates the buckets with their sequences and marks the journal as being
// restored; the next ones write the keys; the last removes the mark. Until then, every open
// refuses the journal (ErrRestoreUnfinished), so no replica can start on part of a backup.
func RestoreShared(db kv.DB, describe string, b *Backup, opts RestoreOptions) error {
	if opts.MaxOps <= 0 {
		opts.MaxOps = 128
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 20
	}
	idb := make([]byte, 16)
	if _, err := rand.Read(idb); err != nil {
		return err
	}
	id := []byte(hex.EncodeToString(idb))
	err := db.Update(func(tx kv.Tx) error {
		for _, name := range allBuckets {
			if tx.Bucket(name) != nil {
				if err := checkRestored(tx, describe); err != nil {
					return fmt.Errorf("%w: %w", ErrNotEmpty, err)
				}
				return fmt.Errorf("%w: %s already holds a journal: restore into an empty prefix (set store.etcd.prefix to a new one), or delete that one first", ErrNotEmpty, describe)
			}
		}
		for _, bk := range b.buckets {
			nb, err := tx.CreateBucket([]byte(bk.name))
			if err != nil {
				return err
			}
			if bk.seq > 0 {
				s, ok := nb.(kv.Sequencer)
				if !ok {
					return errors.New("store: this backend cannot set a bucket's sequence")
				}
				if err := s.SetSequence(bk.seq); err != nil {
					return err
				}
			}
		}
		if err := createAll(tx); err != nil {
			return err
		}
		if err := tx.Bucket(bucketAudit).(kv.Sequencer).SetSequence(auditSeq(b)); err != nil {
			return err
		}
		if err := gapVersions(tx, b); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyRestoring, id)
	})
	if err != nil {
		return err
	}
	// One transaction's budget: the counter and the mark it checks are not data.
	perTxn := opts.MaxOps - 2
	type pair struct {
		bucket []byte
		kv     [2][]byte
	}
	var chunk []pair
	size, n := 0, 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		err := db.Update(func(tx kv.Tx) error {
			if !restoring(tx, id) {
				return lostMark(describe)
			}
			for _, p := range chunk {
				if err := tx.Bucket(p.bucket).Put(p.kv[0], p.kv[1]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: restore into %s stopped after %d transaction(s): %w", describe, n, err)
		}
		n++
		chunk, size = chunk[:0], 0
		if opts.afterChunk != nil {
			return opts.afterChunk(n)
		}
		return nil
	}
	for _, bk := range b.buckets {
		for _, p := range bk.pairs {
			if bk.name == string(bucketMeta) && bytes.Equal(p[0], keyRestoring) {
				continue
			}
			sz := len(p[0]) + len(p[1]) + len(bk.name) + 16
			if len(chunk) >= perTxn || (len(chunk) > 0 && size+sz > opts.MaxBytes) {
				if err := flush(); err != nil {
					return err
				}
			}
			chunk = append(chunk, pair{[]byte(bk.name), p})
			size += sz
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return db.Update(func(tx kv.Tx) error {
		if !restoring(tx, id) {
			return lostMark(describe)
		}
		return finishRestore(tx, b, time.Now())
	})
}

// lostMark is the error of a restore whose mark vanished after it wrote: unlike ErrNotEmpty,
// something was changed.
func lostMark(describe string) error {
	return fmt.Errorf("%w: the mark of this restore vanished from %s after it began writing (another restore, a replica or a deletion changed it meanwhile), so it holds part of a backup or of something else: stop whatever writes there, empty the prefix and run restore again", ErrRestoreLost, describe)
}

// Snapshot calls fn with a consistent copy of the journal file, from one read transaction,
// while the store stays open for writing: size is the copy's length, and wt writes it. Only
// on bbolt; a shared journal has no file.
func (s *Store) Snapshot(fn func(size int64, wt io.WriterTo) error) error {
	d, ok := s.db.(boltDB)
	if !ok {
		return errors.New("store: only a journal file (bbolt) can be snapshotted")
	}
	return d.db.View(func(tx *bolt.Tx) error { return fn(tx.Size(), tx) })
}

// restoring says the journal in tx bears the mark of restore id (and still has its meta).
func restoring(tx kv.Tx, id []byte) bool {
	meta := tx.Bucket(bucketMeta)
	return meta != nil && bytes.Equal(meta.Get(keyRestoring), id)
}
