package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"mongobot/kv"
)

// Tags: every record the bot acts on is authenticated. The journal is a queue of work for
// whoever can read it, so whoever can write it (the etcd prefix, the file) could otherwise
// hand the bot work: an approved request nobody approved, a vote by someone who never
// clicked, a schedule nobody made. As Vault's storage barrier does, the store keeps its
// records authenticated with a key an attacker of the storage does not have: a writer can
// destroy them, never forge them.
//
// Each record of the tagged buckets (requests, entries, schedules, pairs) carries its tag as
// the last field of its JSON object, "_tag" (which the record types do not have, so decoding
// ignores it): HMAC-SHA256, with a key derived from the encryption key, over the bucket, the
// key, the record's version and its bytes without the tag. So a record cannot be written,
// altered, or copied under another id or into another bucket without the store noticing,
// and checking it costs no read beyond the record's own. The version is drawn from the
// versions bucket's counter at each write (versions.go): a record claiming a version the
// counter has not reached is refused too (a copy of a journal that was cut back).
//
// A record that fails its tag is never acted on: reading it for work returns a
// *TamperError, lists for work leave it out, and Options.OnTamper hears of it (the bot says
// so in the approvals channel, its log and a metric). `mongobot journal verify` lists them
// all (Verify).
//
// Journals written before tags have none: they are adopted by an explicit step (Adopt, run
// by `mongobot journal adopt` after a person has looked at them), never trusted by default.
//
// A record put back as an older copy of itself, tag and all, fails too: the versions bucket
// holds the latest version of every record (versions.go). Not covered: a record put back
// together with its version record, and the whole journal set back to an earlier copy.

var (
	// keyTagged (meta) says the journal's records carry tags: set when a journal is made,
	// or adopted.
	keyTagged = []byte("tagged")
	// keyUnadopted (meta) is set while the journal holds records written before tags, which
	// Adopt tags. Its value is the time the mark was set.
	keyUnadopted = []byte("tags-unadopted")

	taggedBuckets = [][]byte{bucketRequests, bucketEntries, bucketSchedules, bucketPairs}
)

// ErrTampered is returned (wrapped in a *TamperError) for a record whose tag is missing or
// wrong: it was written or changed by something other than the bot.
var ErrTampered = errors.New("store: record fails its authentication")

// ErrUnadopted is wrapped in the TamperError of a record of a journal written before tags,
// not yet adopted (Store.Unadopted).
var ErrUnadopted = errors.New("store: the journal was written by a version before records were authenticated")

// TamperError names a record that failed its authentication and why.
type TamperError struct {
	Kind string // "request", "entry", "schedule", "pair"
	Key  string // the id, or the pair's name
	Why  string
	err  error
}

func (e *TamperError) Error() string {
	return fmt.Sprintf("%s %s fails its authentication (%s): it was written or changed outside the bot, so the bot will not act on it; see mongobot journal verify",
		e.Kind, e.Key, e.Why)
}

// Unwrap makes errors.Is(err, ErrTampered) true, and ErrUnadopted for an unadopted journal.
func (e *TamperError) Unwrap() []error {
	if e.err != nil {
		return []error{ErrTampered, e.err}
	}
	return []error{ErrTampered}
}

// tagLen is a tag's length: format (1), version (8), key id (6), HMAC-SHA256 (32).
const tagLen = 1 + 8 + 6 + sha256.Size

// tagOpen and tagClose surround the tag, in hex, at the end of a tagged record's JSON.
const (
	tagOpen  = `,"_tag":"`
	tagClose = `"}`
)

// tagSuffixLen is the length of what ends a tagged record: the tag's field and the closing
// brace, which replace the record's own (a tag adds tagSuffixLen-1 bytes).
const tagSuffixLen = len(tagOpen) + 2*tagLen + len(tagClose)

// macKey derives the key tags are made with from an encryption key: never the key itself,
// which seals secrets.
func macKey(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("mongobot journal record tags v1"))
	return m.Sum(nil)
}

