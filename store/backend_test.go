package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	berrors "go.etcd.io/bbolt/errors"
	clientv3 "go.etcd.io/etcd/client/v3"

	"mongobot/ha"
	"mongobot/ha/etcdtest"
	"mongobot/kv"
)

// The store's tests run on both backends: bbolt, then etcd (a real embedded 3-member cluster
// on loopback ports, started once for the package); STORE_BACKEND=bbolt or =etcd runs one. The
// tests that open a journal through openOpts run on the backend chosen; those about the
// bbolt file itself (its lock, its modes, read-only opening, compaction, crashes of a
// writing process) open it with Open and run on bbolt either way.
const backendEnv = "STORE_BACKEND"

// etcdClient is the shared cluster's client when the backend is etcd, else nil, and
// etcdSession the replica session the test journals claim with.
var (
	etcdClient  *clientv3.Client
	etcdSession *ha.Replica
)

// testKey seals the secrets of a shared journal in tests: every replica needs the same.
var testKey = bytes.Repeat([]byte{0x5e}, 32)

// runOnBackends runs the suite on the backend STORE_BACKEND names; without one, on bbolt and
// then, in a child test binary with the same flags, on etcd: so the README's test command
// proves both.
func runOnBackends(m *testing.M) int {
	stop, err := startBackend()
	if err != nil {
		fmt.Println("store tests:", err)
		return 2
	}
	code := m.Run()
	stop()
	if os.Getenv(backendEnv) != "" || code != 0 {
		return code
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), backendEnv+"=etcd")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Println("store tests on etcd:", err)
		return 1
	}
	return 0
}

