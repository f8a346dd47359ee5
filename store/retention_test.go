package store

import (
	"errors"
	"fmt"
	"maps"
	"mongobot/kv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mongobot/approvals"
	"mongobot/commands"
)

const day = 24 * time.Hour

// oldJournal fills s with every kind of record, all created at the clock's time; it returns
// the ids Purge must keep once they are past the retention, and the number it must delete.
type oldJournal struct {
	keepEntries, keepRequests []uint64
	goneEntries, goneRequests []uint64
	keepSecrets, goneSecrets  []string
}

func fillOld(t *testing.T, s *Store) oldJournal {
	t.Helper()
	var j oldJournal
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	secret := func() string {
		id, err := s.PutSecret("U1", []byte("pw"), 1000*day)
		must(err)
		return id
	}
	entry := func(e Entry, state string, mutate func(*Entry)) Entry {
		t.Helper()
		e, err := s.BeginEntry(e, "U1")
		must(err)
		if state != EntryExecuting {
			e, err = s.TransitionEntry(e.ID, []string{EntryExecuting}, Step{State: state}, mutate)
			must(err)
		}
		return e
	}
	lock := func(action, user string) Entry {
		return entry(Entry{Action: action, Connector: "prod", Args: map[string]string{"user": user}}, EntryDone, nil)
	}

	executing := entry(Entry{Action: "grant-role"}, EntryExecuting, nil)
	temporary := entry(Entry{Action: "grant-role"}, EntryDone, func(e *Entry) { e.UndoAt = s.now().Add(time.Hour) })
	delivering := secret()
	awaiting := entry(Entry{Action: "rotate-password"}, EntryDone, func(e *Entry) {
		e.DeliverySecret, e.Deliveries = delivering, []Delivery{{Target: "vault", State: DeliveryPending}}
	})
	locked := lock(commands.LockUser, "u1") // in force
	unlocked := []Entry{lock(commands.LockUser, "u2"), lock(commands.UnlockUser, "u2")}
	relocked := []Entry{lock(commands.LockUser, "u3"), lock(commands.LockUser, "u3")} // the second in force
	beforeUnlock := lock(commands.LockUser, "u4")                                     // unlocked later, recently
	paired, pairSecret := entry(Entry{Action: "rotate-password"}, EntryDone, nil), secret()
	_, err := s.SwapPair("prod/app", "app_a", PairUser{User: "app_b", Entry: paired.ID, Secret: pairSecret, Owner: "U1"})
	must(err)
	// An old entry still pointing at the pair's password: the entry goes, the password stays.
	sharing := entry(Entry{Action: "rotate-password"}, EntryDone, func(e *Entry) { e.PendingSecret = pairSecret })
	pending := secret()
	plain := entry(Entry{Action: "rotate-password"}, EntryDone, func(e *Entry) { e.PendingSecret = pending })
	failed := entry(Entry{Action: "drop-user"}, EntryFailed, nil)
	undone := entry(Entry{Action: "grant-role"}, EntryDone, nil)
	rollback, err := s.BeginRollback(undone.ID, Entry{Action: "revoke-role"}, "U1")
	must(err)

	request := func(state string, entry uint64) uint64 {
		r, err := s.CreateRequest(Request{Action: "grant-role", EntryID: entry}, state, "U1")
		must(err)
		return r.ID
	}
	open := []uint64{request(approvals.Pending, 0), request(approvals.Approved, 0), request(approvals.Executing, 0)}
	ofKept := request(approvals.Done, executing.ID)
	ofGone := request(approvals.Done, failed.ID)
	denied := request(approvals.Denied, 0)
	scheduled := request(approvals.Done, 0)
	_, err = s.CreateSchedule(Schedule{Connector: "prod", User: "app", Spec: "@monthly", RequestID: scheduled}, "U1")
	must(err)

	j.keepEntries = []uint64{executing.ID, temporary.ID, awaiting.ID, locked.ID, relocked[1].ID, beforeUnlock.ID,
		paired.ID, undone.ID, rollback.ID}
	j.goneEntries = []uint64{unlocked[0].ID, unlocked[1].ID, relocked[0].ID, sharing.ID, plain.ID, failed.ID}
	j.keepRequests = append(open, ofKept, scheduled)
	j.goneRequests = []uint64{ofGone, denied}
	j.keepSecrets, j.goneSecrets = []string{delivering, pairSecret}, []string{pending}
	return j
}

