package bot

import (
	"sync"
	"testing"
)

// TestKeyedPrunes checks that per-card and per-secret locks do not pile up: a key's mutex
// exists only while someone holds or waits for it.
func TestKeyedPrunes(t *testing.T) {
	var k keyed
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			unlock := k.lock(i % 7)
			unlock()
		})
	}
	wg.Wait()
	if s := k.size(); s != 0 {
		t.Fatalf("%d mutexes left after every holder let go", s)
	}
}
