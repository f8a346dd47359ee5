package ha

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"mongobot/kv"
)

// KVOptions tune KV. The zero value is usable.
type KVOptions struct {
	// Timeout bounds one transaction, its retries included (default 10s): the store's
	// callers have no context, and a journal write must fail in words, not hang.
	Timeout time.Duration
	// MaxOps is the most operations one commit may carry; it must not exceed the cluster's
	// --max-txn-ops (etcd's default, 128, is the default here). A larger transaction is
	// refused with a sentence naming the setting, before anything is sent.
	MaxOps int
	// Session, when set, is the replica's session: its buckets are then kv.Leased, and the
	// store binds its claims to the session's lease.
	Session *Replica
	// LoseReply, when set, is asked after each commit that etcd applied; true makes the
	// commit's reply count as lost, as a cut connection would (tests: the read-back must
	// find the commit applied).
	LoseReply func() bool
}

// KV is the store's kv.DB on etcd, under prefix. Its transactions are optimistic: reads see
// one snapshot (the revision when the transaction began) together with the transaction's
// own writes, which are buffered and committed in one etcd transaction. Every commit is
// conditioned on the transaction counter key not having moved since the snapshot, and moves
// it, so read-write transactions are serializable exactly as bbolt's single writer makes
// them; one that lost the race is run again on a fresh snapshot.
//
// Layout under prefix: "txn" (the counter), "b/<bucket>" (a bucket exists; its value is the
// bucket's sequence), "k/<bucket>\x00<key>" (the data).
type KV struct {
	c      *clientv3.Client
	prefix string
	opts   KVOptions
	fence  []clientv3.Cmp
	// writes serializes this process's read-write transactions, as bbolt's writer lock
	// does: they would all conflict on the counter, and all but one run again. Conflicts
	// are then left to writers in other replicas. Shared by the fenced copies. A channel, so
	// that waiting for it counts against the transaction's timeout.
	writes chan struct{}
}

// MaxOps is the most operations one commit may carry (kv.Bounded).
func (d *KV) MaxOps() int { return d.opts.MaxOps }

// NewKV is the journal's kv.DB on etcd under prefix (which should end in "/").
func NewKV(c *clientv3.Client, prefix string, opts KVOptions) *KV {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxOps <= 0 {
		opts.MaxOps = 128
	}
	return &KV{c: c, prefix: prefix, opts: opts, writes: make(chan struct{}, 1)}
}

// Fenced is this KV with every commit also conditioned on the term: once it has ended, an
// Update fails with ErrNotLeader and writes nothing. Reads are unaffected.
func (d *KV) Fenced(t Term) kv.DB {
	f := *d
	f.fence = append(slices.Clone(d.fence), t.Cmp())
	return &f
}

// Close does nothing: the client belongs to the caller.
func (d *KV) Close() error { return nil }

// View runs fn on a snapshot of the latest committed revision.
func (d *KV) View(fn func(kv.Tx) error) error { return d.run(false, fn) }

// Update runs fn and commits its writes, running it again when another writer committed
// between its snapshot and its commit.
func (d *KV) Update(fn func(kv.Tx) error) error { return d.run(true, fn) }

// errRetry says a transaction must start again on a new snapshot.
var errRetry = errors.New("retry")

func (d *KV) run(write bool, fn func(kv.Tx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.Timeout)
	defer cancel()
	if write {
		select {
		case d.writes <- struct{}{}:
			defer func() { <-d.writes }()
		case <-ctx.Done():
			return fmt.Errorf("ha: the etcd store did not take this write within %s: the writes before it are still waiting on etcd", d.opts.Timeout)
		}
	}
	for attempt := 0; ; attempt++ {
		err := d.attempt(ctx, write, fn)
		if !errors.Is(err, errRetry) {
			return err
		}
		// Back off a little, growing, so two replicas racing do not collide in step.
		select {
		case <-ctx.Done():
			return fmt.Errorf("ha: journal transaction on etcd: still conflicting after %d attempts in %s", attempt+1, d.opts.Timeout)
		case <-time.After(time.Duration(min(attempt, 20)) * time.Millisecond):
		}
	}
}