// tagFormat is the format of the tags this version makes: 2, a record whose latest version
// the versions bucket holds (versions.go). Format 1, which had none, was never released.
const tagFormat = 2

func tagMAC(mk []byte, format byte, b, key []byte, ver uint64, raw []byte) []byte {
	m := hmac.New(sha256.New, mk)
	m.Write([]byte{'m', 'o', 'n', 'g', 'o', 'b', 'o', 't', '-', 't', 'a', 'g', '-', '0' + format, 0})
	m.Write(b)
	m.Write([]byte{0})
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(key)))
	m.Write(n[:])
	m.Write(key)
	binary.BigEndian.PutUint64(n[:], ver)
	m.Write(n[:])
	m.Write(raw)
	return m.Sum(nil)
}

// tagged says records of bucket b carry tags.
func tagged(b []byte) bool {
	for _, t := range taggedBuckets {
		if bytes.Equal(t, b) {
			return true
		}
	}
	return false
}

// withTag is raw, a JSON object, with tag t as its last field.
func withTag(raw, t []byte) []byte {
	out := make([]byte, 0, len(raw)+tagSuffixLen-1)
	out = append(out, raw[:len(raw)-1]...)
	out = append(out, tagOpen...)
	out = hex.AppendEncode(out, t)
	return append(out, tagClose...)
}

// splitTag is value's record without its tag, and the tag; ok is false when value carries
// none (or a malformed one).
func splitTag(value []byte) (raw, t []byte, ok bool) {
	n := len(value) - tagSuffixLen
	if n < 1 || !bytes.HasPrefix(value[n:], []byte(tagOpen)) || !bytes.HasSuffix(value, []byte(tagClose)) {
		return value, nil, false
	}
	t, err := hex.DecodeString(string(value[n+len(tagOpen) : len(value)-len(tagClose)]))
	if err != nil || len(t) != tagLen {
		return value, nil, false
	}
	return append(value[:n:n], '}'), t, true
}

// tag is raw, record key of bucket b, with its tag, made with the key the journal seals with
// (Store.sealer: during a shared rotation, the new one): what is stored.
//
// A journal awaiting adoption is written untagged: the bot acts on none of it (serve refuses
// it), and what it writes meanwhile (a restore's settling) is adopted with the rest, never
// vouched for on its own.
func (s *Store) tag(tx kv.Tx, b, key, raw []byte) ([]byte, error) {
	if s.untagged || unadopted(tx) {
		return raw, nil
	}
	vb := tx.Bucket(bucketVersions)
	if vb == nil {
		return nil, errNoVersions
	}
	ver, err := vb.NextSequence()
	if err != nil {
		return nil, err
	}
	return s.tagAt(tx, b, key, raw, ver)
}

// tagAt is raw with its tag for version ver, its version record written in tx.
func (s *Store) tagAt(tx kv.Tx, b, key, raw []byte, ver uint64) ([]byte, error) {
	id, _, err := s.sealer(tx)
	if err != nil {
		return nil, err
	}
	mk, ok := s.keys.macs[id]
	if !ok {
		return nil, fmt.Errorf("%w: no key to authenticate records with", ErrBadKey)
	}
	t, err := makeTag(b, key, raw, ver, id, mk)
	if err != nil {
		return nil, err
	}
	// Versions only grow: a record whose latest version is already this one or later means
	// the counter was set back, and writing would hand out versions older copies carry.
	if cur := tx.Bucket(bucketVersions).Get(versionKey(b, key)); len(cur) == 8 && binary.BigEndian.Uint64(cur) >= ver {
		return nil, &TamperError{Kind: kindOf(b), Key: keyName(b, key), Why: fmt.Sprintf("the journal's version counter (%d) is behind the record's latest version (%d): it was set back outside the bot, so nothing more is written", ver, binary.BigEndian.Uint64(cur))}
	}
	if err := putVersion(tx, b, key, ver); err != nil {
		return nil, err
	}
	return withTag(raw, t), nil
}

