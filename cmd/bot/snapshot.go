package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"mongobot/store"
)

// SocketName is the unix socket a serving bot on bbolt listens on, in its data folder, so
// that the journal commands can read its journal while it holds the file's lock. It knows
// one request, "snapshot": the bot answers "ok <size>" and a consistent copy of the journal
// file, taken in one read transaction. The copy holds what the file holds (sealed passwords
// stay sealed; the key never travels). The folder is 0700 and the socket 0600, and on Linux
// the bot also checks that the peer runs as its own user.
const SocketName = "mongobot.sock"

// snapshotTimeout bounds a whole snapshot exchange on the asking side.
const snapshotTimeout = 5 * time.Minute

// snapshotIdle is how long the bot waits on a client that reads (or asks) nothing before it
// drops it. Progress resets it, so a large journal on a slow link still goes through.
const snapshotIdle = 30 * time.Second

// maxSnapshots is how many snapshots the bot hands out at once; each one is a copy of the
// journal on its disk while it streams. More are refused with busyPrefix's words.
const maxSnapshots = 2

// busyPrefix starts the error a bot answers when maxSnapshots are under way, so that the
// journal commands can say to try again rather than that the bot refused.
const busyPrefix = "busy: "

// serveSnapshots listens on SocketName in dir for as long as the serve runs, replacing a
// socket a crashed bot left. stop closes it (removing the file) and the connections still
// open, and waits for their handlers, which at most finish a copy on local disk. A socket
// it cannot make is logged, not fatal: the journal commands then need the bot stopped, as
// before.
func serveSnapshots(dir string, st *store.Store, log *slog.Logger) (stop func()) {
	path := filepath.Join(dir, SocketName)
	// A data folder others may write to lets them replace the socket with their own and
	// hand the journal commands a forged journal: refuse it. One its group may write to
	// (a Kubernetes volume with fsGroup) is said, not refused.
	if fi, err := os.Stat(dir); err == nil && runtime.GOOS != "windows" {
		if m := fi.Mode().Perm(); m&0o002 != 0 {
			log.Error("not listening for journal snapshots: other users may write to the data folder; chmod 700 it (the journal commands need the bot stopped meanwhile)", "path", dir, "mode", m)
			return func() {}
		} else if m&0o077 != 0 {
			log.Warn("the data folder is open to its group: chmod 700 it unless the group is the bot's own", "path", dir, "mode", m)
		}
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			log.Error("not listening for journal snapshots: something that is not a socket has the socket's name; move it away", "path", path)
			return func() {}
		}
		// We hold the journal's lock, so no other bot serves this folder: the socket is a
		// crashed one's.
		_ = os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		log.Error("not listening for journal snapshots: the journal commands need the bot stopped", "path", path, "err", err)
		return func() {}
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		log.Error("not listening for journal snapshots", "path", path, "err", err)
		return func() {}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[*net.UnixConn]bool{}
		slots = make(chan struct{}, maxSnapshots)
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return // closed
			}
			// Taken here, in the order clients came, and never waited for: a connection
			// beyond maxSnapshots costs one line and is closed.
			select {
			case slots <- struct{}{}:
			default:
				_ = c.SetDeadline(time.Now().Add(time.Second))
				fmt.Fprintf(c, "error %sthe bot is busy handing out another snapshot: try again in a moment\n", busyPrefix)
				c.Close()
				continue
			}
			mu.Lock()
			if conns == nil { // stop came between the accept and here
				mu.Unlock()
				c.Close()
				<-slots
				return
			}
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				defer func() { mu.Lock(); delete(conns, c); mu.Unlock(); c.Close() }() // delete on nil is a no-op
				if err := answerSnapshot(c, dir, st); err != nil {
					log.Warn("journal snapshot", "err", err)
				}
			}()
		}
	}()
	return func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	}
}

// answerSnapshot serves one connection: one request line, one answer. The journal's read
// transaction only lasts while the copy is written to a private file on local disk: a
// client, however slow, never holds it (a held one stalls the bot's writes as soon as the
// file grows, for bbolt remaps it only once all readers are done).
func answerSnapshot(c *net.UnixConn, dir string, st *store.Store) error {
	_ = c.SetDeadline(time.Now().Add(snapshotIdle))
	fail := func(msg string) error {
		fmt.Fprintf(c, "error %s\n", msg)
		return errors.New(msg)
	}
	if uid, known, err := peerUID(c); err != nil {
		return fail("cannot tell who asks: " + err.Error())
	} else if known && uid != os.Getuid() {
		return fail(otherUser(uid, os.Getuid()))
	}
	line, err := bufio.NewReader(io.LimitReader(c, 64)).ReadString('\n')
	if err != nil {
		return fail("no request")
	}
	if strings.TrimSpace(line) != "snapshot" {
		return fail(fmt.Sprintf("unknown request %q: this bot answers snapshot", strings.TrimSpace(line)))
	}
	f, err := privateTemp(dir, ".mongobot-snapshot-")
	if err != nil {
		return fail("cannot copy the journal: " + err.Error())
	}
	defer f.Close()
	var size int64
	if err := st.Snapshot(func(n int64, wt io.WriterTo) error {
		size = n
		_, err := wt.WriteTo(f)
		return err
	}); err != nil {
		return fail("cannot copy the journal: " + err.Error())
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail("cannot copy the journal: " + err.Error())
	}
	w := idleWriter{c}
	if _, err := fmt.Fprintf(w, "ok %d\n", size); err != nil {
		return err
	}
	_, err = io.CopyBuffer(w, io.LimitReader(f, size), make([]byte, 256<<10))
	return err
}