// startBackend starts what STORE_BACKEND asks for, and returns its cleanup.
func startBackend() (func(), error) {
	switch b := os.Getenv(backendEnv); b {
	case "", "bbolt":
		fmt.Println("store tests: backend bbolt")
		return func() {}, nil
	case "etcd":
		dir, err := os.MkdirTemp("", "store-etcd-")
		if err != nil {
			return nil, err
		}
		cl, err := etcdtest.Launch(dir, 3)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		etcdClient, err = ha.Dial(ha.ClientConfig{Endpoints: cl.Endpoints()})
		if err != nil {
			cl.Close()
			os.RemoveAll(dir)
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		etcdSession, err = ha.Join(ctx, ha.Config{Client: etcdClient, Prefix: "/store-test-session/", Name: "store-test", TTL: time.Minute})
		cancel()
		if err != nil {
			etcdClient.Close()
			cl.Close()
			os.RemoveAll(dir)
			return nil, err
		}
		fmt.Printf("store tests: backend etcd, embedded 3-member cluster at %s\n", strings.Join(cl.Endpoints(), ","))
		return func() { etcdSession.Close(); etcdClient.Close(); cl.Close(); os.RemoveAll(dir) }, nil
	default:
		return nil, fmt.Errorf("%s=%q: want bbolt or etcd", backendEnv, b)
	}
}

// openOpts opens the journal of dir on the backend of the run. On etcd, dir names the
// journal's prefix, so opening the same dir again opens the same journal.
func openOpts(dir string, opts Options) (*Store, error) {
	if etcdClient == nil {
		return Open(dir, opts)
	}
	if opts.Key == nil {
		opts.Key = testKey
	}
	db := ha.NewKV(etcdClient, "/store-test"+dir+"/", ha.KVOptions{Timeout: 30 * time.Second, Session: etcdSession})
	return OpenShared(db, dir, "etcd (test)", opts)
}

// closedOK says err is what Check returns on a store already closed.
func closedOK(err error) bool { return errors.Is(err, berrors.ErrDatabaseNotOpen) }

// bboltOnly marks a test of the bbolt file itself (its lock, modes, key file, read-only
// opening, compaction, a writer killed mid-commit): it runs in the bbolt pass, and says so
// in the etcd pass rather than run the same bbolt test twice.
func bboltOnly(t *testing.T) {
	t.Helper()
	if etcdClient != nil {
		t.Skip("a test of the bbolt file: it runs in the bbolt pass")
	}
}

// A shared journal needs the same key on every replica: none given is refused in words,
// and a replica with another key than the journal's is refused before it writes anything.
func TestSharedJournalKey(t *testing.T) {
	if etcdClient == nil {
		t.Skip("a test of the shared journal: it runs in the etcd pass")
	}
	dir := t.TempDir()
	db := ha.NewKV(etcdClient, "/store-test-key"+dir+"/", ha.KVOptions{})
	if _, err := OpenShared(db, dir, "etcd", Options{}); err == nil || !strings.Contains(err.Error(), "BOT_ENCRYPTION_KEY") {
		t.Fatalf("no key: %v", err)
	}
	s, err := OpenShared(db, dir, "etcd", Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.PutSecret("U1", []byte("pw"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte{0x11}, 32)
	if _, err := OpenShared(db, dir, "etcd", Options{Key: other}); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("another key: %v; want ErrKeyMismatch", err)
	}
	// A second replica with the same key opens what the first sealed.
	r, err := OpenShared(db, t.TempDir(), "etcd", Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.TakeSecret(id, "U1"); err != nil || string(got) != "pw" {
		t.Fatalf("the second replica reads %q, %v", got, err)
	}
	// A reader (bot journal) needs no key and writes nothing; a prefix no replica set up is
	// no journal.
	ro, err := OpenShared(db, t.TempDir(), "etcd", Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ro.SecretCount(); err != nil || n != 0 {
		t.Fatalf("the reader counts %d secrets: %v", n, err)
	}
	if err := ro.ClaimEntry(1); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("a reader claiming: %v", err)
	}
	empty := ha.NewKV(etcdClient, "/store-test-nothing"+dir+"/", ha.KVOptions{})
	if _, err := OpenShared(empty, dir, "etcd", Options{ReadOnly: true}); !errors.Is(err, ErrNoJournal) {
		t.Fatalf("reading a prefix no replica set up: %v; want ErrNoJournal", err)
	}
}

// On a shared journal an executing entry is claimed by the replica that began it, in the
// write-ahead transaction itself: another replica cannot claim it to settle it while that
// replica's session lives, and can as soon as it ends; leaving EntryExecuting drops it.
func TestSharedJournalClaims(t *testing.T) {
	if etcdClient == nil {
		t.Skip("a test of the shared journal: it runs in the etcd pass")
	}
	dir := t.TempDir()
	replica := func(name string) (*Store, *ha.Replica) { return sharedReplica(t, "/store-test-claims", dir, name) }
	a, ra := replica("replica-a")
	b, _ := replica("replica-b")
	e, err := a.BeginEntry(Entry{Action: "rotate-password", Connector: "prod", Requester: "U1"}, "U1")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ClaimEntry(e.ID); !errors.Is(err, ErrClaimed) || !strings.Contains(err.Error(), "replica-a") {
		t.Fatalf("claim of an entry replica-a runs: %v; want ErrClaimed by replica-a", err)
	}
	// replica-a's own claim is its own: it may settle what its action left executing.
	if err := a.ClaimEntry(e.ID); err != nil {
		t.Fatalf("replica-a claiming its own entry: %v", err)
	}
	if err := b.ReleaseEntry(e.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.ClaimEntry(e.ID); !errors.Is(err, ErrClaimed) {
		t.Fatalf("replica-b released replica-a's claim: %v", err)
	}
	// A request replica-a approved waits in its queue: claimed by replica-a until it runs.
	req, err := a.CreateRequest(Request{Action: "grant-role", Connector: "prod", Requester: "U1"}, "approved", "U1")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Store{a, b} {
		if err := s.ClaimRequest(req.ID); !errors.Is(err, ErrClaimed) {
			t.Fatalf("claim of a request replica-a queued: %v; want ErrClaimed", err)
		}
	}
	ra.Close() // replica-a's session ends: its claims go with it
	if err := b.ClaimRequest(req.ID); err != nil {
		t.Fatalf("claim of the request after replica-a's session ended: %v", err)
	}
	if _, err := b.TransitionRequest(req.ID, []string{"approved"}, Step{State: "failed", By: "reconcile"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.ClaimEntry(e.ID); err != nil {
		t.Fatalf("claim after replica-a's session ended: %v", err)
	}
	if _, err := b.TransitionEntry(e.ID, []string{EntryExecuting}, Step{State: EntryFailed, By: "reconcile"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.ClaimEntry(e.ID); !errors.Is(err, ErrConflict) {
		t.Fatalf("claim of a failed entry: %v; want a conflict", err)
	}
	b.db.View(func(tx kv.Tx) error {
		if n := tx.Bucket(bucketClaims).KeyN(); n != 0 {
			t.Errorf("%d claims left after the entry settled", n)
		}
		return nil
	})
	// A replica whose session is gone begins nothing: the write-ahead step fails whole.
	if _, err := a.BeginEntry(Entry{Action: "rotate-password", Connector: "prod", Requester: "U1"}, "U1"); !errors.Is(err, ha.ErrSessionLost) {
		t.Fatalf("a replica without a session began an entry: %v; want ErrSessionLost", err)
	}
	if es, _ := b.Executing(); len(es) != 0 {
		t.Fatalf("executing after the refused begin: %+v", es)
	}
}

// A purge of more records than one etcd transaction may carry runs in passes, each within
// the cluster's limit on operations, and deletes them all in one call.
func TestSharedPurgeInPasses(t *testing.T) {
	if etcdClient == nil {
		t.Skip("a test of the shared journal: it runs in the etcd pass")
	}
	c := newClock()
	s, err := openOpts(t.TempDir(), Options{Now: c.Now, Retention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	for range n {
		e, err := s.BeginEntry(Entry{Action: "grant-role", Connector: "prod", Requester: "U1", Args: map[string]string{"user": "u"}}, "U1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.TransitionEntry(e.ID, []string{EntryExecuting}, Step{State: EntryDone}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRequest(Request{Action: "grant-role"}, "denied", "U1"); err != nil {
			t.Fatal(err)
		}
	}
	c.Add(48 * time.Hour)
	st, err := s.Purge()
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != n || st.Requests != n {
		t.Fatalf("purged %+v, want %d entries and %d requests", st, n, n)
	}
}

// One at a time across replicas: a name claimed by one replica (a user being changed, a
// password being revealed) is refused to another, naming the holder, until released or the
// holder's session ends; the holder's own claim counts as won (a release that failed).
func TestSharedNamedClaims(t *testing.T) {
	if etcdClient == nil {
		t.Skip("a test of the shared journal: it runs in the etcd pass")
	}
	dir := t.TempDir()
	replica := func(name string) (*Store, *ha.Replica) { return sharedReplica(t, "/store-test-named", dir, name) }
	a, ra := replica("replica-a")
	b, _ := replica("replica-b")
	release, err := a.Claim("target/prod\x00app@admin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Claim("target/prod\x00app@admin"); !errors.Is(err, ErrClaimed) || !strings.Contains(err.Error(), "replica-a") {
		t.Fatalf("replica-b claiming what replica-a holds: %v; want ErrClaimed by replica-a", err)
	}
	if _, err := b.Claim("target/prod\x00other@admin"); err != nil {
		t.Fatalf("another name: %v", err)
	}
	if _, err := a.Claim("target/prod\x00app@admin"); err != nil {
		t.Fatalf("replica-a's own claim: %v", err)
	}
	release()
	rb, err := b.Claim("target/prod\x00app@admin")
	if err != nil {
		t.Fatalf("after the release: %v", err)
	}
	rb()
	// A holder that dies leaves nothing held.
	if _, err := a.Claim("reveal/s1"); err != nil {
		t.Fatal(err)
	}
	ra.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := b.Claim("reveal/s1")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a dead replica's claim outlived its session: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sharedReplica is one replica of the shared journal of dir under prefix: its session in the
// group (closed when the test ends) and its store.
func sharedReplica(t *testing.T, prefix, dir, name string) (*Store, *ha.Replica) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, err := ha.Join(ctx, ha.Config{Client: etcdClient, Prefix: prefix + "/", Name: name, TTL: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	s, err := OpenShared(ha.NewKV(etcdClient, prefix+dir+"/", ha.KVOptions{Session: r}), dir, "etcd", Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}