func makeTag(b, key, raw []byte, ver uint64, keyID string, mk []byte) ([]byte, error) {
	kid, err := hex.DecodeString(keyID)
	if err != nil || len(kid) != 6 {
		return nil, fmt.Errorf("%w: key id %q", ErrBadKey, keyID)
	}
	t := make([]byte, 0, tagLen)
	t = append(t, tagFormat)
	t = binary.BigEndian.AppendUint64(t, ver)
	t = append(t, kid...)
	return append(t, tagMAC(mk, tagFormat, b, key, ver, raw)...), nil
}

// retag is value, record key of bucket b, with its tag made again with key keyID, for a key
// rotation: the same record, the same version. ok is false when it needs nothing (made with
// keyID already), and for a record that fails: a rotation never vouches for what the old
// key did not.
func (s *Store) retag(tx kv.Tx, b, key, value []byte, keyID string) (out []byte, ok bool) {
	raw, t, found := splitTag(value)
	if !found || hex.EncodeToString(t[9:15]) == keyID || s.verifyTag(tx, b, key, value) != nil {
		return nil, false
	}
	ver := binary.BigEndian.Uint64(t[1:9])
	nt, err := makeTag(b, key, raw, ver, keyID, s.keys.macs[keyID])
	if err != nil {
		return nil, false
	}
	return withTag(raw, nt), true
}

// checkTag says whether value, stored as record key of bucket b, carries a tag this store
// made. A read-only store (the journal commands) lets every record through: it acts on
// nothing, and shows a person what the journal holds, which Verify judges. A failure is
// reported to Options.OnTamper.
func (s *Store) checkTag(tx kv.Tx, b, key, value []byte) error {
	if s.readOnly || s.untagged || len(s.keys.macs) == 0 {
		return nil
	}
	err := s.verifyTag(tx, b, key, value)
	var te *TamperError
	if errors.As(err, &te) {
		s.onTamper.report(*te)
	}
	return err
}

// verifyTag is checkTag without the report.
func (s *Store) verifyTag(tx kv.Tx, b, key, value []byte) error {
	return s.verifyWith(tx, b, key, value, func(ver uint64) string { return s.checkVersion(tx, b, key, ver) })
}

// verifyWith is verifyTag with the version check given: version says why version ver of
// the record is not the latest ("" when it is).
func (s *Store) verifyWith(tx kv.Tx, b, key, value []byte, version func(ver uint64) string) error {
	fail := func(why string, err error) error {
		return &TamperError{Kind: kindOf(b), Key: keyName(b, key), Why: why, err: err}
	}
	_, t, ok := splitTag(value)
	if !ok && unadopted(tx) {
		return fail("the journal was written by an older version and has not been adopted: run mongobot journal adopt", ErrUnadopted)
	}
	if why := s.verifyMAC(b, key, value); why != "" {
		return fail(why, nil)
	}
	ver := binary.BigEndian.Uint64(t[1:9])
	if vb := tx.Bucket(bucketVersions); vb != nil && ver > vb.Sequence() {
		return fail(fmt.Sprintf("it claims version %d, past the journal's %d: the journal was cut back", ver, vb.Sequence()), nil)
	}
	if why := version(ver); why != "" {
		return fail(why, nil)
	}
	return nil
}

// verifyMAC says why value, stored as record key of bucket b, carries no tag this store
// made, or "" when it does: the tag alone, not whether its version is the latest.
func (s *Store) verifyMAC(b, key, value []byte) string {
	raw, t, ok := splitTag(value)
	if !ok {
		return "it has no tag"
	}
	if t[0] != tagFormat {
		return "its tag is of an unknown format"
	}
	ver := binary.BigEndian.Uint64(t[1:9])
	kid := hex.EncodeToString(t[9:15])
	mk, ok := s.keys.macs[kid]
	if !ok {
		return "it was authenticated with key " + kid + ", which this bot was not given (it has " + s.keys.ids() + ")"
	}
	if !hmac.Equal(t[15:], tagMAC(mk, t[0], b, key, ver, raw)) {
		return "its tag does not match its content"
	}
	return ""
}

