package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mongobot/kv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Config is one replica's part in the group.
type Config struct {
	Client *clientv3.Client
	// Prefix is where the group's keys live ("/mongobot/"); every replica of one bot uses the
	// same.
	Prefix string
	// Name is this replica, as the others and the metrics see it (a host name).
	Name string
	// TTL is the session lease (whole seconds, at least 2; default 10s): a replica that
	// dies holds leadership and its claims for at most this long.
	TTL time.Duration
	Log *slog.Logger
	// Now is the clock of the term watchdog (default time.Now).
	Now func() time.Time
}

// ErrNotLeader is the answer to a fenced write after the term ended.
var ErrNotLeader = fmt.Errorf("ha: this replica no longer leads: %w: the write was not made", kv.ErrFenced)

// ErrSessionLost says the replica's lease ended: its claims and any term are gone, and it
// must join again.
var ErrSessionLost = errors.New("ha: the replica's etcd session ended")

// Replica is one bot process's membership: its lease, its campaigns and its claims.
type Replica struct {
	cfg     Config
	session *concurrency.Session

	stopRenew context.CancelFunc

	mu        sync.Mutex
	lastRenew time.Time // when the last successful renewal was sent: etcd renewed after it
	term      *Term
}

// Join starts a session for the replica: a lease kept alive until Close or until etcd can no
// longer be reached for longer than the TTL.
func Join(ctx context.Context, cfg Config) (*Replica, error) {
	if cfg.TTL == 0 {
		cfg.TTL = 10 * time.Second
	}
	if cfg.TTL < 2*time.Second {
		return nil, fmt.Errorf("ha: the session TTL %s is too short: at least 2s", cfg.TTL)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Name == "" || cfg.Prefix == "" {
		return nil, errors.New("ha: a replica needs a name and a prefix")
	}
	ttl := int(cfg.TTL / time.Second)
	cfg.TTL = time.Duration(ttl) * time.Second // the lease has whole seconds: so must the watchdog
	sent := cfg.Now()
	grant, err := cfg.Client.Grant(ctx, int64(ttl))
	if err != nil {
		return nil, fmt.Errorf("ha: grant the session lease: %w", err)
	}
	r := &Replica{cfg: cfg, lastRenew: sent}
	if r.session, err = concurrency.NewSession(cfg.Client, concurrency.WithLease(grant.ID), concurrency.WithTTL(ttl)); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.TTL)
		cfg.Client.Revoke(rctx, grant.ID)
		cancel()
		return nil, fmt.Errorf("ha: start the session: %w", err)
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stopRenew = stop
	go r.renew(rctx, grant.ID)
	if err := r.reserveName(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// ErrNameTaken says another live replica has this replica's name.
var ErrNameTaken = errors.New("ha: another replica with this name is running")

// reserveName makes the replica's name its own for the session: claims and the leader are
// known by name, so two live replicas must never share one. A replica restarted under its
// name waits here until its previous session's lease has expired (at most the TTL).
func (r *Replica) reserveName(ctx context.Context) error {
	key := r.cfg.Prefix + "names/" + r.cfg.Name
	for {
		resp, err := r.cfg.Client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, r.cfg.Name, clientv3.WithLease(r.session.Lease()))).Commit()
		if err != nil {
			return fmt.Errorf("ha: reserve the replica name %q: %w", r.cfg.Name, err)
		}
		if resp.Succeeded {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %q (give each replica its own store.etcd.replica, or leave it unset for the host name)", ErrNameTaken, r.cfg.Name)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// renew renews the lease itself every TTL/3, beside the session's own keep-alive, and notes
// when each successful renewal was sent: etcd renewed it after that moment, so the lease
// lives at least TTL from it, whatever the reply's delay. The watchdog counts from there.
func (r *Replica) renew(ctx context.Context, id clientv3.LeaseID) {
	tick := time.NewTicker(r.cfg.TTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.session.Done():
			return
		case <-tick.C:
		}
		sent := r.cfg.Now()
		octx, cancel := context.WithTimeout(ctx, r.cfg.TTL/3)
		_, err := r.cfg.Client.KeepAliveOnce(octx, id)
		cancel()
		if err == nil {
			r.mu.Lock()
			r.lastRenew = sent
			r.mu.Unlock()
		}
	}
}

// Name is the replica's name.
func (r *Replica) Name() string { return r.cfg.Name }

// lease is the session's lease, which claims in the journal are bound to.
func (r *Replica) lease() clientv3.LeaseID { return r.session.Lease() }

// Done is closed when the session has ended.
func (r *Replica) Done() <-chan struct{} { return r.session.Done() }

// Close ends the session and gives up its lease: its term and claims end at once, and
// another replica may lead without waiting for the TTL. A term's lead function is waited for
// (at most the TTL) before the lease goes, so that no other term can begin while it runs.
func (r *Replica) Close() error {
	r.mu.Lock()
	t := r.term
	r.mu.Unlock()
	if t != nil {
		t.end()
		select {
		case <-t.done:
		case <-time.After(r.cfg.TTL):
		}
	}
	r.stopRenew()
	return r.session.Close()
}

// Term is one spell of leadership.
type Term struct {
	// Ctx ends when the term does: when the replica's lease may be about to expire, when its
	// session ended, or when Lead's context was cancelled. Timer work runs under it.
	Ctx context.Context
	// Key and Rev are the leader key and its create revision, which fence the term.
	Key string
	Rev int64

	cancel context.CancelFunc
	done   chan struct{} // closed when lead has returned
}

func (t *Term) end() { t.cancel() }

// Cmp holds while this term lasts: the leader key is still the one it created. A
// transaction conditioned on it is refused by etcd once another term may have begun.
func (t Term) Cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(t.Key), "=", t.Rev)
}