// TestPurgeKeepsWhatTheBotNeeds: past the retention, Purge deletes every finished record the
// bot no longer needs, with its index keys and sealed passwords, and keeps exactly the others.
func TestPurgeKeepsWhatTheBotNeeds(t *testing.T) {
	c := newClock()
	s, err := openOpts(t.TempDir(), Options{Now: c.Now, Retention: 400 * day})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j := fillOld(t, s)
	c.Add(500 * day)
	// Recent: never purged; the unlock of u4 keeps its older lock, which a rollback of it
	// would bring back in force.
	recent, _ := s.BeginEntry(Entry{Action: commands.UnlockUser, Connector: "prod", Args: map[string]string{"user": "u4"}}, "U1")
	s.TransitionEntry(recent.ID, []string{EntryExecuting}, Step{State: EntryDone}, nil)
	young, _ := s.CreateRequest(Request{Action: "grant-role"}, approvals.Denied, "U1")
	j.keepEntries = append(j.keepEntries, recent.ID)
	j.keepRequests = append(j.keepRequests, young.ID)

	// In passes of at most 2 records of each kind: the same end, a few hours later. (A
	// shared journal runs its passes within one Purge.)
	defer func(n int) { purgeBatch = n }(purgeBatch)
	purgeBatch = 2
	var st PurgeStats
	for {
		pass, err := s.Purge()
		if err != nil {
			t.Fatal(err)
		}
		if !s.shared && (pass.Entries > 2 || pass.Requests > 2) {
			t.Fatalf("a pass deleted %+v", pass)
		}
		if pass.Entries+pass.Requests == 0 {
			break
		}
		st.Entries, st.Requests, st.Secrets = st.Entries+pass.Entries, st.Requests+pass.Requests, st.Secrets+pass.Secrets
	}
	purgeBatch = 10_000
	if st.Entries != len(j.goneEntries) || st.Requests != len(j.goneRequests) || st.Secrets != len(j.goneSecrets) {
		t.Errorf("purge %+v, want %d entries, %d requests, %d secrets", st, len(j.goneEntries), len(j.goneRequests), len(j.goneSecrets))
	}
	for _, id := range j.keepEntries {
		if _, err := s.Entry(id); err != nil {
			t.Errorf("entry %d: %v; it must be kept", id, err)
		}
	}
	for _, id := range j.goneEntries {
		if _, err := s.Entry(id); err == nil {
			t.Errorf("entry %d was kept", id)
		}
	}
	for _, id := range j.keepRequests {
		if _, err := s.Request(id); err != nil {
			t.Errorf("request %d: %v; it must be kept", id, err)
		}
	}
	for _, id := range j.goneRequests {
		if _, err := s.Request(id); err == nil {
			t.Errorf("request %d was kept", id)
		}
	}
	if n, _ := s.SecretCount(); n != len(j.keepSecrets) {
		t.Errorf("%d sealed passwords left, want %d", n, len(j.keepSecrets))
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]bool{"u1": true, "u2": false, "u3": true, "u4": false} {
		if _, ok, err := s.LatestLock("prod", user, ""); err != nil || ok != want {
			t.Errorf("LatestLock %s = %v, %v; want %v", user, ok, err, want)
		}
	}
	// Rolling back the recent unlock brings u4's old lock back in force: it was kept for that.
	if _, err := s.TransitionEntry(recent.ID, []string{EntryDone}, Step{State: EntryRolledBack}, nil); err != nil {
		t.Fatal(err)
	}
	if e, ok, _ := s.LatestLock("prod", "u4", ""); !ok || e.ID != j.keepEntries[5] {
		t.Errorf("after the unlock's rollback, u4's lock is %v %d", ok, e.ID)
	}

	// A second pass finds nothing more to delete.
	if st, err := s.Purge(); err != nil || st.Entries+st.Requests+st.Secrets != 0 {
		t.Errorf("second purge %+v %v", st, err)
	}
	es, _, _ := s.History(0, 100)
	var ids []uint64
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	want := slices.Sorted(slices.Values(j.keepEntries))
	if !slices.Equal(ids, want) {
		t.Errorf("entries left %v, want %v", ids, want)
	}
}

// dump is every key and value of every bucket, but the mark of the transaction that last
// kept the indexes, which a copy renumbers.
func dump(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.db.View(func(tx kv.Tx) error {
		for _, name := range allBuckets {
			b := tx.Bucket(name)
			if b == nil {
				continue
			}
			out[string(name)+"/seq"] = fmt.Sprint(b.Sequence())
			err := b.ForEach(func(k, v []byte) error {
				if string(name) != string(bucketMeta) || string(k) != string(keyIndexed) {
					out[string(name)+"/"+string(k)] = string(v)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCompactReclaimsPurgedSpace: after a purge, Compact makes the file smaller and keeps
// every record, bucket sequence and index as it was; it refuses while the bot runs.
func TestCompactReclaimsPurgedSpace(t *testing.T) {
	bboltOnly(t)
	c := newClock()
	dir := t.TempDir()
	key, _ := ParseKey(NewKey())
	s, err := Open(dir, Options{Now: c.Now, Retention: 400 * day, Key: key, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	fillOld(t, s)
	reason := strings.Repeat("why ", 200)
	for i := range 3000 {
		e, err := s.BeginEntry(Entry{Action: "grant-role", Args: map[string]string{"user": fmt.Sprint("u", i), "reason": reason}}, "U1")
		if err != nil {
			t.Fatal(err)
		}
		s.TransitionEntry(e.ID, []string{EntryExecuting}, Step{State: EntryDone}, nil)
	}
	c.Add(500 * day)
	s.BeginEntry(Entry{Action: "grant-role"}, "U1") // young, executing
	if st, err := s.Purge(); err != nil || st.Entries < 3000 {
		t.Fatalf("purge %+v %v", st, err)
	}
	want := dump(t, s)

	if _, err := Compact(dir, 50*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("compact while the store is open: %v, want ErrLocked", err)
	}
	s.Close()
	st, err := Compact(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("journal file: %d bytes before, %d after", st.Before, st.After)
	if st.After >= st.Before/2 || st.After == 0 {
		t.Errorf("compact: %d bytes before, %d after", st.Before, st.After)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, FileName+".*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if fi, _ := os.Stat(filepath.Join(dir, FileName)); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	s, err = Open(dir, Options{Now: c.Now, Key: key, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.indexed {
		t.Error("the copy's indexes are not marked as kept: the next start would rebuild them")
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, s); !maps.Equal(got, want) {
		t.Errorf("the copy differs: %d keys, want %d", len(got), len(want))
	}
	s.Close()
}
