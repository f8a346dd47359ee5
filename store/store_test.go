package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mongobot/kv"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is an injected time source tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)} }

// open opens the journal of dir on the backend of the run (see backend_test.go).
func open(t *testing.T, dir string, c *clock) *Store {
	t.Helper()
	s, err := openOpts(dir, Options{Now: c.Now})
	return checkOnCleanup(t, s, err)
}

// openFile opens dir's bbolt file whatever the backend: for the tests of the file itself.
func openFile(t *testing.T, dir string, c *clock) *Store {
	t.Helper()
	s, err := Open(dir, Options{Now: c.Now})
	return checkOnCleanup(t, s, err)
}

// checkOnCleanup fails on err, else checks s's consistency when the test ends and closes it.
func checkOnCleanup(t *testing.T, s *Store, err error) *Store {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil && !closedOK(err) {
			t.Errorf("consistency check on cleanup: %v", err)
		}
		s.Close()
	})
	return s
}

func TestOpenCreatesOwnerOnlyFiles(t *testing.T) {
	bboltOnly(t)
	dir := filepath.Join(t.TempDir(), "data")
	openFile(t, dir, newClock())
	for path, want := range map[string]os.FileMode{
		dir:                             0o700,
		filepath.Join(dir, FileName):    0o600,
		filepath.Join(dir, KeyFileName): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", path, got, want)
		}
	}
}