// unadopted says the journal in tx holds records from before tags: marked so, or never
// opened for writing by a version with tags.
func unadopted(tx kv.Tx) bool {
	meta := tx.Bucket(bucketMeta)
	return meta.Get(keyUnadopted) != nil || meta.Get(keyTagged) == nil
}

// keyName is how a record's key is printed: the id, or a pair's name.
func keyName(b, key []byte) string {
	if bytes.Equal(b, bucketPairs) || len(key) != 8 {
		return strconv.Quote(string(key))
	}
	return strconv.FormatUint(binary.BigEndian.Uint64(key), 10)
}

// markTagged, in the migration of every writable open, says the journal's records carry
// tags from now on; a journal that had records before (from an older version) is marked
// unadopted as well.
func markTagged(tx kv.Tx, now time.Time) error {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyTagged) != nil {
		return nil
	}
	n := 0
	for _, b := range taggedBuckets {
		if bk := tx.Bucket(b); bk != nil {
			n += bk.KeyN()
		}
	}
	if n > 0 {
		if err := meta.Put(keyUnadopted, []byte(now.UTC().Format(time.RFC3339))); err != nil {
			return err
		}
	}
	return meta.Put(keyTagged, []byte{1})
}

// Unadopted says the journal holds records written before they were authenticated, which the
// bot will not act on until Adopt: `serve` refuses to start on it, with the command to run.
func (s *Store) Unadopted() (bool, error) {
	var un bool
	err := s.db.View(func(tx kv.Tx) error {
		un = unadopted(tx)
		return nil
	})
	return un, err
}

// Adopted says what Adopt did.
type Adopted struct {
	Tagged int // records tagged by this adoption
}

// Adopt authenticates the records of a journal written before tags, after a person has
// looked at them (`mongobot journal list` and `verify` read them while it is unadopted): it
// tags every record that has no tag, clears the mark and records the adoption, by whom, in
// the audit trail. It refuses, naming a record, when any record carries a tag it did not
// make (a journal from before tags has none: the mark was set outside the bot), and when
// the journal is not awaiting adoption and holds an untagged record. by is who adopted (the
// operator's name, for the trail).
//
// It works in batches (Store.adoptSize records a transaction), so a shared journal of any size
// fits etcd's bound on a transaction: the first appends an event that begins the adoption,
// whose cursor is the version of every record it tags; the last clears the mark. Until
// then the journal stays unadopted (serve refuses it), and an interrupted adoption is
// finished by running it again.
func (s *Store) Adopt(by string) (Adopted, error) {
	var out Adopted
	if s.readOnly {
		return out, ErrReadOnly
	}
	var ver uint64
	err := s.update(func(tx kv.Tx) error {
		if !unadopted(tx) {
			// Only records from before tags are adopted: an untagged record in a journal
			// that has them was written outside the bot.
			if v, err := s.verifyAll(tx); err != nil || len(v.Suspects) > 0 {
				if err == nil {
					err = fmt.Errorf("%w: %d record(s) fail, first %s %s (%s); nothing was adopted", ErrTampered, len(v.Suspects), v.Suspects[0].Kind, v.Suspects[0].Key, v.Suspects[0].Why)
				}
				return err
			}
			return ErrNothingToAdopt
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyAdopting); len(v) == 8 {
			ver = binary.BigEndian.Uint64(v) // an adoption interrupted: finish it
			return nil
		}
		// The adoption draws one version for every record it tags, past every version a
		// record could carry already, so they are told by it if the adoption is resumed.
		vb := tx.Bucket(bucketVersions)
		if vb == nil {
			return errNoVersions
		}
		if vb.KeyN() > 0 {
			return fmt.Errorf("%w: the journal awaits adoption but already holds version records, which only the bot writes for authenticated records: the mark asking for adoption was set outside the bot; nothing was adopted (run mongobot journal verify)", ErrTampered)
		}
		var err error
		if ver, err = vb.NextSequence(); err != nil {
			return err
		}
		if err := appendEvents(tx, []Event{{Kind: EventAdopted, At: s.now(), By: by, Note: "adoption begun"}}); err != nil {
			return err
		}
		return meta.Put(keyAdopting, u64(ver))
	})
	if err != nil {
		return out, err
	}
	for _, b := range taggedBuckets {
		var from []byte
		for first := true; first || from != nil; first = false {
			var n int
			err := s.update(func(tx kv.Tx) (err error) {
				n, from, err = s.adoptBatch(tx, b, from, ver)
				return err
			})
			if err != nil {
				return out, err
			}
			out.Tagged += n
		}
	}
	err = s.update(func(tx kv.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyAdopting); len(v) != 8 || binary.BigEndian.Uint64(v) != ver {
			return fmt.Errorf("%w: another adoption ran at the same time; run mongobot journal verify", ErrConflict)
		}
		for _, k := range [][]byte{keyAdopting, keyUnadopted} {
			if err := meta.Delete(k); err != nil {
				return err
			}
		}
		if err := meta.Put(keyTagged, []byte{1}); err != nil {
			return err
		}
		return appendEvents(tx, []Event{{Kind: EventAdopted, At: s.now(), By: by,
			Note: fmt.Sprintf("%d records authenticated", out.Tagged)}})
	})
	return out, err
}