func (d *KV) attempt(ctx context.Context, write bool, fn func(kv.Tx) error) error {
	counter := d.prefix + "txn"
	// The snapshot begins with one linearizable read of the counter and of every bucket's
	// marker (a handful of small keys), so that opening a bucket costs no round trip.
	resp, err := d.c.Txn(ctx).Then(clientv3.OpGet(counter), clientv3.OpGet(d.prefix+"b/", clientv3.WithPrefix())).Commit()
	if err != nil {
		return d.wrap(err)
	}
	t := &etcdTx{d: d, ctx: ctx, rev: resp.Header.Revision, write: write,
		writes: map[string]*pending{}, buckets: map[string]*bucketState{}, reads: map[string][]byte{}}
	var counterRev int64
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
		t.id = binary.BigEndian.Uint64(kvs[0].Value)
		counterRev = kvs[0].ModRevision
	}
	for _, m := range resp.Responses[1].GetResponseRange().Kvs {
		st := &bucketState{exists: true}
		if len(m.Value) == 8 {
			st.seq = binary.BigEndian.Uint64(m.Value)
		}
		t.buckets[string(m.Key[len(d.prefix)+2:])] = st
	}
	if write {
		t.id++
	}
	ferr := fn(t)
	if t.err != nil { // a read failed: what fn decided on it is void
		if write && errors.Is(t.err, rpctypes.ErrCompacted) {
			return errRetry // its writes were not sent; the closure is made to run again
		}
		// A View is never run again: its closure may have reported what it read.
		return d.wrap(t.err)
	}
	if ferr != nil || !write {
		return ferr
	}
	ops, err := t.ops()
	if err != nil {
		return err
	}
	// The counter's new value is the transaction's id and a token no other commit carries:
	// when the reply is lost, reading back which value followed counterRev says whether
	// this commit was applied (settle).
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return err
	}
	mark := string(append(binary.BigEndian.AppendUint64(nil, t.id), token...))
	ops = append(ops, clientv3.OpPut(counter, mark))
	if len(ops) > d.opts.MaxOps {
		return fmt.Errorf("ha: a journal transaction of %d operations exceeds the %d allowed: raise the cluster's --max-txn-ops and store.etcd.max_txn_ops together", len(ops), d.opts.MaxOps)
	}
	cmps := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(counter), "=", counterRev)}, d.fence...)
	txn, err := d.c.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if errors.Is(err, rpctypes.ErrLeaseNotFound) && d.opts.Session != nil {
		return fmt.Errorf("%w: it cannot claim what it would work on, so nothing was written", ErrSessionLost)
	}
	if err == nil && txn.Succeeded && d.opts.LoseReply != nil && d.opts.LoseReply() {
		err = errLostReply
	}
	if err != nil {
		// The commit may have been applied though its reply was lost: never guess.
		switch applied, serr := d.settle(counter, counterRev, t.rev, mark); {
		case serr != nil:
			return fmt.Errorf("%w (%v): %v", kv.ErrAmbiguous, d.wrap(err), serr)
		case applied:
			return nil
		case errors.Is(err, errLostReply) || errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			return errRetry // known not applied, and there is time: run it again
		}
		return d.wrap(err)
	}
	if txn.Succeeded {
		return nil
	}
	if len(d.fence) > 0 {
		// Which condition failed is not said; ask whether the term still holds.
		r, err := d.c.Txn(ctx).If(d.fence...).Commit()
		if err != nil {
			return d.wrap(err)
		}
		if !r.Succeeded {
			return ErrNotLeader
		}
	}
	return errRetry
}

// errLostReply is the error of a commit whose reply LoseReply dropped.
var errLostReply = errors.New("ha: the commit's reply was lost (test)")

