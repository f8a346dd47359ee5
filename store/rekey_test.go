package store

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"mongobot/ha"
	"mongobot/kv"
)

// A shared journal's key is rotated while three replicas serve it, on the real embedded etcd
// cluster: before, with the replicas' configs mixed during the rolling restart, in the middle
// of a rekey stopped after one batch (as a crash would), after it resumed, and after the old
// key is retired, every replica opens every secret and seals ones all the others read; a
// replica without the key the journal needs is refused in words naming the fingerprints.
func TestSharedRekeyOnline(t *testing.T) {
	if etcdClient == nil {
		t.Skip("a test of the shared journal: it runs in the etcd pass")
	}
	oldKey, newKey := bytes.Repeat([]byte{0xa1}, 32), bytes.Repeat([]byte{0xb2}, 32)
	oldID, newID := Fingerprint(oldKey), Fingerprint(newKey)
	dir := t.TempDir()
	prefix := "/store-test-rekey" + dir + "/"
	// open is one replica (its own client-side KV, as another process has) with its keys.
	open := func(key []byte, more ...[]byte) (*Store, error) {
		db := ha.NewKV(etcdClient, prefix, ha.KVOptions{Timeout: 30 * time.Second, Session: etcdSession, MaxOps: 32})
		return OpenShared(db, t.TempDir(), "etcd (test)", Options{Key: key, OldKeys: more})
	}
	must := func(s *Store, err error) *Store {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	noKeys := func(err error) {
		t.Helper()
		for _, k := range [][]byte{oldKey, newKey} {
			for _, enc := range []string{hex.EncodeToString(k), string(k)} {
				if strings.Contains(err.Error(), enc) {
					t.Fatalf("an error carries a key: %v", err)
				}
			}
		}
	}
	refused := func(err error, want ...string) {
		t.Helper()
		if !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("opened: %v; want ErrKeyMismatch", err)
		}
		noKeys(err)
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("the refusal %q does not say %q", err, w)
			}
		}
	}
	secrets := map[string]string{} // id -> password; owner is "U"+password
	seal := func(r []*Store, round string) {
		t.Helper()
		for i, s := range r {
			pw := fmt.Sprintf("pw-%s-%d", round, i)
			id, err := s.PutSecret("U"+pw, []byte(pw), time.Hour)
			if err != nil {
				t.Fatalf("%s: replica %d seals: %v", round, i, err)
			}
			secrets[id] = pw
		}
	}
	// everyoneReads checks that every replica opens every secret (Peek), and that the one
	// whose turn it is takes it once.
	everyoneReads := func(r []*Store, round string) {
		t.Helper()
		for id, pw := range secrets {
			for i, s := range r {
				got, err := s.PeekSecret(id, "U"+pw)
				if err != nil || string(got) != pw {
					t.Fatalf("%s: replica %d opens secret %s: %q, %v", round, i, id, got, err)
				}
			}
		}
	}
	state := func(s *Store, sealing, from string, behind int) {
		t.Helper()
		r, err := s.Rotation()
		if err != nil {
			t.Fatal(err)
		}
		if r.Sealing != sealing || r.From != from || (behind >= 0 && r.Behind != behind) || len(r.Missing) != 0 {
			t.Fatalf("rotation %+v; want sealing %s from %q behind %d", r, sealing, from, behind)
		}
	}

	// Before: three replicas on the old key.
	r := []*Store{must(open(oldKey)), must(open(oldKey)), must(open(oldKey))}
	seal(r, "before")
	everyoneReads(r, "before")
	state(r[0], oldID, "", 0)
	// A replica given only the new key is refused: the journal still seals with the old.
	_, err := open(newKey)
	refused(err, oldID, newID, "BOT_ENCRYPTION_KEY")

	// Phase 1, the rolling restart: one replica at a time gets both keys (either order), and
	// meanwhile the old-only ones keep working with the new-config ones.
	r[0] = must(open(oldKey, newKey))
	seal(r, "mixed1")
	everyoneReads(r, "mixed1")
	r[1] = must(open(newKey, oldKey))
	seal(r, "mixed2")
	everyoneReads(r, "mixed2")
	state(r[1], oldID, "", 0) // BOT_ENCRYPTION_KEY=new seals with the journal's key until rekey
	r[2] = must(open(oldKey, newKey))
	for i := range 60 { // enough for several batches
		id, err := r[i%3].PutSecret(fmt.Sprintf("Ubulk-%d", i), []byte(fmt.Sprintf("bulk-%d", i)), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		secrets[id] = fmt.Sprintf("bulk-%d", i)
	}
	everyoneReads(r, "phase1")
	behind := len(secrets)

	// Phase 2: rekey from an operator's machine with both keys, stopped after one batch as a
	// crash would stop it; meanwhile a replica keeps sealing.
	op := must(open(oldKey, newKey))
	var wg sync.WaitGroup
	var racing []string
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id, err := r[1].PutSecret(fmt.Sprintf("Urace-%d", i), []byte(fmt.Sprintf("race-%d", i)), time.Hour)
			if err != nil {
				t.Errorf("sealing during the rekey: %v", err)
				return
			}
			racing = append(racing, id)
			// A replica seals when a password changes: a few a minute at most. Sealing in a
			// tight loop kept the secrets bucket changing under every batch, whose
			// transaction then lost every optimistic retry until etcd's 30 s deadline
			// (once in a CI run under -race); at a pace still far above any real one,
			// the batches interleave with the seals as they would.
			time.Sleep(20 * time.Millisecond)
		}
	}()
	crash := errors.New("crash")
	n, err := op.rekeyShared(newKey, func(batches int) error {
		if batches == 1 {
			return crash
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if !errors.Is(err, crash) || n != rekeyBatch {
		t.Fatalf("the interrupted rekey: %d re-encrypted, %v", n, err)
	}
	for i, id := range racing {
		secrets[id] = fmt.Sprintf("race-%d", i)
	}
	t.Logf("%d secrets, %d sealed by a replica while the rekey ran", len(secrets), len(racing))
	state(r[0], newID, oldID, -1)
	// Some of the racing ones may have been sealed before the switch, with the old key.
	if rot, _ := r[0].Rotation(); rot.Behind < behind-rekeyBatch || rot.Behind > len(secrets)-rekeyBatch {
		t.Fatalf("after one batch of %d, %d of %d secrets are behind", rekeyBatch, rot.Behind, len(secrets))
	}
	seal(r, "during")
	everyoneReads(r, "during")
	// In the middle, a replica needs both keys: the old-only one cannot seal, the new-only
	// one cannot open what is left.
	_, err = open(oldKey)
	refused(err, oldID, newID, "BOT_NEW_ENCRYPTION_KEY")
	_, err = open(newKey)
	refused(err, oldID, newID, "mongobot rekey")
	// Another rotation cannot start over an unfinished one.
	if err := op.Rekey(bytes.Repeat([]byte{0xc3}, 32)); !errors.Is(err, ErrRekeyUnfinished) {
		t.Fatalf("a second rotation over an unfinished one: %v", err)
	} else {
		noKeys(err)
	}
	// Run again, it resumes and finishes.
	op = must(open(oldKey, newKey))
	if err := op.Rekey(newKey); err != nil {
		t.Fatal(err)
	}
	state(r[2], newID, "", 0)
	everyoneReads(r, "after")
	seal(r, "after")
	everyoneReads(r, "after")
	if err := op.Rekey(newKey); err != nil { // once more: nothing to do
		t.Fatal(err)
	}

	// Phase 3: the old key is retired, replica by replica.
	r[0] = must(open(newKey))
	seal(r, "retire1")
	everyoneReads(r, "retire1")
	r[1], r[2] = must(open(newKey)), must(open(newKey))
	seal(r, "retired")
	everyoneReads(r, "retired")
	state(r[0], newID, "", 0)
	_, err = open(oldKey)
	refused(err, newID, oldID, "BOT_ENCRYPTION_KEY")
	// Each secret is taken once, by any replica.
	i := 0
	for id, pw := range secrets {
		if got, err := r[i%3].TakeSecret(id, "U"+pw); err != nil || string(got) != pw {
			t.Fatalf("take %s: %q, %v", id, got, err)
		}
		i++
	}
}

// A replica that was not given the key the journal moved to cannot seal: it says which key
// it lacks and how to give it, and writes nothing.
func TestSharedRekeyReplicaLeftBehind(t *testing.T) {
	if etcdClient == nil {
		t.Skip("a test of the shared journal: it runs in the etcd pass")
	}
	oldKey, newKey := bytes.Repeat([]byte{0xd4}, 32), bytes.Repeat([]byte{0xe5}, 32)
	dir := t.TempDir()
	open := func(key []byte, more ...[]byte) *Store {
		db := ha.NewKV(etcdClient, "/store-test-behind"+dir+"/", ha.KVOptions{Timeout: 30 * time.Second})
		s, err := OpenShared(db, t.TempDir(), "etcd (test)", Options{Key: key, OldKeys: more})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	behind := open(oldKey)
	if err := open(oldKey, newKey).Rekey(newKey); err != nil {
		t.Fatal(err)
	}
	n, _ := behind.SecretCount()
	_, err := behind.PutSecret("U1", []byte("pw"), time.Hour)
	if !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), Fingerprint(newKey)) || !strings.Contains(err.Error(), "BOT_NEW_ENCRYPTION_KEY") {
		t.Fatalf("a replica without the new key seals: %v", err)
	}
	if m, _ := behind.SecretCount(); m != n {
		t.Fatalf("the refused seal wrote: %d secrets, had %d", m, n)
	}
}

// A secret sealed with the old key behind the batches' walk (as storage altered by hand, or a
// restore, could leave one) is found by the last walk, from the start, before the rotation is
// declared over.
func TestSharedRekeyWalksAgain(t *testing.T) {
	if etcdClient == nil {
		t.Skip("a test of the shared journal: it runs in the etcd pass")
	}
	oldKey, newKey := bytes.Repeat([]byte{0x17}, 32), bytes.Repeat([]byte{0x28}, 32)
	dir := t.TempDir()
	s, err := OpenShared(ha.NewKV(etcdClient, "/store-test-walk"+dir+"/", ha.KVOptions{Timeout: 30 * time.Second}), dir, "etcd (test)", Options{Key: oldKey, OldKeys: [][]byte{newKey}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2*rekeyBatch + 5 {
		if _, err := s.PutSecret(fmt.Sprint("U", i), []byte("pw"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	oldID := Fingerprint(oldKey)
	planted := false
	n, err := s.rekeyShared(newKey, func(batches int) error {
		if batches == 2 && !planted {
			planted = true
			// Sorted before every random id, so behind the walk.
			rec, err := seal(oldID, s.keys.byID[oldID], "0000", "U0", time.Now().Add(time.Hour), "", []byte("behind"))
			if err != nil {
				return err
			}
			raw, _ := json.Marshal(rec)
			return s.db.Update(func(tx kv.Tx) error { return tx.Bucket(bucketSecrets).Put([]byte("0000"), raw) })
		}
		return nil
	})
	if err != nil || n != 2*rekeyBatch+5+1 {
		t.Fatalf("rekey: %d re-encrypted, %v", n, err)
	}
	if r, err := s.Rotation(); err != nil || r.From != "" || r.Behind != 0 {
		t.Fatalf("after: %+v, %v", r, err)
	}
	only, err := OpenShared(ha.NewKV(etcdClient, "/store-test-walk"+dir+"/", ha.KVOptions{Timeout: 30 * time.Second}), dir, "etcd (test)", Options{Key: newKey})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := only.TakeSecret("0000", "U0"); err != nil || string(got) != "behind" {
		t.Fatalf("the secret behind the walk: %q, %v", got, err)
	}
}