// keyAdopting (meta) holds, while an adoption runs, the version its records are tagged with.
var keyAdopting = []byte("tags-adopting")

// adoptBatch tags up to adoptBatch untagged records of bucket b, from key from on, with
// version ver, and says where the next batch begins (nil: b is done). A record that carries
// a tag must be one this adoption made.
func (s *Store) adoptBatch(tx kv.Tx, b, from []byte, ver uint64) (n int, next []byte, err error) {
	bk := tx.Bucket(b)
	type rec struct{ k, v []byte }
	var todo []rec
	c := bk.Cursor()
	k, v := c.First()
	if from != nil {
		k, v = c.Seek(from)
	}
	check := func(k, v []byte) error {
		if _, t, ok := splitTag(v); ok {
			if s.verifyMAC(b, k, v) == "" && binary.BigEndian.Uint64(t[1:9]) == ver {
				return nil // tagged by this adoption, in an earlier batch
			}
			// A journal written before tags has none: one that holds a tag, valid or
			// not, was marked for adoption by something other than an upgrade.
			return fmt.Errorf("%w: %s %s carries a tag, so this journal was written by a version that authenticates its records and the mark asking for adoption was set outside the bot; nothing was adopted (run mongobot journal verify)",
				ErrTampered, kindOf(b), keyName(b, k))
		}
		todo = append(todo, rec{append([]byte(nil), k...), append([]byte(nil), v...)})
		return nil
	}
	for ; k != nil && len(todo) < s.adoptSize(); k, v = c.Next() {
		if err := check(k, v); err != nil {
			return 0, nil, err
		}
	}
	if k != nil {
		next = append([]byte(nil), k...)
	}
	for _, r := range todo {
		value, err := s.tagAt(tx, b, r.k, r.v, ver)
		if err != nil {
			return 0, nil, err
		}
		if err := bk.Put(r.k, value); err != nil {
			return 0, nil, err
		}
	}
	return len(todo), next, nil
}

// adoptSize is how many records one transaction of an adoption tags: each with its version
// record, within the backend's bound on a transaction (etcd's max_txn_ops), leaving room
// for the counter, the bucket's sequence and the mark.
func (s *Store) adoptSize() int {
	db := s.db
	if u, ok := db.(unowned); ok {
		db = u.DB
	}
	if b, ok := db.(kv.Bounded); ok && b.MaxOps() > 0 {
		return max(1, (b.MaxOps()-8)/2)
	}
	return 1000
}