// settle says whether the commit that set the counter to mark, conditioned on the counter's
// revision being counterRev (as of snapshot revision snapRev), was applied. The counter's
// first change after counterRev is that commit, if it was applied, since it was conditioned
// on none coming before it; that change is read from etcd's history (a watch from snapRev+1:
// the counter had not moved by then). When the counter has not moved at all, the commit may
// still be on its way: settle moves the counter itself, on the same condition, so that it
// never applies, and answers not applied. It has a timeout of its own: the transaction's may
// be spent. The history may have been compacted meanwhile; then it cannot tell, and says so.
func (d *KV) settle(counter string, counterRev, snapRev int64, mark string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.Timeout)
	defer cancel()
	for {
		cur, err := d.c.Get(ctx, counter)
		if err != nil {
			return false, fmt.Errorf("read the counter back: %w", err)
		}
		if len(cur.Kvs) == 1 && cur.Kvs[0].ModRevision == counterRev || len(cur.Kvs) == 0 && counterRev == 0 {
			// Nothing committed since the snapshot, this commit neither, yet: fence it off.
			value := []byte(mark[:8] + "fenced by a read-back") // the id of the last commit: unchanged
			if len(cur.Kvs) == 1 {
				value = cur.Kvs[0].Value
			}
			r, err := d.c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(counter), "=", counterRev)).
				Then(clientv3.OpPut(counter, string(value))).Commit()
			if err != nil {
				return false, fmt.Errorf("fence the lost commit off: %w", err)
			}
			if r.Succeeded {
				return false, nil
			}
			continue // it moved meanwhile: perhaps by this commit
		}
		if len(cur.Kvs) == 1 && string(cur.Kvs[0].Value) == mark {
			return true, nil // this commit is the latest
		}
		break
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	for resp := range d.c.Watch(clientv3.WithRequireLeader(wctx), counter, clientv3.WithRev(max(snapRev, counterRev)+1)) {
		if err := resp.Err(); err != nil {
			return false, fmt.Errorf("read the counter's history back: %w", err)
		}
		for _, ev := range resp.Events {
			return string(ev.Kv.Value) == mark, nil
		}
	}
	return false, fmt.Errorf("read the counter's history back: %w", ctx.Err())
}

func (d *KV) wrap(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("ha: the etcd store did not answer within %s: %w", d.opts.Timeout, err)
	}
	return fmt.Errorf("ha: etcd store: %w", err)
}

func (d *KV) dataKey(bucket, k []byte) string {
	return d.prefix + "k/" + string(bucket) + "\x00" + string(k)
}

// bucketRange is the [start, end) of every data key of bucket.
func (d *KV) bucketRange(bucket []byte) (string, string) {
	p := d.prefix + "k/" + string(bucket)
	return p + "\x00", p + "\x01"
}

// pending is a buffered write: a value (with an optional lease) or a deletion.
type pending struct {
	val   []byte
	del   bool
	lease clientv3.LeaseID
}

// bucketState is what the transaction knows of one bucket beyond the snapshot.
type bucketState struct {
	exists  bool
	seq     uint64
	changed bool // the marker (existence or sequence) must be written
	reset   bool // deleted in this transaction: the snapshot's keys are gone
}

type etcdTx struct {
	d     *KV
	ctx   context.Context
	rev   int64
	id    uint64
	write bool
	err   error // the first failed read

	writes  map[string]*pending
	buckets map[string]*bucketState
	// reads caches the snapshot's values read by Get (nil: absent): a snapshot never
	// changes, and the store reads a record again before writing it back.
	reads map[string][]byte
}

func (t *etcdTx) ID() uint64     { return t.id }
func (t *etcdTx) Writable() bool { return t.write }

func (t *etcdTx) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