// Leader says who leads now ("" when nobody does).
func (r *Replica) Leader(ctx context.Context) (string, error) {
	resp, err := concurrency.NewElection(r.session, r.cfg.Prefix+"leader/").Leader(ctx)
	switch {
	case errors.Is(err, concurrency.ErrElectionNoLeader):
		return "", nil
	case err != nil:
		return "", err
	}
	return string(resp.Kvs[0].Value), nil
}

// Leading reports whether this replica is in a term now.
func (r *Replica) Leading() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.term != nil && r.term.Ctx.Err() == nil
}

// Lead campaigns until ctx ends or the session does, and calls lead for each term won; lead
// must return once term.Ctx is done. It returns ErrSessionLost when the session ended.
func (r *Replica) Lead(ctx context.Context, lead func(Term)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.session.Done():
			return ErrSessionLost
		default:
		}
		el := concurrency.NewElection(r.session, r.cfg.Prefix+"leader/")
		cctx, stop := context.WithCancel(ctx)
		go func() {
			select {
			case <-r.session.Done():
			case <-cctx.Done():
			}
			stop()
		}()
		err := el.Campaign(cctx, r.cfg.Name)
		if err == nil {
			err = r.stillOurs(cctx, el)
		}
		if err != nil {
			stop()
			// A key won but not confirmed is given up, or nobody else could lead.
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = el.Resign(rctx)
			rcancel()
			if ctx.Err() == nil && r.session.Ctx().Err() == nil {
				r.cfg.Log.Warn("ha: campaign", "replica", r.cfg.Name, "err", err)
				r.pause(ctx, time.Second)
			}
			continue
		}
		r.serve(cctx, el, lead)
		stop()
	}
}

// stillOurs checks that the leader key Campaign waited on still exists: Campaign can return
// after the session's own key vanished with an expired lease.
func (r *Replica) stillOurs(ctx context.Context, el *concurrency.Election) error {
	resp, err := r.cfg.Client.Get(ctx, el.Key())
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != el.Rev() {
		return errors.New("the leader key vanished as the campaign was won")
	}
	return nil
}

// serve runs one term: lead runs under a context that the watchdog ends when the lease has
// not been renewed for TTL minus a margin, so before the server can let it expire and
// another replica win (etcd counts the TTL from the last renewal it saw, which is no later
// than the acknowledgement this replica saw).
func (r *Replica) serve(ctx context.Context, el *concurrency.Election, lead func(Term)) {
	tctx, cancel := context.WithCancel(ctx)
	t := &Term{Ctx: tctx, Key: el.Key(), Rev: el.Rev(), cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	r.term = t
	r.mu.Unlock()
	r.cfg.Log.Info("ha: leading", "replica", r.cfg.Name, "rev", t.Rev)
	if r.stale() {
		cancel() // the lease may be about to expire: no term begins on it
	}
	done := make(chan struct{})
	go r.watch(t, done)
	lead(*t)
	cancel()
	close(done)
	close(t.done)
	r.mu.Lock()
	r.term = nil
	r.mu.Unlock()
	// Give the term up at once when the session lives on (Lead's context ended): another
	// replica need not wait for the lease.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	if err := el.Resign(rctx); err != nil && r.session.Ctx().Err() == nil {
		r.cfg.Log.Warn("ha: resign", "replica", r.cfg.Name, "err", err)
	}
	rcancel()
	r.cfg.Log.Info("ha: term ended", "replica", r.cfg.Name, "rev", t.Rev)
}

// Stale is closed once the session may be about to end: its lease not renewed for two thirds
// of the TTL (the same margin a term steps down by), or the session over. Claims in the
// journal are bound to it: from then on another replica may soon settle this one's actions,
// so it must stop touching MongoDB. Polled every 100 ms until ctx ends.
func (r *Replica) Stale(ctx context.Context) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.session.Done():
			case <-tick.C:
				if !r.stale() {
					continue
				}
			}
			close(out)
			return
		}
	}()
	return out
}

// stale says that the lease has not been renewed for TTL minus a third: a leader stops then,
// with a third of the TTL left for its timer work to notice before the lease can expire.
// Renewals go every third of the TTL, so one late renewal is tolerated, not two.
func (r *Replica) stale() bool {
	r.mu.Lock()
	last := r.lastRenew
	r.mu.Unlock()
	return r.cfg.Now().Sub(last) > r.cfg.TTL-r.cfg.TTL/3
}

func (r *Replica) watch(t *Term, done <-chan struct{}) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-r.session.Done():
			t.end()
			return
		case <-tick.C:
			if r.stale() {
				r.cfg.Log.Warn("ha: lease not renewed in time: stepping down", "replica", r.cfg.Name)
				t.end()
				return
			}
		}
	}
}

func (r *Replica) pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-r.session.Done():
	case <-time.After(d):
	}
}

// Fenced commits ops only while t lasts; ErrNotLeader when it has ended, here or in etcd.
func (r *Replica) Fenced(ctx context.Context, t Term, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	if t.Rev == 0 || t.Ctx == nil || t.Ctx.Err() != nil {
		return nil, ErrNotLeader
	}
	resp, err := r.cfg.Client.Txn(ctx).If(t.Cmp()).Then(ops...).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return resp, ErrNotLeader
	}
	return resp, nil
}
