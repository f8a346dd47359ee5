package store

import (
	"mongobot/kv"

	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// KeyFileName is the key file created in the data folder when no key is given.
const KeyFileName = "secret.key"

// Errors of the one-time secrets.
var (
	// ErrExpired is returned by TakeSecret for a secret past its TTL; it is deleted.
	ErrExpired = errors.New("store: secret expired")
	// ErrNotOwner is returned by TakeSecret when someone other than the owner asks; the
	// secret is kept for its owner.
	ErrNotOwner = errors.New("store: secret belongs to someone else")
	// ErrBadKey is returned when a key is not 32 bytes, or a secret was sealed with a key the
	// store does not have.
	ErrBadKey = errors.New("store: encryption key")
	// ErrKeyFileMode is returned by Open when the key file (or the new key file of an
	// interrupted Rekey) is open to its group or others (mode & 0o077 != 0); chmod 600 fixes it.
	ErrKeyFileMode = errors.New("store: key file not owner-only")
)

// sealed is a secret as stored: only ciphertext. The id, owner and expiry are bound to it as
// additional data, so a record cannot be moved or its expiry extended by editing the file.
type sealed struct {
	Owner     string    `json:"owner"`
	ExpiresAt time.Time `json:"expires_at"`
	// Use is "reveal" for a password offered to its owner (ExtendSecret), "keep" for the
	// bot's own copies (recovery, delivery, a pair's kept password), which no person
	// reveals; empty for one sealed before uses were recorded. Bound to the ciphertext with the rest: nobody without the key can make a
	// copy the bot keeps for itself into one a person may reveal.
	Use   string `json:"use,omitempty"`
	KeyID string `json:"key_id"`
	Nonce []byte `json:"nonce"`
	Box   []byte `json:"box"`
}

// ParseKey reads a 32-byte key written as 64 hex digits or base64 (standard or URL, padded or
// not), as BOT_ENCRYPTION_KEY holds it.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: want 32 bytes as 64 hex digits or base64", ErrBadKey)
}

// NewKey returns a fresh random 32-byte key, hex encoded.
func NewKey() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

type keyring struct {
	dir     string
	pending []byte // key of a Rekey that a crash interrupted; Open finishes it
	fromEnv bool
	current cipher.AEAD
	id      string
	byID    map[string]cipher.AEAD
	// macs are the keys records are authenticated with (tags.go), by the id of the
	// encryption key each is derived from.
	macs map[string][]byte
}

func keyID(key []byte) string {
	sum := sha256.Sum256(append([]byte("mongobot-key-id:"), key...))
	return hex.EncodeToString(sum[:6])
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("%w: want 32 bytes, got %d", ErrBadKey, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (k *keyring) add(key []byte) (string, cipher.AEAD, error) {
	a, err := newAEAD(key)
	if err != nil {
		return "", nil, err
	}
	id := keyID(key)
	k.byID[id] = a
	if k.macs == nil {
		k.macs = map[string][]byte{}
	}
	k.macs[id] = macKey(key)
	return id, a, nil
}

// loadKeyring uses key when given; otherwise the key file in dir, created 0600 on first use.
// A pending key file left by an interrupted Rekey is loaded too, so its secrets stay readable.
func loadKeyring(dir string, key []byte, old [][]byte) (*keyring, error) {
	k := &keyring{dir: dir, fromEnv: key != nil, byID: map[string]cipher.AEAD{}}
	for _, o := range old {
		if _, _, err := k.add(o); err != nil {
			return nil, err
		}
	}
	if key == nil {
		var err error
		if key, err = readOrCreateKeyFile(filepath.Join(dir, KeyFileName)); err != nil {
			return nil, err
		}
		pending, err := readKeyFile(filepath.Join(dir, KeyFileName+".new"))
		if errors.Is(err, ErrKeyFileMode) {
			return nil, err
		}
		if err == nil {
			if pk, err := ParseKey(string(pending)); err == nil {
				if _, _, err := k.add(pk); err != nil {
					return nil, err
				}
				k.pending = pk
			}
		}
	}
	id, a, err := k.add(key)
	if err != nil {
		return nil, err
	}
	k.id, k.current = id, a
	return k, nil
}

// readKeyring is loadKeyring for a read-only store: it never creates the key file. Without a
// key (none given, no key file) the keyring opens nothing and seals nothing.
func readKeyring(dir string, key []byte, old [][]byte) (*keyring, error) {
	if key != nil {
		return loadKeyring(dir, key, old)
	}
	k := &keyring{dir: dir, byID: map[string]cipher.AEAD{}}
	for _, o := range old {
		if _, _, err := k.add(o); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{KeyFileName, KeyFileName + ".new"} {
		path := filepath.Join(dir, name)
		raw, err := readKeyFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		key, err := ParseKey(string(raw))
		if err != nil {
			return nil, fmt.Errorf("store: key file %s: %w", path, err)
		}
		id, a, err := k.add(key)
		if err != nil {
			return nil, err
		}
		if name == KeyFileName {
			k.id, k.current = id, a
		}
	}
	return k, nil
}

// KeyFile is the path of the key file that holds the store's key, beside the journal, or ""
// when the key was given in Options.Key (from BOT_ENCRYPTION_KEY). A key file travels with
// every copy of the data folder (a backup, a volume snapshot), and so do the secrets it seals.
func (s *Store) KeyFile() string {
	if s.keys.fromEnv || s.keys.current == nil {
		return ""
	}
	return filepath.Join(s.keys.dir, KeyFileName)
}

func readOrCreateKeyFile(path string) ([]byte, error) {
	raw, err := readKeyFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := writeFileSync(path, []byte(NewKey()+"\n")); err != nil {
			return nil, fmt.Errorf("store: create key file: %w", err)
		}
		raw, err = readKeyFile(path)
	}
	if err != nil {
		return nil, err
	}
	key, err := ParseKey(string(raw))
	if err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	return key, nil
}

// readKeyFile reads a key file, refusing one that its group or others may read or write, as
// ssh refuses such a private key: the mode is checked on the file opened, not on its name.
// A missing file is os.ErrNotExist as is; a refusal is ErrKeyFileMode naming the file and the fix.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("store: read key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: read key file: %w", err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%w: %s has mode %04o, which lets its group or others at the key that seals new "+
			"passwords; fix: chmod 600 %s (and if someone else may have read it, replace the key with mongobot rekey)",
			ErrKeyFileMode, path, m, path)
	}
	raw, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("store: read key file: %w", err)
	}
	return raw, nil
}

