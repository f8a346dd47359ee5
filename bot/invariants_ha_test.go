package bot_test

// The invariant checker on etcd: three replicas of the bot share one journal on a real
// embedded 3-member etcd cluster, each with its own Socket Mode connection to one Slack
// stand-in, which spreads envelopes across them as Slack does. One replica leads and runs the
// timers, through the journal fenced by its term. Crash steps kill a replica, mostly the
// leader, between steps or in the middle of one; member steps stop an etcd member and start
// it again. The checks are the checker's own, judged from the shared journal.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mongobot/ha"
	"mongobot/ha/etcdtest"
	"mongobot/kv"
	"mongobot/store"
)

// shared is a replica's part in the group: its own client, session and view of the journal,
// and the journal fenced by its term while it leads.
type shared struct {
	client     *ha.Client
	member     *ha.Replica
	kv         *ha.KV
	fenced     atomic.Pointer[store.Store]
	campaigned chan struct{} // closed when its campaign has returned
	// pinned, set by a partition step, is a term's fenced journal the replica goes on using
	// after the term ended, as one that has not noticed yet.
	pinned atomic.Pointer[store.Store]
}

// timerJournal is the replica's bot.Config.TimerJournal, as cmd/bot's.
func (r *replica) timerJournal() (*store.Store, error) {
	if st := r.pinned.Load(); st != nil {
		return st, nil
	}
	if st := r.fenced.Load(); st != nil {
		return st, nil
	}
	return nil, fmt.Errorf("replica %s: %w", r.name, ha.ErrNotLeader)
}

// haSide is the etcd cluster of a replicated world, and the group's place in it.
type haSide struct {
	cluster  *etcdtest.Cluster
	admin    *ha.Client // the checker's own client: it expires killed replicas' sessions
	prefix   string
	replicas int
	stopped  int // the member a member step stopped, -1 when all run
	leading  atomic.Pointer[replica]
	// lossy is how many of the next commits, on any replica, lose their reply after etcd
	// applied them (a lostreply step arms it): the journal must read each back.
	lossy atomic.Int64
}

// loseReply is the KV's LoseReply: true for as many commits as a lostreply step armed.
func (h *haSide) loseReply() bool {
	for {
		n := h.lossy.Load()
		if n <= 0 {
			return false
		}
		if h.lossy.CompareAndSwap(n, n-1) {
			haStats.lostReplies.Add(1)
			return true
		}
	}
}

// haStats counts, over a test, what the replicated worlds went through, for its log line.
var haStats struct {
	terms, leaderKills, otherKills, memberStops, envelopes atomic.Int64
	partitions, fencedRefusals                             atomic.Int64
	rekeys, rekeysCut                                      atomic.Int64
	lostReplies                                            atomic.Int64
	byReplica                                              [3]atomic.Int64

	mu       sync.Mutex
	requests map[string]int // by the state each run ended in
}

// tally counts the requests of a run that settled, by state.
func (h *haSide) tally(w *world) {
	rs, _, err := w.journal().Requests(0, 1<<20)
	if err != nil {
		return
	}
	haStats.mu.Lock()
	defer haStats.mu.Unlock()
	if haStats.requests == nil {
		haStats.requests = map[string]int{}
	}
	for _, r := range rs {
		haStats.requests[r.State]++
	}
}

// worlds numbers the worlds of a test, each in its own prefix of the one cluster.
var worlds atomic.Int64

// checkerKey seals the shared journal's secrets: every replica has the same. Every replica
// also holds checkerNextKey, as during a key rotation: a "rekey" step moves the journal from
// one to the other while the replicas serve.
var (
	checkerKey     = []byte("checker-key-0123456789abcdef-32b")
	checkerNextKey = []byte("checker-next-key-0123456789ab-32")
)

func newHASide(c *etcdtest.Cluster) *haSide {
	if c == nil {
		return nil
	}
	return &haSide{cluster: c, prefix: fmt.Sprintf("/checker/%d/", worlds.Add(1)), replicas: 3, stopped: -1}
}