// otherUser is what a peer of another user is told: the journal commands must run as the
// bot's user, which owns the data folder (a root cron job included: sudo -u that user).
func otherUser(peer, self int) string {
	return fmt.Sprintf("user %d may not read the journal of a bot running as user %d: run the journal commands as the bot's user (uid %d, the owner of the data folder), e.g. with sudo -u", peer, self, self)
}

// idleWriter moves the connection's deadline on before each write, so that only a client
// that stops reading for snapshotIdle is dropped.
type idleWriter struct{ c *net.UnixConn }

func (w idleWriter) Write(p []byte) (int, error) {
	_ = w.c.SetWriteDeadline(time.Now().Add(snapshotIdle))
	return w.c.Write(p)
}

// privateTemp makes a file only its owner reads (0600, in dir, which must be private), and
// unlinks it at once where the system allows (the open file stays readable), so that a
// process killed at any point leaves no copy of the journal behind. Where it does not
// (Windows), Close removes it.
func privateTemp(dir, prefix string) (*tempFile, error) {
	f, err := os.CreateTemp(dir, prefix)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	t := &tempFile{File: f}
	t.unlinked = os.Remove(f.Name()) == nil
	return t, nil
}

// tempFile is privateTemp's file.
type tempFile struct {
	*os.File
	unlinked bool
}

func (t *tempFile) Close() error {
	err := t.File.Close()
	if !t.unlinked {
		os.Remove(t.Name())
	}
	return err
}

// errNoSnapshot says the running bot offers no snapshot (an older version, or its socket
// could not be made).
var errNoSnapshot = errors.New("the running bot offers no snapshot")

// fetchSnapshot asks the bot serving dir for a snapshot of its journal and writes it, as
// store.FileName, into a new private folder (0700, the file 0600). cleanup removes it.
func fetchSnapshot(ctx context.Context, dir string) (snapDir string, cleanup func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(dir, SocketName))
	if err != nil {
		return "", nil, fmt.Errorf("%w (%v)", errNoSnapshot, err)
	}
	defer conn.Close()
	// A socket served by another user is not our bot's (someone who may write to the data
	// folder replaced it): what it hands out could be a forged journal.
	if uc, ok := conn.(*net.UnixConn); ok {
		if uid, known, err := peerUID(uc); err == nil && known && uid != os.Getuid() {
			return "", nil, fmt.Errorf("%s is served by user %d, not by you (user %d): run the journal commands as the bot's user, the owner of the data folder", filepath.Join(dir, SocketName), uid, os.Getuid())
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// A bot that is busy answers and closes before it reads the request: its answer is
	// still there to read when the request cannot be written.
	_, werr := io.WriteString(conn, "snapshot\n")
	r := bufio.NewReader(conn)
	head, err := r.ReadString('\n')
	if err != nil {
		if werr != nil {
			err = werr
		}
		return "", nil, fmt.Errorf("%w (no answer: %v)", errNoSnapshot, err)
	}
	head = strings.TrimSpace(head)
	if msg, ok := strings.CutPrefix(head, "error "); ok {
		if busy, ok := strings.CutPrefix(msg, busyPrefix); ok {
			return "", nil, errors.New(busy)
		}
		return "", nil, fmt.Errorf("the running bot refused a snapshot: %s", msg)
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(head, "ok "), 10, 64)
	if !strings.HasPrefix(head, "ok ") || err != nil || n <= 0 {
		return "", nil, fmt.Errorf("%w (it answered %q)", errNoSnapshot, head)
	}
	snapDir, err = os.MkdirTemp("", "mongobot-snapshot-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(snapDir) }
	f, err := os.OpenFile(filepath.Join(snapDir, store.FileName), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		cleanup()
		return "", nil, err
	}
	got, err := io.CopyN(f, r, n)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("the snapshot stopped after %d of %d bytes: %v", got, n, err)
	}
	return snapDir, cleanup, nil
}

// openSnapshot opens, read-only, a snapshot of the journal the bot serving dir holds, and
// says on notice that it reads one. The copy is removed as soon as it is open (an open file
// stays readable), so a command killed while it reads (export piped into head, Ctrl-C)
// leaves no copy of the journal behind; where the system refuses (Windows), closeFn
// removes it.
func openSnapshot(env func(string) (string, bool), dir string, notice io.Writer) (*store.Store, func(), error) {
	snapDir, cleanup, err := fetchSnapshot(context.Background(), dir)
	if err != nil {
		return nil, nil, err
	}
	st, err := openStoreWith(env, snapDir, store.Options{ReadOnly: true}, store.Open)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	cleanup()
	abs, _ := filepath.Abs(filepath.Join(dir, store.FileName))
	fmt.Fprintf(notice, "mongobot: the bot is running: reading a snapshot of its journal %s taken at %s\n", abs, stamp(time.Now()))
	return st, func() { st.Close(); cleanup() }, nil
}
