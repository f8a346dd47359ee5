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

// snapshotTimeout bounds a whole snapshot exchange, so that a stuck reader never holds the
// journal's read transaction (and its file's old pages) for long.
const snapshotTimeout = 5 * time.Minute

// serveSnapshots listens on SocketName in dir for as long as the serve runs, replacing a
// socket a crashed bot left; stop closes it (removing the file) and waits for the snapshots
// in flight. A socket it cannot make is logged, not fatal: the journal commands then need
// the bot stopped, as before.
func serveSnapshots(dir string, st *store.Store, log *slog.Logger) (stop func()) {
	path := filepath.Join(dir, SocketName)
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
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return // closed
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if err := answerSnapshot(c, st); err != nil {
					log.Warn("journal snapshot", "err", err)
				}
			}()
		}
	}()
	return func() { ln.Close(); wg.Wait() }
}

// answerSnapshot serves one connection: one request line, one answer.
func answerSnapshot(c *net.UnixConn, st *store.Store) error {
	_ = c.SetDeadline(time.Now().Add(snapshotTimeout))
	fail := func(msg string) error {
		fmt.Fprintf(c, "error %s\n", msg)
		return errors.New(msg)
	}
	if uid, known, err := peerUID(c); err != nil {
		return fail("cannot tell who asks: " + err.Error())
	} else if known && uid != os.Getuid() {
		return fail(fmt.Sprintf("user %d may not read the journal of a bot running as user %d", uid, os.Getuid()))
	}
	line, err := bufio.NewReader(io.LimitReader(c, 64)).ReadString('\n')
	if err != nil {
		return fail("no request")
	}
	if strings.TrimSpace(line) != "snapshot" {
		return fail(fmt.Sprintf("unknown request %q: this bot answers snapshot", strings.TrimSpace(line)))
	}
	return st.Snapshot(func(size int64, wt io.WriterTo) error {
		if _, err := fmt.Fprintf(c, "ok %d\n", size); err != nil {
			return err
		}
		_, err := wt.WriteTo(c)
		return err
	})
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
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, "snapshot\n"); err != nil {
		return "", nil, fmt.Errorf("%w (%v)", errNoSnapshot, err)
	}
	r := bufio.NewReader(conn)
	head, err := r.ReadString('\n')
	if err != nil {
		return "", nil, fmt.Errorf("%w (no answer: %v)", errNoSnapshot, err)
	}
	head = strings.TrimSpace(head)
	if msg, ok := strings.CutPrefix(head, "error "); ok {
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
// says on notice that it reads one. closeFn closes it and removes the copy.
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
	abs, _ := filepath.Abs(filepath.Join(dir, store.FileName))
	fmt.Fprintf(notice, "mongobot: the bot is running: reading a snapshot of its journal %s taken at %s\n", abs, stamp(time.Now()))
	return st, func() { st.Close(); cleanup() }, nil
}