// join gives replica r a client, a session in the group and the shared journal.
func (h *haSide) join(w *world, r *replica) (*store.Store, error) {
	if h.admin == nil {
		c, err := ha.Dial(ha.ClientConfig{Endpoints: h.cluster.Endpoints()})
		if err != nil {
			return nil, err
		}
		h.admin = c
	}
	c, err := ha.Dial(ha.ClientConfig{Endpoints: h.cluster.Endpoints()})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := ha.Join(ctx, ha.Config{Client: c, Prefix: h.prefix + "ha/", Name: r.name, TTL: 10 * time.Second})
	if err != nil {
		c.Close()
		return nil, err
	}
	kv := ha.NewKV(c, h.prefix+"journal/", ha.KVOptions{Session: m, LoseReply: h.loseReply})
	st, err := store.OpenShared(kv, w.dir, "etcd "+h.prefix, store.Options{Now: w.clock.Now, Key: checkerKey, OldKeys: [][]byte{checkerNextKey}})
	if err != nil {
		m.Close()
		c.Close()
		return nil, err
	}
	r.client, r.member, r.kv = c, m, kv
	return st, nil
}

// campaign runs r's campaign: in each term won it does what cmd/bot's leader does first
// (settle what was left executing, load the timers), then is the world's lead until the term
// ends. The world, not a ticker, moves its timers.
func (h *haSide) campaign(ctx context.Context, w *world, r *replica) {
	r.campaigned = make(chan struct{})
	go func() {
		defer close(r.campaigned)
		_ = r.member.Lead(ctx, func(term ha.Term) {
			r.fenced.Store(r.st.Fenced(refusals{r.kv.Fenced(term)}))
			defer r.fenced.Store(nil)
			r.b.Reconcile(term.Ctx)
			if err := r.b.LoadTimers(term.Ctx); err != nil && term.Ctx.Err() == nil {
				w.t.Logf("replica %s: load the timers: %v", r.name, err)
			}
			h.leading.Store(r)
			haStats.terms.Add(1)
			<-term.Ctx.Done()
			h.leading.CompareAndSwap(r, nil)
		})
	}()
}

