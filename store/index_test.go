package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"mongobot/kv"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The model check's universe: few connectors and users, so that locks, unlocks and states
// collide often.
var (
	modelConns = []string{"prod", "stage"}
	modelUsers = []string{"app", "etl", "ops"}
	modelDBs   = []string{"", "admin", "app"} // "" is read as "admin"
	// modelStates are the request state sets the bot and the tests ask for.
	modelStates = [][]string{{"pending"}, {"approved", "executing"}, {"pending", "approved"}, {"denied"}, {"done", "pending", "failed"}, {"nosuch"}}
)

// answers is everything the indexes answer, as JSON so that a difference prints readably.
func answers(t *testing.T, s *Store) string {
	t.Helper()
	var b strings.Builder
	add := func(name string, v any, err error) {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		raw, _ := json.Marshal(v)
		fmt.Fprintf(&b, "%s: %s\n", name, raw)
	}
	for _, states := range modelStates {
		// Whole listings, page by page (the pages' next may differ: the scan cannot tell its
		// last page from a full one), then one first page as the bot asks for it.
		for _, limit := range []int{1, 3, 1 << 20} {
			var all []Request
			for before := uint64(0); ; {
				rs, next, err := s.Requests(before, limit, states...)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, rs...)
				if next == 0 {
					break
				}
				before = next
			}
			add(fmt.Sprintf("requests %v by %d", states, limit), ids(all), nil)
		}
		rs, _, err := s.Requests(0, 5, states...)
		add(fmt.Sprintf("requests %v first page", states), rs, err)
		rs, _, err = s.Requests(4, 2, states...)
		add(fmt.Sprintf("requests %v below 4", states), rs, err)
	}
	es, err := s.Temporary()
	add("temporary", es, err)
	es, err = s.Undelivered()
	add("undelivered", es, err)
	es, err = s.Executing()
	add("executing", es, err)
	for _, c := range modelConns {
		for _, u := range modelUsers {
			for _, db := range modelDBs {
				e, ok, err := s.LatestLock(c, u, db)
				add(fmt.Sprintf("lock %s/%s@%s", c, u, db), map[string]any{"ok": ok, "entry": e}, err)
			}
		}
	}
	return b.String()
}

