package bot

import "sync"

// keyed is a set of mutexes, one per key, that exist only while someone holds or waits for
// them: per-card and per-secret locks without a map that grows for ever.
type keyed struct {
	mu sync.Mutex
	m  map[any]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	n int // holders and waiters
}

// lock takes the mutex of k and returns its unlock.
func (k *keyed) lock(key any) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[any]*keyedLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyedLock{}
		k.m[key] = l
	}
	l.n++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.n--; l.n == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// size is how many keys have a mutex now (for tests).
func (k *keyed) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}