func (t *etcdTx) get(key string, opts ...clientv3.OpOption) *clientv3.GetResponse {
	if t.err != nil {
		return nil
	}
	opts = append(opts, clientv3.WithRev(t.rev))
	// The snapshot's revision came from a linearizable read, so any member that has applied
	// it can answer alone; one that has not yet says so, and the read goes through the leader.
	resp, err := t.d.c.Get(t.ctx, key, append(opts, clientv3.WithSerializable())...)
	if errors.Is(err, rpctypes.ErrFutureRev) {
		resp, err = t.d.c.Get(t.ctx, key, opts...)
	}
	if err != nil {
		t.fail(err)
		return nil
	}
	return resp
}

// state is bucket name's state: read with the snapshot's start; absent there, it does not
// exist (yet).
func (t *etcdTx) state(name []byte) *bucketState {
	if st, ok := t.buckets[string(name)]; ok {
		return st
	}
	st := &bucketState{}
	t.buckets[string(name)] = st
	return st
}

func (t *etcdTx) Bucket(name []byte) kv.Bucket {
	// After a failed read, every bucket reads as empty rather than absent: callers index
	// the buckets they know exist, and the transaction fails at its end anyway.
	if !t.state(name).exists && t.err == nil {
		return nil
	}
	return t.bucket(name)
}

// bucket is name's handle: kv.Leased when the KV has a session.
func (t *etcdTx) bucket(name []byte) kv.Bucket {
	b := &etcdBucket{t: t, name: slices.Clone(name)}
	if t.d.opts.Session != nil {
		return leasedBucket{b}
	}
	return b
}

func (t *etcdTx) CreateBucket(name []byte) (kv.Bucket, error) {
	if !t.write {
		return nil, errors.New("ha: create a bucket in a read-only transaction")
	}
	st := t.state(name)
	if t.err != nil {
		return nil, t.d.wrap(t.err)
	}
	if st.exists {
		return nil, fmt.Errorf("ha: bucket %s already exists", name)
	}
	st.exists, st.changed = true, true
	return t.bucket(name), nil
}

func (t *etcdTx) CreateBucketIfNotExists(name []byte) (kv.Bucket, error) {
	if b := t.Bucket(name); b != nil {
		return b, nil
	}
	return t.CreateBucket(name)
}

func (t *etcdTx) DeleteBucket(name []byte) error {
	if !t.write {
		return errors.New("ha: delete a bucket in a read-only transaction")
	}
	st := t.state(name)
	if t.err != nil {
		return t.d.wrap(t.err)
	}
	if !st.exists {
		return fmt.Errorf("ha: bucket %s does not exist", name)
	}
	start, end := t.d.bucketRange(name)
	for k := range t.writes {
		if k >= start && k < end {
			delete(t.writes, k)
		}
	}
	*st = bucketState{changed: true, reset: true}
	return nil
}

// ops are the buffered writes as etcd operations. A bucket deleted in the transaction has
// its snapshot keys deleted one by one: etcd refuses a transaction whose put falls inside
// one of its delete ranges.
func (t *etcdTx) ops() ([]clientv3.Op, error) {
	var ops []clientv3.Op
	names := make([]string, 0, len(t.buckets))
	for n := range t.buckets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		st := t.buckets[n]
		if st.reset {
			// A key written again as it was costs nothing: rebuilding a sound index
			// commits only what changed.
			start, end := t.d.bucketRange([]byte(n))
			resp := t.get(start, clientv3.WithRange(end))
			if t.err != nil {
				return nil, t.d.wrap(t.err)
			}
			for _, kv := range resp.Kvs {
				w, rewritten := t.writes[string(kv.Key)]
				switch {
				case !rewritten:
					ops = append(ops, clientv3.OpDelete(string(kv.Key)))
				case !w.del && w.lease == 0 && kv.Lease == 0 && bytes.Equal(w.val, kv.Value):
					delete(t.writes, string(kv.Key))
				}
			}
		}
		if !st.changed {
			continue
		}
		marker := t.d.prefix + "b/" + n
		if st.exists {
			ops = append(ops, clientv3.OpPut(marker, string(binary.BigEndian.AppendUint64(nil, st.seq))))
		} else {
			ops = append(ops, clientv3.OpDelete(marker))
		}
	}
	keys := make([]string, 0, len(t.writes))
	for k := range t.writes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w := t.writes[k]
		switch {
		case w.del:
			ops = append(ops, clientv3.OpDelete(k))
		case w.lease != 0:
			ops = append(ops, clientv3.OpPut(k, string(w.val), clientv3.WithLease(w.lease)))
		default:
			ops = append(ops, clientv3.OpPut(k, string(w.val)))
		}
	}
	return ops, nil
}