func TestOpenLockedFileSaysWhoHoldsIt(t *testing.T) {
	bboltOnly(t)
	dir := t.TempDir()
	openFile(t, dir, newClock())
	start := time.Now()
	_, err := Open(dir, Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "another bot process holds") || !strings.Contains(err.Error(), FileName) {
		t.Errorf("message %q does not name the holder and file", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("locked open took %v: it must give up at its timeout", time.Since(start))
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	bboltOnly(t)
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.db.Update(func(tx kv.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, u64(SchemaVersion+1)) })
	s.Close()
	_, err = Open(dir, Options{})
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("open: %v, want ErrNewerSchema", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("schema %d", SchemaVersion+1)) {
		t.Errorf("message %q does not say which schema", err)
	}
}

func TestMigrationsRunInOrderOnce(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	var ran []int
	step := func(n int) migration {
		return func(tx kv.Tx) error { ran = append(ran, n); return nil }
	}
	if err := s.migrateTo(SchemaVersion+2, []migration{step(1), step(2)}); err != nil {
		t.Fatal(err)
	}
	if err := s.migrateTo(SchemaVersion+2, []migration{step(1), step(2)}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ran) != "[1 2]" {
		t.Errorf("migrations ran %v, want [1 2] exactly once", ran)
	}
	if v, _ := s.Schema(); v != SchemaVersion+2 {
		t.Errorf("schema %d after migration", v)
	}
	failing := func(tx kv.Tx) error {
		tx.Bucket(bucketMeta).Put([]byte("half"), []byte("x"))
		return errors.New("boom")
	}
	if err := s.migrateTo(SchemaVersion+3, []migration{step(1), step(2), failing}); err == nil {
		t.Fatal("a failing migration must fail Open")
	}
	s.db.View(func(tx kv.Tx) error {
		if tx.Bucket(bucketMeta).Get([]byte("half")) != nil {
			t.Error("a failed migration left half its changes")
		}
		return nil
	})
}

func TestRequestCompareAndSet(t *testing.T) {
	c := newClock()
	s := open(t, t.TempDir(), c)
	r, err := s.CreateRequest(Request{Action: "grant-role", Connector: "prod", Requester: "U1",
		Args: map[string]string{"user": "app", "role": "read@shop"}}, "pending", "U1")
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != 1 || r.State != "pending" || len(r.History) != 1 {
		t.Fatalf("created %+v", r)
	}
	r2, _ := s.CreateRequest(Request{Action: "drop-user"}, "pending", "U2")
	if r2.ID != 2 {
		t.Errorf("second id %d, want 2", r2.ID)
	}
	c.Add(time.Minute)
	got, err := s.TransitionRequest(1, []string{"pending"}, Step{State: "approved", By: "U9"}, func(r *Request) {
		r.Votes = append(r.Votes, Vote{User: "U9", Approve: true, At: c.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != "approved" || len(got.Votes) != 1 || len(got.History) != 2 || !got.History[1].At.Equal(c.Now()) {
		t.Fatalf("after transition %+v", got)
	}
	_, err = s.TransitionRequest(1, []string{"pending"}, Step{State: "denied"}, nil)
	var ce *ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, ErrConflict) || ce.Got != "approved" {
		t.Fatalf("second transition: %v, want a conflict naming approved", err)
	}
	stored, _ := s.Request(1)
	if stored.State != "approved" || len(stored.History) != 2 {
		t.Errorf("a refused transition changed the record: %+v", stored)
	}
	if _, err := s.Request(99); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing request: %v", err)
	}
	if _, err := s.TransitionRequest(99, []string{"pending"}, Step{State: "x"}, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("transition of missing request: %v", err)
	}
	pending, _, _ := s.Requests(0, 10, "pending")
	if len(pending) != 1 || pending[0].ID != 2 {
		t.Errorf("pending requests %+v", pending)
	}
}

// Many approvers click at once: exactly one transition wins.
func TestRaceExactlyOneTransitionWins(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	for round := 0; round < 20; round++ {
		r, err := s.CreateRequest(Request{Action: "rotate-password"}, "pending", "U0")
		if err != nil {
			t.Fatal(err)
		}
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := s.TransitionRequest(r.ID, []string{"pending"}, Step{State: "approved", By: fmt.Sprint("U", i)}, nil)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, ErrConflict):
					conflicts.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != 49 {
			t.Fatalf("round %d: %d wins, %d conflicts; want 1 and 49", round, wins.Load(), conflicts.Load())
		}
		got, _ := s.Request(r.ID)
		if len(got.History) != 2 {
			t.Fatalf("round %d: history %+v, want pending then one approval", round, got.History)
		}
	}
}

func TestJournalWriteAheadAndHistory(t *testing.T) {
	c := newClock()
	s := open(t, t.TempDir(), c)
	for i := 1; i <= 25; i++ {
		e, err := s.BeginEntry(Entry{Action: "rotate-password", Connector: "prod", Requester: "U1",
			Args: map[string]string{"user": fmt.Sprint("u", i)}}, "U1")
		if err != nil {
			t.Fatal(err)
		}
		if e.ID != uint64(i) || e.State != EntryExecuting {
			t.Fatalf("begin %d: %+v", i, e)
		}
		if i%5 != 0 { // every fifth is left executing, as after a crash
			_, err := s.TransitionEntry(e.ID, []string{EntryExecuting}, Step{State: EntryDone}, func(e *Entry) {
				e.After = json.RawMessage(`{"roles":["read@shop"]}`)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	ex, err := s.Executing()
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, e := range ex {
		ids = append(ids, e.ID)
	}
	if fmt.Sprint(ids) != "[5 10 15 20 25]" {
		t.Errorf("executing %v, want [5 10 15 20 25]", ids)
	}
	s.TransitionEntry(5, []string{EntryExecuting}, Step{State: EntryFailed, Note: "reconciled"}, nil)
	if ex, _ := s.Executing(); len(ex) != 4 {
		t.Errorf("after settling one, %d executing, want 4", len(ex))
	}

	// Newest first, ten at a time, every id once.
	var seen []uint64
	var before uint64
	for page := 0; ; page++ {
		es, next, err := s.History(before, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			seen = append(seen, e.ID)
		}
		if next == 0 {
			break
		}
		before = next
		if page > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != 25 || seen[0] != 25 || seen[24] != 1 {
		t.Errorf("history pages gave %v", seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] != seen[i-1]-1 {
			t.Fatalf("history not newest first without gaps: %v", seen)
		}
	}

	var buf bytes.Buffer
	if err := s.Export(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 25 {
		t.Fatalf("export has %d lines, want 25", len(lines))
	}
	var first Entry
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.ID != 1 || first.Args["user"] != "u1" {
		t.Errorf("first export line %q: %v", lines[0], err)
	}
}

func TestPurgeKeepsJournalUnlessRetentionSet(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s := open(t, dir, c)
	s.BeginEntry(Entry{Action: "a"}, "U1")
	e2, _ := s.BeginEntry(Entry{Action: "b"}, "U1")
	s.TransitionEntry(e2.ID, []string{EntryExecuting}, Step{State: EntryDone}, nil)
	first, _ := s.Seen("env-1", time.Minute)
	again, _ := s.Seen("env-1", time.Minute)
	if !first || again {
		t.Fatalf("Seen: first %v, again %v", first, again)
	}
	s.PutSecret("U1", []byte("x"), time.Minute)
	c.Add(365 * 24 * time.Hour)
	st, err := s.Purge()
	if err != nil {
		t.Fatal(err)
	}
	if st != (PurgeStats{Dedupe: 1, Secrets: 1}) {
		t.Errorf("purge %+v: journal must be kept without retention", st)
	}
	if after, _ := s.Seen("env-1", time.Minute); !after {
		t.Error("an expired dedupe key must count as new")
	}
	s.retention = 24 * time.Hour
	st, _ = s.Purge()
	if st.Entries != 1 {
		t.Errorf("with retention, purged %d entries, want 1 (the executing one is kept)", st.Entries)
	}
	if ex, _ := s.Executing(); len(ex) != 1 {
		t.Error("an executing entry was purged")
	}
}

func TestSecretsReadOnceOwnerOnlyAndExpire(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s := open(t, dir, c)
	pw := []byte("Zq8-canary-password-" + NewKey()[:16])
	id, err := s.PutSecret("UOWNER", pw, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeSecret(id, "UOTHER"); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("other user: %v, want ErrNotOwner", err)
	}
	got, err := s.TakeSecret(id, "UOWNER")
	if err != nil || !bytes.Equal(got, pw) {
		t.Fatalf("owner: %v", err)
	}
	if _, err := s.TakeSecret(id, "UOWNER"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second reveal: %v, want ErrNotFound", err)
	}
	id2, _ := s.PutSecret("UOWNER", pw, time.Minute)
	c.Add(time.Minute)
	if _, err := s.TakeSecret(id2, "UOWNER"); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v, want ErrExpired", err)
	}
	if _, err := s.TakeSecret(id2, "UOWNER"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired secret must be gone: %v", err)
	}
	id3, _ := s.PutSecret("UOWNER", pw, time.Hour)
	s.Close()
	raw, _ := os.ReadFile(filepath.Join(dir, FileName))
	if bytes.Contains(raw, pw) {
		t.Fatal("the file holds a secret in clear")
	}
	// A tampered record (owner changed in the file) no longer authenticates.
	s2 := open(t, dir, c)
	s2.db.Update(func(tx kv.Tx) error {
		var rec sealed
		json.Unmarshal(tx.Bucket(bucketSecrets).Get([]byte(id3)), &rec)
		rec.Owner = "UTHIEF"
		b, _ := json.Marshal(rec)
		return tx.Bucket(bucketSecrets).Put([]byte(id3), b)
	})
	if _, err := s2.TakeSecret(id3, "UTHIEF"); !errors.Is(err, ErrBadKey) {
		t.Fatalf("tampered owner: %v, want ErrBadKey", err)
	}
}

func TestKeyFromEnvAndRotation(t *testing.T) {
	bboltOnly(t)
	c := newClock()
	dir := t.TempDir()
	k1, _ := ParseKey(NewKey())
	s, err := Open(dir, Options{Now: c.Now, Key: k1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Error("a key file was created although a key was given")
	}
	id, _ := s.PutSecret("U1", []byte("pw-one"), time.Hour)
	k2, _ := ParseKey(NewKey())
	if err := s.Rekey(k2); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// With only the old key the secret cannot be read, and nothing is lost by trying.
	s, err = Open(dir, Options{Now: c.Now, Key: k1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeSecret(id, "U1"); !errors.Is(err, ErrBadKey) {
		t.Fatalf("old key: %v, want ErrBadKey", err)
	}
	s.Close()
	s, err = Open(dir, Options{Now: c.Now, Key: k2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.TakeSecret(id, "U1"); err != nil || string(got) != "pw-one" {
		t.Fatalf("new key: %q %v", got, err)
	}
}

func TestKeyRotationWithKeyFileAndInterruptedRekey(t *testing.T) {
	bboltOnly(t)
	c := newClock()
	dir := t.TempDir()
	s, err := Open(dir, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := s.PutSecret("U1", []byte("pw-one"), time.Hour)
	k2, _ := ParseKey(NewKey())
	if err := s.Rekey(k2); err != nil {
		t.Fatal(err)
	}
	s.Close()
	onDisk, _ := os.ReadFile(filepath.Join(dir, KeyFileName))
	if k, _ := ParseKey(string(onDisk)); !bytes.Equal(k, k2) {
		t.Fatal("key file does not hold the new key")
	}
	s, _ = Open(dir, Options{Now: c.Now})
	if got, err := s.TakeSecret(id1, "U1"); err != nil || string(got) != "pw-one" {
		t.Fatalf("after rekey: %q %v", got, err)
	}
	// Interrupted: the new key was written beside the old one and the secrets re-sealed,
	// but the rename never happened. Open must finish the job.
	id2, _ := s.PutSecret("U1", []byte("pw-two"), time.Hour)
	k3, _ := ParseKey(NewKey())
	s.keys.fromEnv = true // skip the file steps, to stop half-way
	s.Rekey(k3)
	s.Close()
	os.WriteFile(filepath.Join(dir, KeyFileName+".new"), []byte(fmt.Sprintf("%x\n", k3)), 0o600)
	s, err = Open(dir, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.TakeSecret(id2, "U1"); err != nil || string(got) != "pw-two" {
		t.Fatalf("after interrupted rekey: %q %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFileName+".new")); !errors.Is(err, os.ErrNotExist) {
		t.Error("pending key file left behind")
	}
}

func TestParseKey(t *testing.T) {
	hexKey := NewKey()
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{hexKey, true},
		{"  " + hexKey + "\n", true},
		{"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", true},
		{"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", true},
		{"short", false},
		{hexKey[:62], false},
		{"", false},
	} {
		_, err := ParseKey(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseKey(%q): %v", tc.in, err)
		}
	}
}

func TestSchedules(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	a, _ := s.CreateSchedule(Schedule{Connector: "prod", User: "app", DB: "admin", Spec: "@daily", Owner: "U1"}, "U1")
	s.CreateSchedule(Schedule{Connector: "prod", User: "etl", DB: "admin", Spec: "0 3 * * *", Owner: "U1"}, "U1")
	if _, err := s.TransitionSchedule(a.ID, []string{ScheduleActive}, Step{State: ScheduleRemoved, By: "U1"}, nil); err != nil {
		t.Fatal(err)
	}
	active, err := s.Schedules()
	if err != nil || len(active) != 1 || active[0].User != "etl" {
		t.Fatalf("active schedules %+v %v", active, err)
	}
}

func TestBeginRollbackClaimsOnce(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	e, err := s.BeginEntry(Entry{Action: "grant-role", Connector: "prod"}, "U1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginRollback(e.ID, Entry{Action: "rollback"}, "U1"); !errors.Is(err, ErrConflict) {
		t.Fatalf("rollback of an executing entry: %v", err)
	}
	if _, err := s.TransitionEntry(e.ID, []string{EntryExecuting}, Step{State: EntryDone}, nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wins := make(chan Entry, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := s.BeginRollback(e.ID, Entry{Action: "rollback"}, "U2"); err == nil {
				wins <- r
			} else if !errors.Is(err, ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	close(wins)
	if len(wins) != 1 {
		t.Fatalf("%d rollbacks claimed the entry, want 1", len(wins))
	}
	r := <-wins
	if orig, _ := s.Entry(e.ID); orig.RolledBackBy != r.ID || r.RollbackOf != e.ID || r.State != EntryExecuting {
		t.Fatalf("claim not recorded: orig %+v rollback %+v", orig, r)
	}
	if ex, _ := s.Executing(); len(ex) != 1 || ex[0].ID != r.ID {
		t.Fatalf("the rollback is not in the write-ahead index: %+v", ex)
	}
	if err := s.ReleaseRollback(e.ID, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginRollback(e.ID, Entry{Action: "rollback"}, "U2"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// TestKeyFileModeRefused checks that Open refuses a key file its group or others may read or
// write, as ssh refuses such a private key, with a message naming the file and the fix; and
// that the key is kept, so chmod 600 is all it takes.
func TestKeyFileModeRefused(t *testing.T) {
	bboltOnly(t)
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits")
	}
	c := newClock()
	dir := t.TempDir()
	s, err := Open(dir, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.PutSecret("U1", []byte("pw-one"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, KeyFileName)
	before, _ := os.ReadFile(path)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o666, 0o620, 0o602, 0o610, 0o601, 0o777} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{Now: c.Now})
		if err == nil {
			s.Close()
			t.Errorf("mode %04o: the key file was accepted", mode)
			continue
		}
		if !errors.Is(err, ErrKeyFileMode) {
			t.Errorf("mode %04o: %v, want ErrKeyFileMode", mode, err)
		}
		if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "chmod 600 "+path) ||
			!strings.Contains(msg, fmt.Sprintf("mode %04o", mode)) {
			t.Errorf("mode %04o: %q does not name the file, its mode and the fix", mode, msg)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a refused open changed the key file")
	}
	for _, mode := range []os.FileMode{0o600, 0o400, 0o700} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{Now: c.Now})
		if err != nil {
			t.Fatalf("mode %04o: %v", mode, err)
		}
		if got := s.KeyFile(); got != path {
			t.Errorf("KeyFile() = %q, want %q", got, path)
		}
		s.Close()
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	s = openFile(t, dir, c)
	if got, err := s.TakeSecret(id, "U1"); err != nil || string(got) != "pw-one" {
		t.Fatalf("after chmod 600: %q %v", got, err)
	}
}

// TestKeyFileModeRefusedBeforeFirstOpen: a key file made by hand with the usual umask (0644),
// say with openssl rand -hex 32 > data/secret.key, is refused too, not silently used.
func TestKeyFileModeRefusedBeforeFirstOpen(t *testing.T) {
	bboltOnly(t)
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFileName)
	if err := os.WriteFile(path, []byte(NewKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrKeyFileMode) {
		t.Fatalf("Open: %v, want ErrKeyFileMode", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Error("the journal was created although the key file was refused")
	}
	// The new key file of an interrupted Rekey is held to the same rule.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	pending := path + ".new"
	if err := os.WriteFile(pending, []byte(NewKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pending, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrKeyFileMode) || !strings.Contains(err.Error(), "chmod 600 "+pending) {
		t.Fatalf("Open with a 0640 pending key: %v, want ErrKeyFileMode naming %s", err, pending)
	}
}

func TestKeyFileIsEmptyWithAGivenKey(t *testing.T) {
	bboltOnly(t)
	k, _ := ParseKey(NewKey())
	s, err := Open(t.TempDir(), Options{Key: k})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.KeyFile(); got != "" {
		t.Fatalf("KeyFile() = %q with a given key, want \"\"", got)
	}
}

// TestReadOnlyCreatesNothing: a reader never creates the data folder, the journal or a key
// file, reads what a writer left, refuses to write, and still finds a running bot's lock.
func TestReadOnlyCreatesNothing(t *testing.T) {
	bboltOnly(t)
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := Open(dir, Options{ReadOnly: true}); !errors.Is(err, ErrNoJournal) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("missing folder: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the data folder was created: %v", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{ReadOnly: true}); !errors.Is(err, ErrNoJournal) {
		t.Fatalf("empty folder: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("the reader created %v", ents)
	}

	w := openFile(t, dir, newClock())
	w.BeginEntry(Entry{Action: "grant-role", Connector: "prod", Requester: "U1", Server: "7.0.14, replica set primary"}, "bot")
	sid, err := w.PutSecret("U1", []byte("pw"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The writer holds the exclusive lock: a reader waits its timeout and says so.
	if _, err := Open(dir, Options{ReadOnly: true, LockTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("while a writer holds the file: %v", err)
	}
	w.Close()
	keyBefore, _ := os.ReadFile(filepath.Join(dir, KeyFileName))

	r, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if e, err := r.Entry(1); err != nil || e.Server != "7.0.14, replica set primary" {
		t.Fatalf("read: %+v %v", e, err)
	}
	if n, err := r.SecretCount(); err != nil || n != 1 {
		t.Fatalf("SecretCount: %d %v", n, err)
	}
	if _, err := r.BeginEntry(Entry{Action: "x"}, "bot"); err == nil {
		t.Fatal("a read-only store wrote an entry")
	}
	if err := r.Rekey([]byte(strings.Repeat("k", 32))); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Rekey: %v", err)
	}
	if _, err := r.TakeSecret(sid, "U1"); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("TakeSecret: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFileName+".new")); !os.IsNotExist(err) {
		t.Fatalf("a new key file was written: %v", err)
	}
	if keyAfter, _ := os.ReadFile(filepath.Join(dir, KeyFileName)); !bytes.Equal(keyBefore, keyAfter) {
		t.Fatal("the key file changed")
	}
}

// TestReadOnlyWithoutKeyFile: a journal whose key comes from the environment is readable
// without it, and no key file appears.
func TestReadOnlyWithoutKeyFile(t *testing.T) {
	bboltOnly(t)
	dir := t.TempDir()
	s, err := Open(dir, Options{Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	s.BeginEntry(Entry{Action: "grant-role"}, "bot")
	s.Close()
	r, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if es, _, err := r.History(0, 10); err != nil || len(es) != 1 {
		t.Fatalf("History: %v %v", es, err)
	}
	if r.KeyFile() != "" {
		t.Fatalf("KeyFile() = %q", r.KeyFile())
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFileName)); !os.IsNotExist(err) {
		t.Fatalf("a key file was created: %v", err)
	}
}

// A journal written before the offers and superseded buckets existed is read as it is by the
// read-only commands (an operator upgrades, then runs check or journal list first), and gets
// them at the next writable start.
func TestReadOnlyReadsAnOlderJournal(t *testing.T) {
	bboltOnly(t)
	dir := filepath.Join(t.TempDir(), "data")
	w := openFile(t, dir, newClock())
	w.BeginEntry(Entry{Action: "grant-role", Connector: "prod", Requester: "U1"}, "bot")
	if err := w.db.Update(func(tx kv.Tx) error {
		for _, b := range [][]byte{bucketOffers, bucketReplaced} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("an older journal, read-only: %v", err)
	}
	if es, _, err := r.History(0, 10); err != nil || len(es) != 1 || r.SupersededBy("x") != 0 {
		t.Fatalf("read %d entries: %v", len(es), err)
	}
	r.Close()
	w = openFile(t, dir, newClock())
	if _, err := w.SupersedeSecrets("prod/app@admin", "s1", 1); err != nil {
		t.Fatalf("the buckets were not added at the writable start: %v", err)
	}
	w.Close()
}

// Superseded marks outlive every reveal window, then go; an offer goes with its secret.
func TestPurgeDropsOldOffers(t *testing.T) {
	c := newClock()
	s := open(t, t.TempDir(), c)
	a, _ := s.PutSecret("U1", []byte("pw-a"), time.Hour)
	if _, err := s.SupersedeSecrets("prod/app@admin", a, 1); err != nil {
		t.Fatal(err)
	}
	b, _ := s.PutSecret("U1", []byte("pw-b"), time.Hour)
	if gone, err := s.SupersedeSecrets("prod/app@admin", b, 2); err != nil || len(gone) != 1 || gone[0].ID != a {
		t.Fatalf("superseded %v, %v", gone, err)
	}
	if s.SupersededBy(a) != 2 {
		t.Fatal("no mark")
	}
	if st, err := s.Purge(); err != nil || st.Offers != 0 || s.SupersededBy(a) != 2 {
		t.Fatalf("a fresh mark or a live offer was purged: %+v %v", st, err)
	}
	c.Add(31 * 24 * time.Hour) // b has expired; a's mark is older than any reveal window
	st, err := s.Purge()
	if err != nil || st.Offers != 2 || s.SupersededBy(a) != 0 {
		t.Fatalf("purge: %+v %v; mark %d", st, err, s.SupersededBy(a))
	}
}

// MarkDue records the slot each schedule fell due for, in one transaction, and leaves alone
// those that are not active, whose slot was claimed already, or which were removed.
func TestMarkDue(t *testing.T) {
	c := newClock()
	s := open(t, t.TempDir(), c)
	slot := c.Now().Add(time.Minute).Truncate(time.Minute)
	a, _ := s.CreateSchedule(Schedule{Connector: "prod", User: "a", DB: "admin", Spec: "* * * * *", Owner: "U1"}, "U1")
	b, _ := s.CreateSchedule(Schedule{Connector: "prod", User: "b", DB: "admin", Spec: "* * * * *", Owner: "U1"}, "U1")
	p, _ := s.CreateSchedule(Schedule{Connector: "prod", User: "p", DB: "admin", Spec: "* * * * *", Owner: "U1"}, "U1")
	if _, err := s.BeginRun(b.ID, slot, false, Entry{Action: "rotate-password", Connector: "prod"}, "schedule"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TransitionSchedule(p.ID, []string{ScheduleActive}, Step{State: SchedulePaused}, nil); err != nil {
		t.Fatal(err)
	}
	c.Add(90 * time.Second)
	if err := s.MarkDue(map[uint64]time.Time{a.ID: slot, b.ID: slot, p.ID: slot, 999: slot}); err != nil {
		t.Fatal(err)
	}
	got := func(id uint64) Schedule { sc, _ := s.Schedule(id); return sc }
	if x := got(a.ID); !x.DueSlot.Equal(slot) || !x.DueAt.Equal(c.Now()) {
		t.Fatalf("the due schedule: due %v at %v, want %v at %v", x.DueSlot, x.DueAt, slot, c.Now())
	}
	if x := got(b.ID); !x.DueSlot.IsZero() {
		t.Fatalf("a schedule whose slot was claimed was marked due: %+v", x)
	}
	if x := got(p.ID); !x.DueSlot.IsZero() {
		t.Fatalf("a paused schedule was marked due: %+v", x)
	}
	// The same slot again (a second RunDue) does not move DueAt.
	c.Add(time.Second)
	if err := s.MarkDue(map[uint64]time.Time{a.ID: slot}); err != nil {
		t.Fatal(err)
	}
	if x := got(a.ID); !x.DueAt.Equal(c.Now().Add(-time.Second)) {
		t.Fatalf("marking the same slot again moved DueAt to %v", x.DueAt)
	}
}
