package main

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mongobot/internal/syncbuf"
	"mongobot/store"
)

// The snapshot socket: a crashed bot's socket is replaced, a file that is not a socket is
// left alone (and said), a request other than snapshot is refused in words, and a snapshot
// fetched opens as the journal, in a private folder removed afterwards.
func TestSnapshotSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st, err := store.Open(dir, store.Options{Key: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CreateRequest(store.Request{Action: "lock-user", Connector: "prod", Requester: "U1"}, "pending", "U1"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, SocketName)
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	// Something else by that name: left alone.
	os.WriteFile(path, []byte("mine"), 0o600)
	serveSnapshots(dir, st, log)()
	if b, _ := os.ReadFile(path); string(b) != "mine" || !strings.Contains(logs.String(), "not a socket") {
		t.Fatalf("a file by the socket's name: %q, log %s", b, logs.String())
	}
	os.Remove(path)

	// A crashed bot's socket: still on disk, nobody listening.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	stop := serveSnapshots(dir, st, log)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the socket after a crashed one: %v %v", fi, err)
	}

	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("give me everything\n"))
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if !strings.HasPrefix(line, "error unknown request") {
		t.Errorf("an unknown request: %q", line)
	}

	snap, cleanup, err := fetchSnapshot(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(snap); fi.Mode().Perm() != 0o700 {
		t.Errorf("the snapshot's folder is %v", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(snap, store.FileName)); fi.Mode().Perm() != 0o600 {
		t.Errorf("the snapshot is %v", fi.Mode())
	}
	ro, err := store.Open(snap, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	rs, _, err := ro.Requests(0, 10, "pending")
	ro.Close()
	if err != nil || len(rs) != 1 {
		t.Errorf("the snapshot's pending requests: %v %v", rs, err)
	}
	cleanup()
	if _, err := os.Stat(snap); !os.IsNotExist(err) {
		t.Errorf("the snapshot is left: %v", err)
	}
	stop()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the socket is left after stop: %v", err)
	}
	if _, _, err := fetchSnapshot(t.Context(), dir); err == nil {
		t.Error("a snapshot with no bot listening")
	}
}

// A socket a killed bot left behind, with no bot running: the journal commands read the
// file itself, and say nothing of a snapshot.
func TestStaleSocketReadsTheFile(t *testing.T) {
	dir := unpackV010(t)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, SocketName), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	code, out, errs := cli(t, t.TempDir(), map[string]string{"BOT_DATA_DIR": dir, "BOT_ENCRYPTION_KEY": goldenKey}, "journal", "list", "100")
	// v0.1.0's journal awaits adoption, which list notes on stderr; of a snapshot, nothing.
	if code != 0 || strings.Contains(errs, "snapshot") || !strings.Contains(out, "grant-role") {
		t.Fatalf("journal list beside a stale socket: exit %d, %q\n%s", code, errs, out)
	}
}

// servedJournal serves a journal with one pending request on its socket.
func servedJournal(t *testing.T, opts store.Options) (dir string, st *store.Store, logs *syncbuf.Buffer, stop func()) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "data")
	opts.Key = make([]byte, 32)
	st, err := store.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.CreateRequest(store.Request{Action: "lock-user", Connector: "prod", Requester: "U1"}, "pending", "U1"); err != nil {
		t.Fatal(err)
	}
	logs = new(syncbuf.Buffer)
	stop = serveSnapshots(dir, st, slog.New(slog.NewTextHandler(logs, nil)))
	return dir, st, logs, stop
}

// A journal command killed while it reads (export piped into head, Ctrl-C) leaves no copy
// of the journal: the snapshot's folder is gone as soon as it is open, and reads go on.
func TestSnapshotGoneOnceOpen(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dir, _, _, stop := servedJournal(t, store.Options{})
	defer stop()
	noEnv := func(string) (string, bool) { return "", false }
	ro, closeFn, err := openSnapshot(noEnv, dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the snapshot is on disk while it is read: %v", left)
	}
	rs, _, err := ro.Requests(0, 10, "pending")
	if err != nil || len(rs) != 1 {
		t.Errorf("the snapshot's pending requests: %v %v", rs, err)
	}
	closeFn()
}

// A client that asks for a snapshot and never reads it holds no read transaction: the
// bot's writes, growing the file well past what it has mapped, go on; more clients than
// maxSnapshots are told the bot is busy; the copy on the bot's side is never on disk by
// name; and stop does not wait for the stuck clients.
func TestSnapshotStuckClient(t *testing.T) {
	dir, st, _, stop := servedJournal(t, store.Options{NoSync: true})
	reason := strings.Repeat("r", 200<<10)
	grow := func(n int) {
		for range n {
			if _, err := st.CreateRequest(store.Request{Action: "lock-user", Connector: "prod", Requester: "U1", Reason: reason}, "pending", "U1"); err != nil {
				t.Error(err)
				return
			}
		}
	}
	grow(10) // ~2 MB: more than a socket's buffers hold
	for range maxSnapshots {
		c, err := net.Dial("unix", filepath.Join(dir, SocketName))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("snapshot\n")); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := fetchSnapshot(t.Context(), dir)
	if err == nil || err.Error() != "the bot is busy handing out another snapshot: try again in a moment" {
		t.Errorf("a snapshot beyond %d at once: %v", maxSnapshots, err)
	}
	// Let the stuck clients' snapshots start streaming.
	time.Sleep(200 * time.Millisecond)
	if ents, _ := os.ReadDir(dir); true {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".mongobot-snapshot-") {
				t.Errorf("the bot's copy is on disk by name: %s", e.Name())
			}
		}
	}

	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); grow(25) }() // ~5 MB more: bbolt must remap
	select {
	case <-done:
		t.Logf("25 writes growing the journal by 5 MB beside 2 stuck clients: %v", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("the bot's writes are stalled by a client that reads nothing")
	}
	stopped := make(chan struct{})
	start = time.Now()
	go func() { defer close(stopped); stop() }()
	select {
	case <-stopped:
		t.Logf("stop beside 2 stuck clients: %v", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("stop waits for clients that read nothing")
	}
}

// A data folder others may write to gets no socket (they could swap it for their own and
// hand out a forged journal); one open to its group is said. And a peer of another user
// (root's cron backup) is told to run the journal commands as the bot's user.
func TestSnapshotSocketRefusesAnOpenFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st, err := store.Open(dir, store.Options{Key: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	os.Chmod(dir, 0o777)
	serveSnapshots(dir, st, log)()
	if _, err := os.Lstat(filepath.Join(dir, SocketName)); !os.IsNotExist(err) || !strings.Contains(logs.String(), "other users may write to the data folder; chmod 700 it") {
		t.Errorf("a socket in a folder open to all: %v\n%s", err, logs.String())
	}
	os.Chmod(dir, 0o770)
	stop := serveSnapshots(dir, st, log)
	if _, err := os.Lstat(filepath.Join(dir, SocketName)); err != nil || !strings.Contains(logs.String(), "open to its group: chmod 700 it") {
		t.Errorf("a socket in a folder open to its group: %v\n%s", err, logs.String())
	}
	stop()
	if msg := otherUser(0, 1000); !strings.Contains(msg, "user 0 may not read the journal of a bot running as user 1000: run the journal commands as the bot's user (uid 1000, the owner of the data folder)") {
		t.Errorf("another user is told %q", msg)
	}
}