type etcdBucket struct {
	t    *etcdTx
	name []byte
}

func (b *etcdBucket) Get(k []byte) []byte {
	key := b.t.d.dataKey(b.name, k)
	if w, ok := b.t.writes[key]; ok {
		if w.del {
			return nil
		}
		return w.val
	}
	if b.t.buckets[string(b.name)].reset {
		return nil
	}
	if v, ok := b.t.reads[key]; ok {
		return v
	}
	resp := b.t.get(key)
	if resp == nil {
		return nil // a failed read: the transaction fails at its end
	}
	var v []byte
	if len(resp.Kvs) > 0 {
		v = nonNil(resp.Kvs[0].Value)
	}
	b.t.reads[key] = v
	return v
}

// Prefetch reads refs in one etcd transaction at the snapshot's revision (kv.Prefetcher):
// a record and its version record cost one round trip, not two.
func (t *etcdTx) Prefetch(refs ...kv.Ref) {
	if t.err != nil {
		return
	}
	var ops []clientv3.Op
	var keys []string
	for _, r := range refs {
		st, ok := t.buckets[string(r.Bucket)]
		if t.Bucket(r.Bucket) == nil || ok && st.reset {
			continue
		}
		key := t.d.dataKey(r.Bucket, r.Key)
		if _, ok := t.writes[key]; ok {
			continue
		}
		if _, ok := t.reads[key]; ok {
			continue
		}
		ops = append(ops, clientv3.OpGet(key, clientv3.WithRev(t.rev), clientv3.WithSerializable()))
		keys = append(keys, key)
	}
	// In groups within the cluster's bound on a transaction's operations.
	for len(ops) >= 2 { // one read costs the same either way
		n := min(len(ops), t.d.opts.MaxOps)
		resp, err := t.d.c.Txn(t.ctx).Then(ops[:n]...).Commit()
		if err != nil {
			return // the Gets read them one by one, and a failure fails the transaction there
		}
		for i, r := range resp.Responses {
			var v []byte
			if kvs := r.GetResponseRange().Kvs; len(kvs) > 0 {
				v = nonNil(kvs[0].Value)
			}
			t.reads[keys[i]] = v
		}
		ops, keys = ops[n:], keys[n:]
	}
}

func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

func (b *etcdBucket) put(k, v []byte, lease clientv3.LeaseID) error {
	if !b.t.write {
		return errors.New("ha: write in a read-only transaction")
	}
	if len(k) == 0 {
		return errors.New("ha: empty key")
	}
	b.t.writes[b.t.d.dataKey(b.name, k)] = &pending{val: nonNil(slices.Clone(v)), lease: lease}
	return nil
}

func (b *etcdBucket) Put(k, v []byte) error { return b.put(k, v, 0) }

// PutExpiring writes k under a lease of ttl (rounded up to whole seconds): etcd deletes it
// then, with nothing to sweep. The lease is granted now; should the transaction not commit,
// it expires unused.
func (b *etcdBucket) PutExpiring(k, v []byte, ttl time.Duration) error {
	secs := int64((ttl + time.Second - 1) / time.Second)
	grant, err := b.t.d.c.Grant(b.t.ctx, max(secs, 1))
	if err != nil {
		return b.t.d.wrap(err)
	}
	return b.put(k, v, grant.ID)
}

