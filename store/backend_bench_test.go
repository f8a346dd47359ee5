package store

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"mongobot/ha"
	"mongobot/ha/etcdtest"
)

// BenchmarkBackends measures the journal's compare-and-set transitions on both backends in
// the same run: bbolt (one fsynced file) and etcd (3 embedded members on loopback, each
// fsyncing its own WAL on the same disk, one Raft round per commit). Every op is one
// request pending -> approved, through the store's own TransitionRequest.
//
//	go test ./store -run '^$' -bench Backends -benchtime 1000x
func BenchmarkBackends(b *testing.B) {
	dir, err := os.MkdirTemp("", "bench-etcd-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cl, err := etcdtest.Launch(dir, 3)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	c, err := ha.Dial(ha.ClientConfig{Endpoints: cl.Endpoints()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	r, err := ha.Join(ctx, ha.Config{Client: c, Prefix: "/bench-session/", Name: "bench", TTL: time.Minute})
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	run := 0
	onEtcd := func(b *testing.B) (*Store, error) {
		run++
		db := ha.NewKV(c, fmt.Sprintf("/bench/%d/", run), ha.KVOptions{Session: r, Timeout: time.Minute})
		return OpenShared(db, b.TempDir(), "etcd", Options{Key: testKey})
	}
	onBolt := func(b *testing.B) (*Store, error) { return Open(b.TempDir(), Options{}) }
	for _, callers := range []int{1, 50} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			bolt := rateOn(b, onBolt, callers)
			etcd := rateOn(b, onEtcd, callers)
			b.ReportMetric(bolt, "bbolt-transitions/s")
			b.ReportMetric(etcd, "etcd-transitions/s")
			b.ReportMetric(etcd/bolt, "ratio")
		})
	}
}

// rateOn measures compare-and-set transitions (a request pending -> approved each) per
// second on the store open makes.
func rateOn(b *testing.B, open func(*testing.B) (*Store, error), callers int) float64 {
	s, err := open(b)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ids := make([]uint64, b.N)
	for i := range ids {
		r, err := s.CreateRequest(Request{Action: "rotate-password", Connector: "prod",
			Args: map[string]string{"user": "app"}, Requester: "U1"}, "pending", "U1")
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = r.ID
	}
	b.ResetTimer()
	start := time.Now()
	parallel(b.N, callers, func(i int) error {
		_, err := s.TransitionRequest(ids[i], []string{"pending"}, Step{State: "approved", By: "U2"}, nil)
		return err
	})
	return float64(b.N) / time.Since(start).Seconds()
}