// leader is the live replica whose term has begun, waited for.
func (h *haSide) leader(w *world) *replica {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if l := h.leading.Load(); l != nil && l.alive() && slices.Contains(w.reps, l) && l.member.Leading() {
			return l
		}
		if time.Now().After(deadline) {
			w.problem("no replica leads 30s on")
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// expire ends killed replica r's session through the checker's own client, as the lapse of
// its TTL would (without waiting for it): its claims and term end, and another replica may
// lead and settle what it left. r's own client is already closed: it sends etcd nothing more.
func (h *haSide) expire(w *world, r *replica, led bool) {
	if led {
		haStats.leaderKills.Add(1)
	} else {
		haStats.otherKills.Add(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := ha.Expire(ctx, h.admin, r.member); err != nil && !isLeaseGone(err) {
		w.problem("expire the session of killed replica %s: %v", r.name, err)
	}
	r.member.Close() // frees what its session left running in the checker's process
	<-r.campaigned
}

// isLeaseGone: the lease had already ended (etcd's "requested lease not found").
func isLeaseGone(err error) bool {
	return strings.Contains(err.Error(), "lease not found")
}

// refusals counts the fenced writes etcd refused: a partition step shows they happen.
type refusals struct{ kv.DB }

func (f refusals) Update(fn func(kv.Tx) error) error {
	err := f.DB.Update(fn)
	if errors.Is(err, kv.ErrFenced) {
		haStats.fencedRefusals.Add(1)
	}
	return err
}

// partition plays a leader cut off from etcd for longer than its TTL that has not noticed
// yet: its lease ends (its client still open), time moves on, and it runs its timers with
// the term it still holds, while another replica takes over. Every write-ahead step it
// tries must be refused by etcd, so it changes nothing on MongoDB or Atlas and begins no
// entry; then it exits and is started again, as cmd/bot does when its session is lost.
func (h *haSide) partition(w *world, jump time.Duration) error {
	old := w.lead()
	if old == nil {
		return nil
	}
	stale := old.fenced.Load()
	if stale == nil {
		return nil
	}
	haStats.partitions.Add(1)
	old.pinned.Store(stale)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	err := ha.Expire(ctx, h.admin, old.member)
	cancel()
	if err != nil {
		return fmt.Errorf("expire the leader's session: %v", err)
	}
	w.clock.Add(jump)
	before := w.changes()
	top := w.newest()
	old.b.ExpireDue(context.Background())
	old.b.RunDue(context.Background()).Wait()
	old.b.ReconcileStale(context.Background())
	w.settle()
	if after := w.changes(); after != before {
		w.problem("a leader whose session had ended changed MongoDB or Atlas with its old term (%d changes before, %d after)", before, after)
	}
	if e := w.newest(); e.ID != top.ID {
		w.problem("a leader whose session had ended began journal entry #%d (%s) with its old term", e.ID, e.Action)
	}
	old.pinned.Store(nil)
	return w.crash(slices.Index(w.reps, old))
}

// newest is the journal's newest entry (zero when there is none).
func (w *world) newest() store.Entry {
	es, _, err := w.journal().History(0, 1)
	if err != nil {
		w.problem("read the journal: %v", err)
	}
	if len(es) == 0 {
		return store.Entry{}
	}
	return es[0]
}

// changes counts what the bot's accounts applied on prod and on the Atlas cluster.
func (w *world) changes() int {
	n := 0
	for _, a := range w.emu.Applied() {
		if a.By.User == "botadmin" {
			n++
		}
	}
	return n + len(w.cloud.cluster.AppliedSince(w.cloud.base))
}

// leave ends a stopped replica's session gracefully: its term is given up at once.
func (h *haSide) leave(r *replica) {
	r.member.Close()
	<-r.campaigned
	r.client.Close()
}

// member stops an etcd member (which of three by n), or starts the stopped one again: the
// cluster keeps its quorum throughout.
func (h *haSide) member(n int) error {
	if h.stopped < 0 {
		h.stopped = n % 3
		haStats.memberStops.Add(1)
		h.cluster.Stop(h.stopped)
		return nil
	}
	err := h.cluster.StartAgain(h.stopped)
	h.stopped = -1
	return err
}

// rekey rotates the shared journal's key to the other of the two every replica holds, as
// mongobot rekey does from an operator's machine outside the group, while the replicas serve;
// it resumes a rotation an earlier step left unfinished. A rotation cut short (an etcd member
// stopped, a lost answer) is left for the next step to finish, as an operator would run it
// again: in between, the replicas must work on a journal half moved.
func (h *haSide) rekey(w *world) {
	if h.admin == nil {
		return
	}
	st, err := store.OpenShared(ha.NewKV(h.admin, h.prefix+"journal/", ha.KVOptions{Timeout: 5 * time.Second}), w.dir, "etcd "+h.prefix,
		store.Options{Now: w.clock.Now, Key: checkerKey, OldKeys: [][]byte{checkerNextKey}})
	if err != nil {
		haStats.rekeysCut.Add(1)
		return
	}
	defer st.Close()
	to := checkerNextKey
	if rot, err := st.Rotation(); err == nil && (rot.From != "") == (rot.Sealing == store.Fingerprint(checkerKey)) {
		to = checkerKey // back to the first key, or finishing a rotation to it
	}
	haStats.rekeys.Add(1)
	if err := st.Rekey(to); err != nil {
		haStats.rekeysCut.Add(1)
	}
}

// close starts a stopped member again, for the next world, and closes the checker's client.
func (h *haSide) close(w *world) {
	if h.stopped >= 0 {
		if err := h.member(0); err != nil {
			w.problem("%v", err)
		}
	}
	if h.admin != nil {
		h.admin.Close()
	}
}

// raw is every byte of the shared journal as etcd serves it, and every byte the members
// keep on disk (their write-ahead logs and databases, history included).
func (h *haSide) raw(w *world) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	raw, err := ha.Raw(ctx, h.admin, h.prefix)
	if err != nil {
		w.problem("read the shared journal's bytes: %v", err)
	}
	err = filepath.WalkDir(h.cluster.Dir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".tmp") { // .tmp: a WAL segment made ready, still empty
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a WAL segment cut or a snapshot purged meanwhile
		}
		raw = append(raw, b...)
		return err
	})
	if err != nil {
		w.problem("read the etcd members' files: %v", err)
	}
	return raw
}

// genReplicated is genSteps made a stream of approved work: most commands are followed by
// an approver pressing Approve. In about one step in 50, an etcd member is stopped or
// started again; in one in 100, the leader is cut off (partition); in one in 50, the
// journal's key is rotated while the replicas serve (rekey).
func genReplicated(seed uint64, n int) []Step {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	var out []Step
	for _, s := range withTampering(seed, genSteps(seed, n)) {
		if len(out) >= n {
			break
		}
		switch r.IntN(100) {
		case 0, 1:
			s = Step{Kind: "member", N: r.IntN(3)}
		case 2:
			s = Step{Kind: "partition", N: r.IntN(len(jumps))}
		case 3, 4:
			s = Step{Kind: "rekey"}
		case 5, 6:
			s = Step{Kind: "lostreply", N: r.IntN(4)}
		}
		out = append(out, s)
		if s.Kind == "cmd" && r.IntN(3) != 0 {
			out = append(out, Step{Kind: "approve", User: []string{alice, bob, carol}[r.IntN(3)], N: r.IntN(4) / 3})
		}
	}
	return out[:min(n, len(out))]
}

// haSeeds and haSteps are what a plain `go test` runs on etcd; .ci/run runs more without the
// race detector.
const (
	haSeeds     = 2
	haSeedsFull = 8
	haSteps     = 200
)

// TestInvariantsReplicated is the checker on etcd, with three replicas.
func TestInvariantsReplicated(t *testing.T) {
	steps := checkerSteps(t, haSteps)
	seeds := seedsToRun()
	if *flagSeed == 0 && *flagSeeds == 0 {
		seeds = seeds[:haSeeds]
		if !raceEnabled {
			seeds = seedsFrom(haSeedsFull)
		}
	}
	cluster := etcdtest.Start(t, 3)
	run := func(t testing.TB, steps []Step, verbose bool) []string { return runStepsOn(t, cluster, steps, verbose) }
	if v := run(t, seed7013, false); len(v) > 0 { // found on etcd; see TestScheduledRotationOfALockedPair
		t.Fatalf("seed 7013's steps: %v", v)
	}
	tampered := tamperCounts()
	before := [5]int64{done["prod"].Load(), done["cloud"].Load(), scheduleRuns.Load(), delivered.Load(), abandoned.Load()}
	total := checkSeeds(t, seeds, func(seed uint64) []Step { return genReplicated(seed, steps) }, run)
	t.Logf("invariant checker on etcd: %d steps over %d seed(s), 3 replicas sharing one journal on a 3-member etcd cluster (embedded, real), one Slack stand-in with a socket per replica, the emulator (%d journal entries not failed, %d of them scheduled runs) and an Atlas project (%d), race detector %v",
		total, len(seeds), done["prod"].Load()-before[0], scheduleRuns.Load()-before[2], done["cloud"].Load()-before[1], raceEnabled)
	t.Logf("invariant checker on etcd: %d envelopes (%d, %d and %d to replicas r0, r1, r2), %d terms begun, %d kills of the leader and %d of another replica, %d etcd members stopped and started again, %d leaders cut off whose old term etcd refused %d write(s)",
		haStats.envelopes.Load(), haStats.byReplica[0].Load(), haStats.byReplica[1].Load(), haStats.byReplica[2].Load(),
		haStats.terms.Load(), haStats.leaderKills.Load(), haStats.otherKills.Load(), haStats.memberStops.Load(),
		haStats.partitions.Load(), haStats.fencedRefusals.Load())
	t.Logf("invariant checker on etcd: written straight into the prefix while the replicas served: %d requests forged, %d altered, %d copied under a new id, %d put back to an older copy; none acted on", tamperCounts()[0]-tampered[0], tamperCounts()[1]-tampered[1], tamperCounts()[2]-tampered[2], tamperCounts()[3]-tampered[3])
	t.Logf("invariant checker on etcd: %d commits whose reply was lost after etcd applied them, each read back", haStats.lostReplies.Load())
	t.Logf("invariant checker on etcd: %d key rotations while the replicas served, %d of them cut short, for the next to resume", haStats.rekeys.Load(), haStats.rekeysCut.Load())
	t.Logf("invariant checker on etcd: requests by the state their runs ended in: %v", haStats.requests)
	t.Logf("invariant checker on etcd: applications' logins judged at rest: %d after a delivery, %d after one the bot abandoned", delivered.Load()-before[3], abandoned.Load()-before[4])
}