// writeFileSync creates path 0600 with data, exclusively, and syncs it.
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func aad(id, owner string, exp time.Time, use string) []byte {
	out := []byte(id + "\x00" + owner + "\x00" + exp.UTC().Format(time.RFC3339Nano))
	if use != "" {
		out = append(out, "\x00use="+use...) // none for a bot's copy, as sealed before uses
	}
	return out
}

// Uses of a sealed password: offered to its owner (ExtendSecret), or kept by the bot for
// itself (PutSecret: recovery, delivery, a pair's rollback). One sealed before uses were
// recorded has none.
const (
	useReveal = "reveal"
	useKeep   = "keep"
)

// seal seals plain as secret id with the key keyID names, a (see Store.sealer), for use.
func seal(keyID string, a cipher.AEAD, id, owner string, exp time.Time, use string, plain []byte) (sealed, error) {
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return sealed{}, err
	}
	return sealed{Owner: owner, ExpiresAt: exp.UTC(), Use: use, KeyID: keyID, Nonce: nonce,
		Box: a.Seal(nil, nonce, plain, aad(id, owner, exp, use))}, nil
}

// sealer is the key new secrets are sealed with. On a shared journal it is the one the
// journal's meta names, read in tx: a replica seals with whatever key the journal has moved
// to (Rekey), whichever of its keys it was started with, and a seal racing a rekey's switch is
// ordered with it by the transaction. Otherwise it is the store's own key.
func (s *Store) sealer(tx kv.Tx) (string, cipher.AEAD, error) {
	if !s.shared {
		return s.keys.id, s.keys.current, nil
	}
	id := string(tx.Bucket(bucketMeta).Get(keySealing))
	if id == "" {
		return s.keys.id, s.keys.current, nil
	}
	a, ok := s.keys.byID[id]
	if !ok {
		return "", nil, fmt.Errorf("%w: the shared journal now seals with key %s, which this replica was not given (it has %s): "+
			"give it that key (BOT_NEW_ENCRYPTION_KEY during a rotation, BOT_ENCRYPTION_KEY after it) and restart it",
			ErrKeyMismatch, id, s.keys.ids())
	}
	return id, a, nil
}

// ids lists the fingerprints of the keys held, the current one first: what may be said of
// them in an error (a fingerprint is a hash; it opens nothing).
func (k *keyring) ids() string {
	var out []string
	if k.id != "" {
		out = append(out, k.id)
	}
	var others []string
	for id := range k.byID {
		if id != k.id {
			others = append(others, id)
		}
	}
	slices.Sort(others)
	out = append(out, others...)
	if len(out) == 0 {
		return "no key"
	}
	return strings.Join(out, " and ")
}

