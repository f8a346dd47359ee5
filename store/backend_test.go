package store

import (
	"bytes"
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
)

// The store's tests run on both backends: bbolt, then etcd (a real embedded 3-member cluster
// on loopback ports, started once for the package); STORE_BACKEND=bbolt or =etcd runs one. The
// tests that open a journal through openOpts run on the backend chosen; those about the
// bbolt file itself (its lock, its modes, read-only opening, compaction, crashes of a
// writing process) open it with Open and run on bbolt either way.
const backendEnv = "STORE_BACKEND"

// etcdClient is the shared cluster's client when the backend is etcd, else nil.
var etcdClient *clientv3.Client

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
		etcdClient, err = clientv3.New(clientv3.Config{Endpoints: cl.Endpoints(), DialTimeout: 5 * time.Second})
		if err != nil {
			cl.Close()
			os.RemoveAll(dir)
			return nil, err
		}
		fmt.Printf("store tests: backend etcd, embedded 3-member cluster at %s\n", strings.Join(cl.Endpoints(), ","))
		return func() { etcdClient.Close(); cl.Close(); os.RemoveAll(dir) }, nil
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
	db := ha.NewKV(etcdClient, "/store-test"+dir+"/", ha.KVOptions{Timeout: 30 * time.Second})
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
	if err := r.Rekey(other); err == nil {
		t.Fatal("Rekey on a shared journal was accepted")
	}
}