// leasedBucket is a bucket of a KV with a session.
type leasedBucket struct{ *etcdBucket }

// PutLeased writes k bound to the session's lease, its value the replica's name. A session
// already lost makes the commit fail (etcd knows no such lease): nothing is claimed then.
func (b leasedBucket) PutLeased(k []byte) error {
	s := b.t.d.opts.Session
	return b.put(k, []byte(s.Name()), s.lease())
}

func (b leasedBucket) Holder() string { return b.t.d.opts.Session.Name() }

func (b *etcdBucket) Delete(k []byte) error {
	if !b.t.write {
		return errors.New("ha: delete in a read-only transaction")
	}
	b.t.writes[b.t.d.dataKey(b.name, k)] = &pending{del: true}
	return nil
}

func (b *etcdBucket) NextSequence() (uint64, error) {
	if !b.t.write {
		return 0, errors.New("ha: next sequence in a read-only transaction")
	}
	st := b.t.state(b.name)
	st.seq++
	st.changed = true
	return st.seq, nil
}

func (b *etcdBucket) Sequence() uint64 { return b.t.state(b.name).seq }

// SetSequence sets the bucket's sequence, as a restore does (kv.Sequencer).
func (b *etcdBucket) SetSequence(n uint64) error {
	if !b.t.write {
		return errors.New("ha: set a sequence in a read-only transaction")
	}
	st := b.t.state(b.name)
	st.seq, st.changed = n, true
	return nil
}

func (b *etcdBucket) ForEach(fn func(k, v []byte) error) error {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return b.t.readErr()
}

func (b *etcdBucket) KeyN() int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// readErr is the failed read, if any, as the error ForEach returns.
func (t *etcdTx) readErr() error {
	if t.err != nil {
		return t.d.wrap(t.err)
	}
	return nil
}

func (b *etcdBucket) Cursor() kv.Cursor {
	start, end := b.t.d.bucketRange(b.name)
	return &etcdCursor{b: b, start: start, end: end}
}

// etcdCursor walks the merge of the snapshot's keys (fetched a page at a time) and the
// transaction's own writes.
type etcdCursor struct {
	b          *etcdBucket
	start, end string // the bucket's data keys
	cur        string // the current full key; "" before First or past either end

	// page is the snapshot's keys in [lo, hi), all of them, in order.
	lo, hi string
	page   []item
}

type item struct {
	key string
	val []byte
}

const pageSize = 100

func (c *etcdCursor) First() ([]byte, []byte) { return c.move(c.succ(c.start, true)) }
func (c *etcdCursor) Last() ([]byte, []byte)  { return c.move(c.pred(c.end)) }
func (c *etcdCursor) Seek(k []byte) ([]byte, []byte) {
	return c.move(c.succ(c.b.t.d.dataKey(c.b.name, k), true))
}

func (c *etcdCursor) Next() ([]byte, []byte) {
	if c.cur == "" {
		return nil, nil
	}
	return c.move(c.succ(c.cur, false))
}

func (c *etcdCursor) Prev() ([]byte, []byte) {
	if c.cur == "" {
		return nil, nil
	}
	return c.move(c.pred(c.cur))
}

func (c *etcdCursor) move(it item, ok bool) ([]byte, []byte) {
	if !ok {
		c.cur = ""
		return nil, nil
	}
	c.cur = it.key
	return []byte(it.key[len(c.start):]), nonNil(it.val)
}

// succ is the first key at (incl) or after k, in the merged view.
func (c *etcdCursor) succ(k string, incl bool) (item, bool) {
	snap, sok := c.snapSucc(k, incl)
	for sok {
		if _, shadowed := c.b.t.writes[snap.key]; !shadowed {
			break
		}
		snap, sok = c.snapSucc(snap.key, false)
	}
	own, ook := c.ownSucc(k, incl)
	switch {
	case sok && ook:
		if own.key < snap.key {
			return own, true
		}
		return snap, true
	case ook:
		return own, true
	}
	return snap, sok
}

