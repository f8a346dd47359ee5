package ha_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"mongobot/ha"
	"mongobot/ha/etcdtest"
	"mongobot/store"
)

// BenchmarkFencedTransition sizes the journal-on-etcd to come: one compare-and-set transition
// as an etcd backend would make it (read the record and its ModRevision, then a transaction
// conditioned on that revision and on the leader's term, writing the record back with one
// more history step) on a 3-member etcd embedded in the test, beside today's bbolt journal
// (store.TransitionRequest, fsynced) in the same run on the same disk. Both rates and their
// ratio are reported.
//
//	go test ./ha -run '^$' -bench FencedTransition -benchtime 500x
func BenchmarkFencedTransition(b *testing.B) {
	cl := etcdtest.Start(b, 3)
	c, err := clientv3.New(clientv3.Config{Endpoints: cl.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r, err := ha.Join(b.Context(), ha.Config{Client: c, Prefix: "/bench/", Name: "bench", TTL: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	terms := make(chan ha.Term, 1)
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	go r.Lead(ctx, func(t ha.Term) { terms <- t; <-t.Ctx.Done() })
	term := <-terms
	for _, callers := range []int{1, 50} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			onEtcd := etcdRate(b, c, r, term, callers)
			onBolt := boltRate(b, callers)
			b.ReportMetric(onEtcd, "etcd-transitions/s")
			b.ReportMetric(onBolt, "bbolt-transitions/s")
			b.ReportMetric(onEtcd/onBolt, "ratio")
		})
	}
}

// request is a journal record's size and shape, for the etcd side.
type request struct {
	ID      uint64            `json:"id"`
	Action  string            `json:"action"`
	Args    map[string]string `json:"args"`
	State   string            `json:"state"`
	History []store.Step      `json:"history"`
}

func etcdRate(b *testing.B, c *clientv3.Client, r *ha.Replica, term ha.Term, callers int) float64 {
	ctx := b.Context()
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = fmt.Sprintf("/bench/requests/%d-%d-%d", callers, b.N, i)
		v, _ := json.Marshal(request{ID: uint64(i), Action: "rotate-password", Args: map[string]string{"user": "app"}, State: "pending",
			History: []store.Step{{State: "pending", By: "U1", At: time.Now()}}})
		if _, err := c.Put(ctx, keys[i], string(v)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	parallel(b, b.N, callers, func(i int) error {
		got, err := c.Get(ctx, keys[i])
		if err != nil {
			return err
		}
		var req request
		if err := json.Unmarshal(got.Kvs[0].Value, &req); err != nil {
			return err
		}
		if req.State != "pending" {
			return fmt.Errorf("state %s", req.State)
		}
		req.State = "approved"
		req.History = append(req.History, store.Step{State: "approved", By: "U2", At: time.Now()})
		v, _ := json.Marshal(req)
		_, err = r.Fenced(ctx, term, clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(keys[i]), "=", got.Kvs[0].ModRevision)},
			[]clientv3.Op{clientv3.OpPut(keys[i], string(v))}, nil))
		return err
	})
	return float64(b.N) / time.Since(start).Seconds()
}

func boltRate(b *testing.B, callers int) float64 {
	s, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ids := make([]uint64, b.N)
	for i := range ids {
		req, err := s.CreateRequest(store.Request{Action: "rotate-password", Connector: "prod",
			Args: map[string]string{"user": "app"}, Requester: "U1"}, "pending", "U1")
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = req.ID
	}
	start := time.Now()
	parallel(b, b.N, callers, func(i int) error {
		_, err := s.TransitionRequest(ids[i], []string{"pending"}, store.Step{State: "approved", By: "U2"}, nil)
		return err
	})
	return float64(b.N) / time.Since(start).Seconds()
}

// parallel runs f(0..n-1) on callers goroutines; the first error fails the benchmark.
func parallel(b *testing.B, n, callers int, f func(i int) error) {
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failed := false
			for i := range next { // drained to the end, so that the sender never blocks
				if err := f(i); err != nil && !failed {
					failed = true
					errs <- err
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}
