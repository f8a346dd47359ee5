package ha_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mongobot/ha"
	"mongobot/ha/etcdtest"
	"mongobot/kv"
)

// The store's own suite runs on KV (STORE_BACKEND=etcd go test ./store); these are the
// properties it leans on, each on the real embedded 3-member cluster.
func TestKV(t *testing.T) {
	cl := etcdtest.Start(t, 3)
	bucket := []byte("b")
	setup := func(t *testing.T, d kv.DB) {
		t.Helper()
		if err := d.Update(func(tx kv.Tx) error { _, err := tx.CreateBucketIfNotExists(bucket); return err }); err != nil {
			t.Fatal(err)
		}
	}

	// A commit whose reply is lost is read back, never guessed: writers on three members
	// whose every other applied commit loses its reply still count every increment once.
	// Without the read-back, a lost reply is either an error for a write that happened
	// (the caller says "nothing was done") or, run again, an increment counted twice.
	t.Run("lost replies", func(t *testing.T) {
		const writers, each = 3, 20
		var lost sync.Map
		dbs := make([]kv.DB, writers)
		for i := range dbs {
			var n int
			var mu sync.Mutex
			dbs[i] = ha.NewKV(client(t, cl.Endpoint(i)), "/kv-lost/", ha.KVOptions{Timeout: time.Minute, LoseReply: func() bool {
				mu.Lock()
				defer mu.Unlock()
				n++
				if n%2 == 0 {
					lost.Store(fmt.Sprint(i, n), true)
					return true
				}
				return false
			}})
		}
		setup(t, dbs[0])
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for i := range writers {
			wg.Go(func() {
				for range each {
					errs <- dbs[i].Update(func(tx kv.Tx) error {
						b := tx.Bucket(bucket)
						n := uint64(0)
						if v := b.Get([]byte("n")); v != nil {
							n = binary.BigEndian.Uint64(v)
						}
						return b.Put([]byte("n"), binary.BigEndian.AppendUint64(nil, n+1))
					})
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("a write whose reply was lost: %v", err)
			}
		}
		nLost := 0
		lost.Range(func(_, _ any) bool { nLost++; return true })
		var got uint64
		dbs[0].View(func(tx kv.Tx) error { got = binary.BigEndian.Uint64(tx.Bucket(bucket).Get([]byte("n"))); return nil })
		if got != writers*each || nLost < writers*each/2-writers {
			t.Fatalf("counter %d after %d increments, %d of them with their reply lost", got, writers*each, nLost)
		}
		t.Logf("%d increments, %d replies lost and read back: counted once each", got, nLost)
	})

	// Writers on three members, each reading a counter and writing it back plus one: with
	// serializable transactions not one increment is lost, and each writer's retries are
	// invisible to it.
	t.Run("serializable increments", func(t *testing.T) {
		const writers, each = 3, 30
		dbs := make([]kv.DB, writers)
		for i := range dbs {
			dbs[i] = ha.NewKV(client(t, cl.Endpoint(i)), "/kv-inc/", ha.KVOptions{Timeout: time.Minute})
		}
		setup(t, dbs[0])
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					err := dbs[i].Update(func(tx kv.Tx) error {
						b := tx.Bucket(bucket)
						n := uint64(0)
						if v := b.Get([]byte("n")); v != nil {
							n = binary.BigEndian.Uint64(v)
						}
						return b.Put([]byte("n"), binary.BigEndian.AppendUint64(nil, n+1))
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var got uint64
		dbs[1].View(func(tx kv.Tx) error { got = binary.BigEndian.Uint64(tx.Bucket(bucket).Get([]byte("n"))); return nil })
		if got != writers*each {
			t.Fatalf("counter %d after %d increments", got, writers*each)
		}
	})

	// A transaction sees its own writes and deletions through its cursors, merged with the
	// snapshot's keys (more than a page of them), forwards, backwards and by Seek, exactly
	// as a model of sorted keys does.
	t.Run("cursors see own writes", func(t *testing.T) {
		d := ha.NewKV(client(t, cl.Endpoints()...), "/kv-cursor/", ha.KVOptions{})
		setup(t, d)
		model := map[string]string{}
		rng := rand.New(rand.NewPCG(1, 2))
		key := func() string { return fmt.Sprintf("k%03d", rng.IntN(400)) }
		for round := range 6 {
			err := d.Update(func(tx kv.Tx) error {
				b := tx.Bucket(bucket)
				own := maps(model)
				for range 100 {
					k := key()
					if rng.IntN(3) == 0 {
						delete(own, k)
						if err := b.Delete([]byte(k)); err != nil {
							return err
						}
					} else {
						v := fmt.Sprint(round, rng.Int())
						own[k] = v
						if err := b.Put([]byte(k), []byte(v)); err != nil {
							return err
						}
					}
				}
				if err := sameView(b, own); err != nil {
					return fmt.Errorf("inside the transaction: %w", err)
				}
				model = own
				return nil
			})
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			err = d.View(func(tx kv.Tx) error { return sameView(tx.Bucket(bucket), model) })
			if err != nil {
				t.Fatalf("round %d, after commit: %v", round, err)
			}
		}
		if len(model) <= 100 {
			t.Fatalf("only %d keys: the cursors never crossed a page", len(model))
		}
	})

	// A commit conditioned on a term that has ended is refused with ErrNotLeader, and
	// nothing of it is written.
	t.Run("fenced by the term", func(t *testing.T) {
		c := client(t, cl.Endpoints()...)
		d := ha.NewKV(c, "/kv-fence/", ha.KVOptions{})
		setup(t, d)
		r := join(t, c, "fenced")
		began := make(chan ha.Term, 1)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.Lead(ctx, func(term ha.Term) { began <- term; <-term.Ctx.Done() })
		}()
		term := <-began
		fenced := d.Fenced(term)
		write := func(v string) error {
			return fenced.Update(func(tx kv.Tx) error { return tx.Bucket(bucket).Put([]byte("w"), []byte(v)) })
		}
		if err := write("in term"); err != nil {
			t.Fatalf("a write in the term: %v", err)
		}
		cancel()
		<-done
		r.Close()
		if err := write("after"); !errors.Is(err, ha.ErrNotLeader) {
			t.Fatalf("a write after the term: %v; want ErrNotLeader", err)
		}
		d.View(func(tx kv.Tx) error {
			if got := string(tx.Bucket(bucket).Get([]byte("w"))); got != "in term" {
				t.Errorf("the value is %q after the refused write", got)
			}
			return nil
		})
	})

	// A transaction larger than the cluster accepts is refused in words before it is sent.
	t.Run("too large", func(t *testing.T) {
		d := ha.NewKV(client(t, cl.Endpoints()...), "/kv-large/", ha.KVOptions{MaxOps: 10})
		setup(t, d)
		err := d.Update(func(tx kv.Tx) error {
			for i := range 20 {
				tx.Bucket(bucket).Put([]byte{byte(i)}, nil)
			}
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "--max-txn-ops") {
			t.Fatalf("a transaction of 21 operations with MaxOps 10: %v", err)
		}
	})

	// An expiring key is gone once its lease ends, with nothing sweeping it.
	t.Run("expiring", func(t *testing.T) {
		d := ha.NewKV(client(t, cl.Endpoints()...), "/kv-expire/", ha.KVOptions{})
		setup(t, d)
		err := d.Update(func(tx kv.Tx) error {
			return tx.Bucket(bucket).(kv.Expiring).PutExpiring([]byte("e"), []byte("x"), 2*time.Second)
		})
		if err != nil {
			t.Fatal(err)
		}
		present := func() (ok bool) {
			d.View(func(tx kv.Tx) error { ok = tx.Bucket(bucket).Get([]byte("e")) != nil; return nil })
			return ok
		}
		if !present() {
			t.Fatal("the key is not there after its commit")
		}
		waitFor(t, "the lease to end", 10*time.Second, func() bool { return !present() })
	})
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// sameView compares b, walked every way a cursor can, with the model.
func sameView(b kv.Bucket, model map[string]string) error {
	keys := make([]string, 0, len(model))
	for k := range model {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var fwd, back []string
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if model[string(k)] != string(v) {
			return fmt.Errorf("key %s is %q, want %q", k, v, model[string(k)])
		}
		fwd = append(fwd, string(k))
	}
	for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
		back = append(back, string(k))
	}
	slices.Reverse(back)
	if !slices.Equal(fwd, keys) || !slices.Equal(back, keys) {
		return fmt.Errorf("forwards %d keys, backwards %d, want %d", len(fwd), len(back), len(keys))
	}
	for _, probe := range []string{"k000", "k150", "k15", "k399", "k4", "a"} {
		i, _ := slices.BinarySearch(keys, probe)
		k, _ := c.Seek([]byte(probe))
		if (i == len(keys) && k != nil) || (i < len(keys) && !bytes.Equal(k, []byte(keys[i]))) {
			return fmt.Errorf("Seek(%s) = %s", probe, k)
		}
	}
	if n := b.KeyN(); n != len(keys) {
		return fmt.Errorf("KeyN %d, want %d", n, len(keys))
	}
	return nil
}
