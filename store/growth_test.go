package store

import (
	"flag"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

var growthEntries = flag.Int("growth.entries", 1000, "journal entries behind BenchmarkGrowth's big journal (and a tenth as many requests)")

// BenchmarkGrowth measures the bot's frequent questions, and Open, on a journal with a long
// history beside an empty one, in the same run: the ratio big/empty is the cost of the
// history, which the indexes are there to keep near 1. Both journals hold the same live set
// (pending requests, temporary actions, deliveries, a lock); the big one also has
// -growth.entries finished entries and a tenth as many decided requests, all written through
// the store's API. Each question's /scan is the big journal answering it by reading every
// record, as before the indexes. Reindex is the one-time rebuild after an upgrade, and
// grows with the journal by design.
//
//	go test ./store -run '^$' -bench Growth -growth.entries 100000
func BenchmarkGrowth(b *testing.B) {
	start := time.Now()
	empty := growthJournal(b, 0)
	big := growthJournal(b, *growthEntries)
	b.Logf("journals built in %v: %d entries and %d requests beside %d and %d",
		time.Since(start).Round(time.Second), big.maxID(bucketEntries), big.maxID(bucketRequests),
		empty.maxID(bucketEntries), empty.maxID(bucketRequests))

	for _, q := range []struct {
		name string
		ask  func(*Store) (int, error)
	}{
		{"PendingRequests", func(s *Store) (int, error) {
			rs, _, err := s.Requests(0, 1<<20, "pending")
			return len(rs), err
		}},
		{"Temporary", func(s *Store) (int, error) { es, err := s.Temporary(); return len(es), err }},
		{"Undelivered", func(s *Store) (int, error) { es, err := s.Undelivered(); return len(es), err }},
		{"LatestLock", func(s *Store) (int, error) {
			_, ok, err := s.LatestLock("prod", "app", "admin")
			if !ok {
				return 0, err
			}
			return 1, err
		}},
	} {
		ask := func(b *testing.B, s *Store) func() {
			return func() {
				if _, err := q.ask(s); err != nil {
					b.Fatal(err)
				}
			}
		}
		// Same answer from both journals, and from the scan: the live set.
		n0, _ := q.ask(empty)
		n1, _ := q.ask(big)
		big.indexed = false
		n2, _ := q.ask(big)
		big.indexed = true
		if n0 != n1 || n1 != n2 || n0 == 0 {
			b.Fatalf("%s: answers differ: %d empty, %d big, %d big by scan", q.name, n0, n1, n2)
		}
		b.Run(q.name, func(b *testing.B) {
			compare(b, ask(b, empty), ask(b, big))
		})
		b.Run(q.name+"/scan", func(b *testing.B) {
			big.indexed = false
			defer func() { big.indexed = true }()
			b.ReportMetric(perOp(b.N, ask(b, big)), "ns/op")
		})
	}

	b.Run("Open", func(b *testing.B) {
		reopen := func(s *Store) func() {
			return func() {
				s.Close()
				o, err := Open(filepath.Dir(s.Path()), growthOptions)
				if err != nil {
					b.Fatal(err)
				}
				*s = *o
			}
		}
		compare(b, reopen(empty), reopen(big))
	})

	b.Run("Reindex", func(b *testing.B) {
		reindex := func(s *Store) func() {
			return func() {
				if _, err := s.Reindex(); err != nil {
					b.Fatal(err)
				}
			}
		}
		compare(b, reindex(empty), reindex(big))
	})
}

// growthOptions skip fsync: the benchmark measures the code, not this machine's disk.
var growthOptions = Options{NoSync: true, Now: func() time.Time { return growthNow }}

var growthNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// growthJournal opens a journal in a temporary folder and writes, through the API, n entries
// of history (rotations, grants made temporary and ended, locks and unlocks of many users,
// deliveries done) and n/10 decided requests, with the live set spread among them.
func growthJournal(b *testing.B, n int) *Store {
	s, err := Open(b.TempDir(), growthOptions)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	must := func(_ any, err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	done := func(e Entry, mutate func(*Entry)) Entry {
		e, err := s.BeginEntry(e, "U1")
		must(nil, err)
		e, err = s.TransitionEntry(e.ID, []string{EntryExecuting}, Step{State: EntryDone}, mutate)
		must(nil, err)
		return e
	}
	user := func(u string) map[string]string { return map[string]string{"user": u, "authdb": "admin"} }
	// The live set: what the questions find, the same in both journals.
	live := []func(){}
	for i := 0; i < 20; i++ {
		live = append(live, func() {
			must(s.CreateRequest(Request{Action: "grant-role", Connector: "prod", Args: user("app")}, "pending", "U1"))
		})
	}
	for i := 0; i < 10; i++ {
		live = append(live, func() {
			done(Entry{Action: "grant-role", Connector: "prod", Args: user(fmt.Sprint("tmp", i))}, func(e *Entry) {
				e.UndoAt = growthNow.Add(time.Hour)
			})
		})
	}
	for i := 0; i < 5; i++ {
		live = append(live, func() {
			done(Entry{Action: "rotate-password", Connector: "prod", Args: user(fmt.Sprint("svc", i)),
				Deliveries: []Delivery{{Target: "vault", State: DeliveryPending}}, DeliverySecret: fmt.Sprint("sec", i)}, nil)
		})
	}
	live = append(live, func() { done(Entry{Action: "lock-user", Connector: "prod", Args: user("app")}, nil) })

	history := func(i int) {
		u := user(fmt.Sprint("u", i%5000))
		switch i % 10 {
		case 0: // a request, decided one way or another, and what it ran
			r, err := s.CreateRequest(Request{Action: "rotate-password", Connector: "prod", Args: u}, "pending", "U1")
			must(nil, err)
			must(s.TransitionRequest(r.ID, []string{"pending"}, Step{State: []string{"done", "denied", "expired"}[i/10%3]}, nil))
			done(Entry{Action: "rotate-password", Connector: "prod", Args: u, RequestID: r.ID}, nil)
		case 1: // a temporary grant, ended
			e := done(Entry{Action: "grant-role", Connector: "prod", Args: u}, func(e *Entry) { e.UndoAt = growthNow })
			must(s.TransitionEntry(e.ID, []string{EntryDone}, Step{State: EntryRolledBack}, nil))
		case 2, 3: // locks and unlocks of other users
			done(Entry{Action: []string{"lock-user", "unlock-user"}[i%2], Connector: "prod", Args: u}, nil)
		case 4: // a delivery, finished
			e := done(Entry{Action: "rotate-password", Connector: "prod", Args: u,
				Deliveries: []Delivery{{Target: "vault", State: DeliveryVerified}}, DeliverySecret: "x"}, nil)
			must(s.FinishDelivery(e.ID, Step{State: "delivered"}, "", nil))
		default:
			done(Entry{Action: "rotate-password", Connector: "prod", Args: u}, nil)
		}
	}
	every := n/len(live) + 1
	for i := 0; i < n; i++ {
		if len(live) > 0 && i%every == 0 {
			live[0]()
			live = live[1:]
		}
		history(i)
	}
	for _, f := range live {
		f()
	}
	return s
}

// perOp runs f n times and returns the mean time of one run, in nanoseconds.
func perOp(n int, f func()) float64 {
	start := time.Now()
	for i := 0; i < n; i++ {
		f()
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

// compare runs empty and big n times each, alternately, so that whatever else the machine
// does weighs on both alike, and reports their mean times and ratio.
func compare(b *testing.B, empty, big func()) {
	var te, tb time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		empty()
		mid := time.Now()
		big()
		te, tb = te+mid.Sub(start), tb+time.Since(mid)
	}
	e, g := float64(te.Nanoseconds())/float64(b.N), float64(tb.Nanoseconds())/float64(b.N)
	b.ReportMetric(g, "ns/op")
	b.ReportMetric(e, "empty-ns/op")
	b.ReportMetric(g/e, "big/empty")
}
