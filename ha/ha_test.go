package ha_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"mongobot/ha"
	"mongobot/ha/etcdtest"
)

// Every test runs on a real 3-member etcd cluster, embedded, on loopback ports.

func client(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func join(t *testing.T, c *clientv3.Client, name string) *ha.Replica {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, err := ha.Join(ctx, ha.Config{Client: c, Prefix: "/mongobot-test/", Name: name, TTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// group is replicas campaigning, each on its own client to its own member. It records every
// term as it runs (when it began and ended, by the test's clock) and counts the fenced writes
// etcd accepted.
type group struct {
	mu      sync.Mutex
	rs      []*ha.Replica
	leading map[string]bool
	overlap []string
	terms   map[string]ha.Term // each replica's latest term
	order   []string
	writes  atomic.Int64
	wg      sync.WaitGroup
}

func startGroup(t *testing.T, cl *etcdtest.Cluster, n int) *group {
	g := &group{leading: map[string]bool{}, terms: map[string]ha.Term{}}
	ctx, cancel := context.WithCancel(t.Context())
	for i := range n {
		r := join(t, client(t, cl.Endpoint(i)), fmt.Sprintf("replica-%d", i))
		g.rs = append(g.rs, r)
		g.wg.Add(1)
		go func() { defer g.wg.Done(); r.Lead(ctx, g.lead(r)) }()
	}
	t.Cleanup(func() { cancel(); g.wg.Wait() })
	return g
}

func (g *group) lead(r *ha.Replica) func(ha.Term) {
	return func(term ha.Term) {
		g.mu.Lock()
		for other, on := range g.leading {
			if on && other != r.Name() {
				g.overlap = append(g.overlap, fmt.Sprintf("%s began a term while %s was in one", r.Name(), other))
			}
		}
		g.leading[r.Name()] = true
		g.terms[r.Name()] = term
		g.order = append(g.order, r.Name())
		g.mu.Unlock()
		// Timer work: a fenced write every 20 ms until the term ends.
		for term.Ctx.Err() == nil {
			ctx, cancel := context.WithTimeout(term.Ctx, time.Second)
			_, err := r.Fenced(ctx, term, clientv3.OpPut("/mongobot-test/work", r.Name()))
			cancel()
			if err == nil {
				g.writes.Add(1)
			}
			select {
			case <-term.Ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
		g.mu.Lock()
		g.leading[r.Name()] = false
		g.mu.Unlock()
	}
}

// waitLeader waits for one replica other than not to lead, and returns it.
func (g *group) waitLeader(t *testing.T, not *ha.Replica) *ha.Replica {
	t.Helper()
	var leader *ha.Replica
	waitFor(t, "a leader", 20*time.Second, func() bool {
		l := g.leaders()
		if len(l) == 1 && l[0] != not {
			leader = l[0]
			return true
		}
		return false
	})
	return leader
}

// leaders are the replicas in a term now.
func (g *group) leaders() (out []*ha.Replica) {
	for _, r := range g.rs {
		if r.Leading() {
			out = append(out, r)
		}
	}
	return out
}

func (g *group) check(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.overlap) > 0 {
		t.Fatalf("two terms at once: %v", g.overlap)
	}
	t.Logf("terms in order: %v; fenced writes accepted: %d", g.order, g.writes.Load())
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Exactly one of three replicas leads; when it leaves, another takes over, and the old term's
// fence refuses a write made with it afterwards, as from a process that was paused.
func TestOneLeaderAndFencing(t *testing.T) {
	cl := etcdtest.Start(t, 3)
	g := startGroup(t, cl, 3)
	first := g.waitLeader(t, nil)
	if who, err := first.Leader(t.Context()); err != nil || who != first.Name() {
		t.Fatalf("etcd names %q (%v) as leader, not %s", who, err, first.Name())
	}
	waitFor(t, "fenced writes", 5*time.Second, func() bool { return g.writes.Load() > 5 })
	g.mu.Lock()
	old := g.terms[first.Name()]
	g.mu.Unlock()
	first.Close()
	second := g.waitLeader(t, first)
	if _, err := second.Fenced(t.Context(), old, clientv3.OpPut("/mongobot-test/work", "stale")); !errors.Is(err, ha.ErrNotLeader) {
		t.Fatalf("a write fenced by the ended term: %v; want ErrNotLeader", err)
	}
	g.check(t)
}

// The leader's etcd member dies: its replica can no longer renew its lease, and ends its
// term before the lease expires, so before another replica can win; one of the replicas on
// the two remaining members leads next. The group keeps working on 2 of 3 members.
func TestLeaderCutOffStepsDownFirst(t *testing.T) {
	cl := etcdtest.Start(t, 3)
	g := startGroup(t, cl, 3)
	first := g.waitLeader(t, nil)
	var idx int
	fmt.Sscanf(first.Name(), "replica-%d", &idx)
	cl.Stop(idx)
	waitFor(t, "the cut-off leader to step down", 5*time.Second, func() bool { return !first.Leading() })
	g.waitLeader(t, first)
	before := g.writes.Load()
	waitFor(t, "fenced writes by the new leader", 5*time.Second, func() bool { return g.writes.Load() > before+5 })
	g.check(t)
	cl.Restart(idx)
}

// A claim is held by one replica only; it is released when its holder's session ends.
func TestClaims(t *testing.T) {
	cl := etcdtest.Start(t, 3)
	a := join(t, client(t, cl.Endpoints()...), "replica-a")
	b := join(t, client(t, cl.Endpoints()...), "replica-b")
	ctx := t.Context()
	// Ten replicas' worth of racing claims on one key: exactly one wins.
	var won atomic.Int64
	var wg sync.WaitGroup
	for i := range 10 {
		r := a
		if i%2 == 1 {
			r = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.Claim(ctx, "entry/42"); err == nil {
				won.Add(1)
			} else if !errors.Is(err, ha.ErrClaimed) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := won.Load(); n != 1 {
		t.Fatalf("%d claims succeeded; want one", n)
	}
	holder, other := a, b
	if _, err := b.Claim(ctx, "entry/42"); strings.Contains(fmt.Sprint(err), "this replica holds") {
		holder, other = b, a // a claim is not taken twice, even by its holder
	}
	_, err := other.Claim(ctx, "entry/42")
	if !errors.Is(err, ha.ErrClaimed) || !strings.Contains(err.Error(), holder.Name()) {
		t.Fatalf("the other replica's claim: %v; want ErrClaimed naming %s", err, holder.Name())
	}
	holder.Close() // the holder dies: its lease goes, and its claim with it
	c, err := other.Claim(ctx, "entry/42")
	if err != nil {
		t.Fatalf("after the holder's session ended: %v", err)
	}
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Release(ctx); !errors.Is(err, ha.ErrClaimLost) {
		t.Fatalf("a second release: %v; want ErrClaimLost", err)
	}
	if _, err := other.Fenced(ctx, ha.Term{}, clientv3.OpPut("/mongobot-test/x", "y")); !errors.Is(err, ha.ErrNotLeader) {
		t.Fatalf("a write fenced by no term: %v", err)
	}
}

// Two live replicas never share a name: the second waits for the first's session, and
// gives up in words when its context ends first.
func TestReplicaNamesAreUnique(t *testing.T) {
	cl := etcdtest.Start(t, 3)
	c := client(t, cl.Endpoints()...)
	first := join(t, c, "same")
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := ha.Join(ctx, ha.Config{Client: c, Prefix: "/mongobot-test/", Name: "same", TTL: 3 * time.Second}); !errors.Is(err, ha.ErrNameTaken) {
		t.Fatalf("a second replica named like a live one: %v; want ErrNameTaken", err)
	}
	first.Close()
	join(t, c, "same") // free once the first's session ended
}