// Suspect is a record that fails its authentication, as Verify lists it.
type Suspect struct {
	Kind string `json:"kind"`
	Key  string `json:"key"`
	Why  string `json:"why"`
}

// Verification is what Verify found.
type Verification struct {
	Checked   int       // records read
	Unadopted bool      // the journal awaits Adopt
	Suspects  []Suspect // those that fail, in bucket and key order
}

// Verify checks the tag of every record in one read transaction and lists those that fail.
// It needs the key: without one, it says so.
func (s *Store) Verify() (Verification, error) {
	var out Verification
	if len(s.keys.macs) == 0 {
		return out, fmt.Errorf("%w: verifying the journal needs its key (BOT_ENCRYPTION_KEY or the key file %s)", ErrBadKey, KeyFileName)
	}
	err := s.db.View(func(tx kv.Tx) (err error) {
		out, err = s.verifyAll(tx)
		return err
	})
	return out, err
}

func (s *Store) verifyAll(tx kv.Tx) (Verification, error) {
	out := Verification{Unadopted: unadopted(tx)}
	vb := tx.Bucket(bucketVersions)
	for _, b := range taggedBuckets {
		bk := tx.Bucket(b)
		if bk == nil {
			continue
		}
		// The versions bucket holds each bucket's version records in the bucket's own key
		// order: both are walked side by side, one read of each, and a version record with
		// no record is one deleted outside the bot.
		var vc kv.Cursor
		var vk, vv []byte
		prefix := versionKey(b, nil)
		if vb != nil {
			vc = vb.Cursor()
			vk, vv = vc.Seek(prefix)
		}
		next := func() { vk, vv = vc.Next() }
		orphan := func(k []byte) {
			out.Suspects = append(out.Suspects, Suspect{Kind: kindOf(b), Key: keyName(b, k), Why: goneWhy})
		}
		err := bk.ForEach(func(k, v []byte) error {
			out.Checked++
			want := versionKey(b, k)
			for vk != nil && bytes.HasPrefix(vk, prefix) && bytes.Compare(vk, want) < 0 {
				orphan(vk[len(prefix):])
				next()
			}
			var head []byte
			if vk != nil && bytes.Equal(vk, want) {
				head = append([]byte(nil), vv...)
				next()
			}
			version := func(ver uint64) string { return versionWhy(vb != nil, b, k, ver, head) }
			var te *TamperError
			if err := s.verifyWith(tx, b, k, v, version); errors.As(err, &te) {
				out.Suspects = append(out.Suspects, Suspect{Kind: te.Kind, Key: te.Key, Why: te.Why})
			}
			return nil
		})
		if err != nil {
			return out, err
		}
		for vk != nil && bytes.HasPrefix(vk, prefix) {
			orphan(vk[len(prefix):])
			next()
		}
	}
	return out, nil
}

// ErrNothingToAdopt is Adopt's answer for a journal whose records are all authenticated.
var ErrNothingToAdopt = errors.New("store: nothing to adopt: every record of the journal is authenticated")

// WatchTamper makes fn hear of the records found failing their authentication from now on,
// as Options.OnTamper does; the bot sets it once, before it serves. Stores made from this
// one later (Fenced) share it.
func (s *Store) WatchTamper(fn func(TamperError)) {
	s.onTamper.mu.Lock()
	s.onTamper.fn = fn
	s.onTamper.mu.Unlock()
}

// tamperHook is who hears of records failing their authentication.
type tamperHook struct {
	mu sync.Mutex
	fn func(TamperError)
}

func (h *tamperHook) report(e TamperError) {
	if h == nil {
		return
	}
	h.mu.Lock()
	fn := h.fn
	h.mu.Unlock()
	if fn != nil {
		fn(e)
	}
}
