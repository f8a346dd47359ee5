package store

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkTransition measures the journal's compare-and-set transitions beside bbolt's raw
// commit rate, in the same run on the same disk, and reports both and their ratio. Every op
// is one committed (fsynced) read-write transaction. Goal: ratio >= 0.5.
//
//	go test ./store -run '^$' -bench Transition -benchtime 2000x
func BenchmarkTransition(b *testing.B) {
	for _, callers := range []int{1, 50} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			journal := journalRate(b, callers)
			raw := rawRate(b, callers)
			b.ReportMetric(journal, "transitions/s")
			b.ReportMetric(raw, "raw-commits/s")
			b.ReportMetric(journal/raw, "ratio")
		})
	}
}

func journalRate(b *testing.B, callers int) float64 {
	return rateOn(b, func(b *testing.B) (*Store, error) { return Open(b.TempDir(), Options{}) }, callers)
}

func rawRate(b *testing.B, callers int) float64 {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err })
	val := make([]byte, 300) // about the size of an encoded request
	start := time.Now()
	parallel(b.N, callers, func(i int) error {
		return db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put(u64(uint64(i)), val) })
	})
	return float64(b.N) / time.Since(start).Seconds()
}

// parallel runs f(0..n-1) on callers goroutines.
func parallel(n, callers int, f func(i int) error) {
	var wg sync.WaitGroup
	next := make(chan int)
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					panic(err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}