func ids(rs []Request) []uint64 {
	out := []uint64{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// sameAnswers fails unless the indexes answer what reading every record answers.
func sameAnswers(t *testing.T, s *Store, when string) {
	t.Helper()
	if !s.indexed {
		t.Fatalf("%s: the store does not use its indexes", when)
	}
	indexed := answers(t, s)
	s.indexed = false
	scanned := answers(t, s)
	s.indexed = true
	if indexed != scanned {
		t.Fatalf("%s: the indexes answer\n%s\nreading every record answers\n%s", when, indexed, scanned)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
}

// randomWrites makes n random writes through the store's API: requests created, voted on,
// decided, expired and run; entries begun, finished, made temporary and ended, delivering
// and delivered, rolled back, run by a schedule; locks and unlocks; purges. Many of them
// fail a compare-and-set, as racing callers do, and must leave the indexes as they were.
func randomWrites(t *testing.T, s *Store, c *clock, rng *rand.Rand, n int) {
	t.Helper()
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	reqs := func() uint64 { return uint64(rng.IntN(int(s.maxID(bucketRequests))+1)) + 1 }
	ents := func() uint64 { return uint64(rng.IntN(int(s.maxID(bucketEntries))+1)) + 1 }
	var schedule uint64
	for i := 0; i < n; i++ {
		c.Add(time.Duration(rng.IntN(90)) * time.Minute)
		var err error
		switch op := rng.IntN(14); op {
		case 0, 1:
			_, err = s.CreateRequest(Request{Action: "lock-user", Connector: pick(modelConns),
				Args: map[string]string{"user": pick(modelUsers)}, Requester: "U1", ExpiresAt: c.Now().Add(time.Hour)}, "pending", "U1")
		case 2:
			_, err = s.UpdateRequest(reqs(), func(r *Request) error {
				r.Votes = append(r.Votes, Vote{User: "U2", Approve: true, At: c.Now()})
				return nil
			})
		case 3:
			next := pick([]string{"approved", "denied", "expired", "cancelled"})
			_, err = s.TransitionRequest(reqs(), []string{"pending"}, Step{State: next, By: "U2"}, nil)
		case 4:
			id := reqs()
			if _, err = s.TransitionRequest(id, []string{"approved"}, Step{State: "executing"}, nil); err == nil {
				_, err = s.TransitionRequest(id, []string{"executing"}, Step{State: pick([]string{"done", "failed", "executing"})}, nil)
			}
		case 5, 6, 7:
			e := Entry{Action: pick([]string{"lock-user", "unlock-user", "lock-user", "grant-role", "rotate-password"}),
				Connector: pick(modelConns), Args: map[string]string{"user": pick(modelUsers)}, Requester: "U1"}
			if db := pick(modelDBs); db != "" {
				e.Args["authdb"] = db
			}
			if rng.IntN(4) == 0 {
				e.Deliveries = []Delivery{{Target: "vault", State: DeliveryPending}}
				e.DeliverySecret, e.DeliveryOwner = fmt.Sprintf("sec-%d", i), "U1"
			}
			_, err = s.BeginEntry(e, "U1")
		case 8:
			state := pick([]string{EntryDone, EntryDone, EntryFailed, EntryUnknown})
			temporary := rng.IntN(3) == 0
			_, err = s.TransitionEntry(ents(), []string{EntryExecuting}, Step{State: state}, func(e *Entry) {
				if temporary {
					e.UndoAt = c.Now().Add(time.Duration(rng.IntN(600)) * time.Minute)
				}
			})
		case 9: // a temporary action ended, or its end failed once and was put off
			_, err = s.UpdateEntry(ents(), func(e *Entry) error {
				if rng.IntN(2) == 0 {
					e.UndoAt = time.Time{}
				} else if !e.UndoAt.IsZero() {
					e.UndoAt, e.UndoTries = e.UndoAt.Add(time.Minute), e.UndoTries+1
				}
				return nil
			})
		case 10:
			of := ents()
			var r Entry
			if r, err = s.BeginRollback(of, Entry{Action: "rollback", Connector: "prod", Requester: "U2"}, "U2"); err == nil {
				switch rng.IntN(3) {
				case 0:
					_, err = s.TransitionEntry(r.ID, []string{EntryExecuting}, Step{State: EntryDone}, nil)
					if err == nil {
						_, err = s.TransitionEntry(of, []string{EntryDone}, Step{State: EntryRolledBack}, nil)
					}
				case 1:
					if _, err = s.TransitionEntry(r.ID, []string{EntryExecuting}, Step{State: EntryFailed}, nil); err == nil {
						err = s.ReleaseRollback(of, r.ID)
					}
				}
			}
		case 11:
			if rng.IntN(2) == 0 {
				_, err = s.FinishDelivery(ents(), Step{State: "delivered"}, "", nil)
			} else {
				_, err = s.DropDelivery(ents(), DeliverySuperseded, Step{State: "superseded"})
			}
		case 12:
			if schedule == 0 {
				var sc Schedule
				sc, err = s.CreateSchedule(Schedule{Connector: "prod", User: "app", DB: "admin", Spec: "@hourly", Owner: "U1"}, "U1")
				schedule = sc.ID
			} else {
				_, err = s.BeginRun(schedule, c.Now().Truncate(time.Hour), false, Entry{Action: "rotate-password", Connector: "prod",
					Args: map[string]string{"user": "app", "authdb": "admin"}}, "schedule")
			}
		case 13:
			if rng.IntN(5) == 0 {
				_, err = s.Purge()
			}
		}
		if err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) {
			t.Fatalf("write %d: %v", i, err)
		}
	}
}

// maxID is the last id bucket b gave.
func (s *Store) maxID(b []byte) uint64 {
	var n uint64
	s.db.View(func(tx kv.Tx) error { n = tx.Bucket(b).Sequence(); return nil })
	return n
}

// openModel opens a store on the run's backend without fsync (the model check measures no
// disk) and with a retention, so that Purge deletes entries too.
func openModel(t *testing.T, dir string, c *clock) *Store {
	t.Helper()
	return openModelWith(t, openOpts, dir, c)
}

// openModelWith is openModel with the opener given: Open for a test of the bbolt file.
func openModelWith(t *testing.T, open func(string, Options) (*Store, error), dir string, c *clock) *Store {
	t.Helper()
	s, err := open(dir, Options{Now: c.Now, NoSync: true, Retention: 5 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Every index answers exactly what reading every record answers, after any sequence of
// writes: a model check over random sequences, the scan being the model.
func TestIndexesAnswerAsTheScan(t *testing.T) {
	// etcd answers each read over the network (and, under -race, runs instrumented in
	// this process): half the seeds there.
	seeds := uint64(4)
	if etcdClient != nil {
		seeds = 2
	}
	t.Logf("%d seeds x 12 rounds x 40 writes", seeds)
	for seed := uint64(1); seed <= seeds; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			c := newClock()
			s := openModel(t, t.TempDir(), c)
			rng := rand.New(rand.NewPCG(seed, 13))
			used := map[string]bool{}
			for round := 0; round < 12; round++ {
				randomWrites(t, s, c, rng, 40)
				sameAnswers(t, s, fmt.Sprintf("round %d", round))
				s.db.View(func(tx kv.Tx) error {
					for _, b := range indexBuckets {
						used[string(b)] = used[string(b)] || tx.Bucket(b).KeyN() > 0
					}
					return nil
				})
			}
			// The comparison meant something: each index held keys at some point.
			for _, b := range indexBuckets {
				if !used[string(b)] {
					t.Errorf("index %s never held a key: the writes do not exercise it", b)
				}
			}
		})
	}
}

// A journal written without the indexes (by the version before them) is read as it is by a
// read-only open, which reads every record instead, and gets its indexes at the next writable
// start, with the same answers.
func TestOpenRebuildsMissingIndexes(t *testing.T) {
	bboltOnly(t)
	c := newClock()
	dir := t.TempDir()
	s := openModelWith(t, Open, dir, c)
	randomWrites(t, s, c, rand.New(rand.NewPCG(7, 7)), 300)
	want := answers(t, s)
	// The previous version's file: no index but the executing one, no mark.
	err := s.db.Update(func(tx kv.Tx) error {
		for _, b := range indexBuckets[1:] {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Delete(keyIndexed)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	r, err := Open(dir, Options{ReadOnly: true, Now: c.Now})
	if err != nil {
		t.Fatalf("read-only open of a journal without indexes: %v", err)
	}
	if r.indexed {
		t.Fatal("a read-only open uses indexes the file does not have")
	}
	if got := answers(t, r); got != want {
		t.Fatalf("read-only, without indexes:\n%s\nwant\n%s", got, want)
	}
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	r.Close()

	s = openModelWith(t, Open, dir, c)
	if got := answers(t, s); got != want {
		t.Fatalf("after the rebuild at Open:\n%s\nwant\n%s", got, want)
	}
	sameAnswers(t, s, "after the rebuild at Open")
	s.Close()
	// The rebuild was committed: the next read-only open trusts it.
	r, err = Open(dir, Options{ReadOnly: true, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.indexed {
		t.Fatal("a read-only open after a writable one does not use the indexes")
	}
}

// A write that did not keep the indexes (an older build, started again after an upgrade was
// rolled back) is noticed at the next Open, which rebuilds them.
func TestOpenRebuildsIndexesAfterAForeignWrite(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s := openModel(t, dir, c)
	r, err := s.CreateRequest(Request{Action: "lock-user", Connector: "prod"}, "pending", "U1")
	if err != nil {
		t.Fatal(err)
	}
	// What an older build's expiry pass writes: the record alone, without its index keys.
	// (Tagged here, so that this test is about the indexes: an untagged record is refused
	// altogether, see tags_test.go.)
	err = s.db.Update(func(tx kv.Tx) error {
		r.State = "expired"
		raw, _ := json.Marshal(r)
		value, err := s.tag(tx, bucketRequests, u64(r.ID), raw)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketRequests).Put(u64(r.ID), value)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), string(bucketRequestStates)) {
		t.Fatalf("Check after a write that skipped the index: %v", err)
	}
	s.Close()
	s = openModel(t, dir, c)
	if rs, _, err := s.Requests(0, 10, "pending"); err != nil || len(rs) != 0 {
		t.Fatalf("pending after reopening: %v %v", ids(rs), err)
	}
	sameAnswers(t, s, "after reopening")
}

// Check reports an index that disagrees with the records, whichever way; Reindex mends it,
// with the same answers as before.
func TestReindexMendsABrokenIndex(t *testing.T) {
	c := newClock()
	s := openModel(t, t.TempDir(), c)
	writes := 400
	if etcdClient != nil {
		writes = 150 // each rebuild below reads every record over the network
	}
	t.Logf("%d random writes", writes)
	randomWrites(t, s, c, rand.New(rand.NewPCG(3, 3)), writes)
	want := answers(t, s)
	for _, b := range indexBuckets {
		for _, breakIt := range []struct {
			how string
			fn  func(kv.Bucket) error
		}{
			{"a key lost", func(ix kv.Bucket) error {
				k, _ := ix.Cursor().First()
				if k == nil {
					return nil
				}
				return ix.Delete(k)
			}},
			{"a key too many", func(ix kv.Bucket) error {
				return ix.Put(append([]byte("bogus"), u64(99999)...), nil)
			}},
			{"the index gone", func(kv.Bucket) error { return nil }},
		} {
			before := 0
			err := s.db.Update(func(tx kv.Tx) error {
				before = tx.Bucket(b).KeyN()
				if breakIt.how == "the index gone" {
					return tx.DeleteBucket(b)
				}
				return breakIt.fn(tx.Bucket(b))
			})
			if err != nil {
				t.Fatal(err)
			}
			if breakIt.how == "a key lost" && before == 0 {
				continue
			}
			if err := s.Check(); err == nil || !strings.Contains(err.Error(), "index "+string(b)) {
				t.Fatalf("%s, %s: Check says %v", b, breakIt.how, err)
			}
			st, err := s.Reindex()
			if err != nil {
				t.Fatal(err)
			}
			if got := answers(t, s); got != want {
				t.Fatalf("%s, %s: after Reindex\n%s\nwant\n%s", b, breakIt.how, got, want)
			}
			sameAnswers(t, s, fmt.Sprintf("%s, %s", b, breakIt.how))
			if st.Entries == 0 || st.Requests == 0 || len(st.Indexes) != len(indexBuckets) {
				t.Fatalf("Reindex says %+v", st)
			}
		}
	}
}

// LatestLock keeps the meaning unlock-user gave the journal: the latest done lock or unlock
// of the user decides; a rolled-back lock gives way to the one before it.
func TestLatestLock(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	lock := func(action, db string) uint64 {
		t.Helper()
		args := map[string]string{"user": "app"}
		if db != "" {
			args["authdb"] = db
		}
		e, err := s.BeginEntry(Entry{Action: action, Connector: "prod", Args: args}, "U1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.TransitionEntry(e.ID, []string{EntryExecuting}, Step{State: EntryDone}, nil); err != nil {
			t.Fatal(err)
		}
		return e.ID
	}
	latest := func(db string) uint64 {
		t.Helper()
		e, ok, err := s.LatestLock("prod", "app", db)
		if err != nil || ok != (e.ID != 0) {
			t.Fatalf("LatestLock: %v %v %v", e.ID, ok, err)
		}
		return e.ID
	}
	if latest("admin") != 0 {
		t.Fatal("a lock out of nothing")
	}
	first := lock("lock-user", "")
	if latest("admin") != first || latest("") != first || latest("app") != 0 {
		t.Fatalf("after a lock: %d", latest("admin"))
	}
	lock("unlock-user", "admin")
	if latest("admin") != 0 {
		t.Fatal("an unlocked lock is still in force")
	}
	second := lock("lock-user", "admin")
	if latest("admin") != second {
		t.Fatal("the newer lock does not win")
	}
	if _, err := s.TransitionEntry(second, []string{EntryDone}, Step{State: EntryRolledBack}, nil); err != nil {
		t.Fatal(err)
	}
	if latest("admin") != 0 {
		t.Fatal("after the latest lock was rolled back, the unlock before it must decide")
	}
	if _, ok, _ := s.LatestLock("stage", "app", "admin"); ok {
		t.Fatal("a lock on another connector")
	}
}

// Every write goes through Store.update, which marks the indexes kept: a bare db.Update
// would make the next Open rebuild them all, reading the whole journal.
func TestWritesMarkTheIndexes(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	bare := regexp.MustCompile(`\.db\.Update\(`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			if bare.MatchString(line) && !strings.HasPrefix(strings.TrimSpace(line), "//") {
				if fn := enclosing(string(src), i); fn != "update" && fn != "migrateTo" && f != "boltkv.go" {
					t.Errorf("%s:%d: s.db.Update in %s: use s.update", f, i+1, fn)
				}
			}
		}
	}
}

// enclosing names the function declared last before line i of src.
func enclosing(src string, i int) string {
	lines := strings.Split(src, "\n")
	decl := regexp.MustCompile(`^func (?:\([^)]*\) )?(\w+)`)
	for ; i >= 0; i-- {
		if m := decl.FindStringSubmatch(lines[i]); m != nil {
			return m[1]
		}
	}
	return ""
}