// pred is the last key before k, in the merged view.
func (c *etcdCursor) pred(k string) (item, bool) {
	snap, sok := c.snapPred(k)
	for sok {
		if _, shadowed := c.b.t.writes[snap.key]; !shadowed {
			break
		}
		snap, sok = c.snapPred(snap.key)
	}
	own, ook := c.ownPred(k)
	switch {
	case sok && ook:
		if own.key > snap.key {
			return own, true
		}
		return snap, true
	case ook:
		return own, true
	}
	return snap, sok
}

func (c *etcdCursor) ownSucc(k string, incl bool) (item, bool) {
	var best item
	found := false
	for key, w := range c.b.t.writes {
		if w.del || key < c.start || key >= c.end || key < k || (!incl && key == k) {
			continue
		}
		if !found || key < best.key {
			best, found = item{key, w.val}, true
		}
	}
	return best, found
}

func (c *etcdCursor) ownPred(k string) (item, bool) {
	var best item
	found := false
	for key, w := range c.b.t.writes {
		if w.del || key < c.start || key >= c.end || key >= k {
			continue
		}
		if !found || key > best.key {
			best, found = item{key, w.val}, true
		}
	}
	return best, found
}

func (c *etcdCursor) reset() bool { return c.b.t.buckets[string(c.b.name)].reset }

// snapSucc is the snapshot's first key at (incl) or after k.
func (c *etcdCursor) snapSucc(k string, incl bool) (item, bool) {
	if c.reset() || k >= c.end {
		return item{}, false
	}
	if k < c.start {
		k, incl = c.start, true
	}
	if c.page == nil || k < c.lo || k >= c.hi {
		from := k
		if !incl {
			from = k + "\x00"
		}
		c.fetch(from, c.end, false)
	}
	i := sort.Search(len(c.page), func(i int) bool {
		return c.page[i].key > k || (incl && c.page[i].key == k)
	})
	if i < len(c.page) {
		return c.page[i], true
	}
	if c.hi >= c.end || c.b.t.err != nil {
		return item{}, false
	}
	return c.snapSucc(c.hi, true)
}

// snapPred is the snapshot's last key before k.
func (c *etcdCursor) snapPred(k string) (item, bool) {
	if c.reset() || k <= c.start {
		return item{}, false
	}
	if k > c.end {
		k = c.end
	}
	if c.page == nil || k <= c.lo || k > c.hi {
		c.fetch(c.start, k, true)
	}
	i := sort.Search(len(c.page), func(i int) bool { return c.page[i].key >= k })
	if i > 0 {
		return c.page[i-1], true
	}
	if c.lo <= c.start || c.b.t.err != nil {
		return item{}, false
	}
	return c.snapPred(c.lo)
}

// fetch loads a page of the snapshot's keys in [from, to): the first ones, or the last ones
// when back, and records the interval it now knows all of.
func (c *etcdCursor) fetch(from, to string, back bool) {
	opts := []clientv3.OpOption{clientv3.WithRange(to), clientv3.WithLimit(pageSize)}
	if back {
		opts = append(opts, clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	}
	resp := c.b.t.get(from, opts...)
	c.page = c.page[:0]
	if resp == nil {
		c.page, c.lo, c.hi = nil, from, from
		return
	}
	for _, kv := range resp.Kvs {
		c.page = append(c.page, item{string(kv.Key), kv.Value})
	}
	c.lo, c.hi = from, to
	if back {
		slices.Reverse(c.page)
		if resp.More && len(c.page) > 0 {
			c.lo = c.page[0].key
		}
	} else if resp.More && len(c.page) > 0 {
		c.hi = c.page[len(c.page)-1].key + "\x00"
	}
}