func (k *keyring) open(id string, s sealed) ([]byte, error) {
	a, ok := k.byID[s.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: secret %s was sealed with key %s, which this store was not given (it has %s)", ErrBadKey, id, s.KeyID, k.ids())
	}
	plain, err := a.Open(nil, s.Nonce, s.Box, aad(id, s.Owner, s.ExpiresAt, s.Use))
	if err != nil {
		return nil, fmt.Errorf("%w: secret %s does not authenticate", ErrBadKey, id)
	}
	return plain, nil
}

// PutSecret seals plain for owner with a time to live and returns its id, a random string that
// is safe to put in a button's value.
func (s *Store) PutSecret(owner string, plain []byte, ttl time.Duration) (string, error) {
	if s.readOnly {
		return "", ErrReadOnly
	}
	idb := make([]byte, 16)
	if _, err := rand.Read(idb); err != nil {
		return "", err
	}
	id := hex.EncodeToString(idb)
	exp := s.now().Add(ttl)
	return id, s.update(func(tx kv.Tx) error {
		keyID, a, err := s.sealer(tx)
		if err != nil {
			return err
		}
		rec, err := seal(keyID, a, id, owner, exp, useKeep, plain)
		if err != nil {
			return err
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketSecrets).Put([]byte(id), raw)
	})
}

// TakeSecret returns secret id to its owner and deletes it in the same transaction: it can be
// read once. It returns ErrNotFound (never stored, or already taken), ErrExpired (deleted now),
// or ErrNotOwner (kept).
func (s *Store) TakeSecret(id, owner string) ([]byte, error) {
	if s.readOnly {
		return nil, ErrReadOnly
	}
	var plain []byte
	now := s.now()
	var expiredNow bool
	err := s.update(func(tx kv.Tx) error {
		expiredNow = false // a transaction run again decides afresh
		b := tx.Bucket(bucketSecrets)
		raw := b.Get([]byte(id))
		if raw == nil {
			return fmt.Errorf("%w: secret", ErrNotFound)
		}
		var rec sealed
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("store: decode secret: %w", err)
		}
		if rec.Owner != owner {
			return ErrNotOwner
		}
		if !now.Before(rec.ExpiresAt) {
			expiredNow = true
			return b.Delete([]byte(id))
		}
		p, err := s.keys.open(id, rec)
		if err != nil {
			return err
		}
		plain = p
		return b.Delete([]byte(id))
	})
	if err == nil && expiredNow {
		return nil, ErrExpired
	}
	return plain, err
}

// SecretInfo is what may be said of a sealed secret without opening it.
type SecretInfo struct {
	ID string
	// Label names the user it is the password of ("connector/user@db").
	Label     string
	ExpiresAt time.Time
}

// OfferedTo lists the passwords offered to owner for a Reveal that are still sealed and not
// expired, soonest to expire first (for a home tab's Reveal buttons). Only offered ones:
// a copy kept for a delivery, or a recovery copy not yet offered, is nobody's to reveal.
// Nothing is opened.
func (s *Store) OfferedTo(owner string) ([]SecretInfo, error) {
	var out []SecretInfo
	now := s.now()
	err := s.db.View(func(tx kv.Tx) error {
		secrets := tx.Bucket(bucketSecrets)
		return tx.Bucket(bucketOffers).ForEach(func(label, _ []byte) error {
			list, err := readOffers(tx.Bucket(bucketOffers), string(label))
			if err != nil {
				return nil // not this reader's to judge
			}
			for _, o := range list {
				rec, err := getSealed(secrets, o.ID)
				if err == nil && rec.Owner == owner && now.Before(rec.ExpiresAt) && offered(rec, now) {
					out = append(out, SecretInfo{ID: o.ID, Label: string(label), ExpiresAt: rec.ExpiresAt})
				}
			}
			return nil
		})
	})
	slices.SortFunc(out, func(a, b SecretInfo) int { return a.ExpiresAt.Compare(b.ExpiresAt) })
	return out, err
}

// SecretCount is the number of sealed secrets held, whether or not they have expired: what
// Rekey would re-encrypt.
func (s *Store) SecretCount() (int, error) {
	var n int
	err := s.db.View(func(tx kv.Tx) error {
		n = tx.Bucket(bucketSecrets).KeyN()
		return nil
	})
	return n, err
}
