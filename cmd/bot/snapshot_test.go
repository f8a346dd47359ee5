package main

import (
	"bufio"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	if code != 0 || errs != "" || !strings.Contains(out, "grant-role") {
		t.Fatalf("journal list beside a stale socket: exit %d, %q\n%s", code, errs, out)
	}
}
