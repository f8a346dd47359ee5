package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"mongobot/ha"
	"mongobot/kv"
	"mongobot/store/storetest"
)

// restoreInto restores b on the backend of the run: a new data folder on bbolt, a new
// prefix on etcd (with max_txn_ops at its floor, 32, so that a restore takes many
// transactions). It returns the restored journal opened for writing.
func restoreInto(t *testing.T, b *Backup, key []byte, now func() time.Time) *Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "restored")
	if etcdClient == nil {
		if err := RestoreFile(dir, b); err != nil {
			t.Fatalf("restore: %v", err)
		}
		st, err := Open(dir, Options{Key: key, Now: now})
		if err != nil {
			t.Fatalf("open the restored journal: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	db := ha.NewKV(etcdClient, "/store-test-restore"+dir+"/", ha.KVOptions{Timeout: 30 * time.Second, MaxOps: 32, Session: etcdSession})
	if err := RestoreShared(db, "etcd (test)", b, RestoreOptions{MaxOps: 32}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	st, err := OpenShared(db, dir, "etcd (test)", Options{Key: key, Now: now})
	if err != nil {
		t.Fatalf("open the restored journal: %v", err)
	}
	return st
}

func backupOf(t *testing.T, st *Store) (*Backup, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := st.Backup(&buf, ""); err != nil {
		t.Fatalf("backup: %v", err)
	}
	b, err := ReadBackup(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("read the backup just taken: %v", err)
	}
	return b, buf.Bytes()
}

// The journal v0.1.0 left, which holds pending work (an 8h grant and an 8h access to end, a
// schedule, a pending request, sealed passwords), is backed up and restored on the run's
// backend: every obligation is found there by the same questions, the passwords open with
// the same key, the indexes are consistent, and new ids continue after the old ones.
func TestBackupRestoreKeepsPendingWork(t *testing.T) {
	key, err := ParseKey(storetest.V010Key)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := storetest.WriteV010(dir); err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return storetest.V010Time }
	src, err := Open(dir, Options{ReadOnly: true, Key: key, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := backupOf(t, src)
	src.Close()
	if b.Header.Backend != "bbolt" || b.Header.Schema != SchemaVersion || b.Secrets() != 2 || b.Header.Counts["claims"] != 0 {
		t.Errorf("header: %+v", b.Header)
	}
	if err := b.CheckKey(t.TempDir(), key); err != nil {
		t.Errorf("the key that sealed them: %v", err)
	}
	if err := b.CheckKey(t.TempDir(), bytes.Repeat([]byte{7}, 32)); !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), "do not open") {
		t.Errorf("another key: %v; want ErrBadKey saying the passwords do not open", err)
	}
	if err := b.CheckKey(t.TempDir(), nil); !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), "no key is given") {
		t.Errorf("no key: %v", err)
	}

	st := restoreInto(t, b, key, now)
	if err := st.Check(); err != nil {
		t.Errorf("the restored journal's consistency: %v", err)
	}
	// v0.1.0's records were never authenticated: restored, they await adoption as they did.
	if un, err := st.Unadopted(); err != nil || !un {
		t.Errorf("restored v0.1.0 journal unadopted: %v %v, want true", un, err)
	}
	if _, err := st.Adopt("test"); err != nil {
		t.Fatalf("adopt the restored journal: %v", err)
	}
	temp, err := st.Temporary()
	if err != nil || len(temp) != 2 {
		t.Errorf("temporary ends in the restored journal: %d %v, want the 8h grant and the 8h access", len(temp), err)
	}
	for _, e := range temp {
		if e.UndoAt.IsZero() {
			t.Errorf("entry #%d lost its end", e.ID)
		}
	}
	scs, err := st.Schedules()
	if err != nil || len(scs) != 1 || scs[0].Spec != "0 3 * * *" {
		t.Errorf("schedules: %+v %v", scs, err)
	}
	pending, _, err := st.Requests(0, 100, "pending")
	if err != nil || len(pending) != 1 || pending[0].Action != "lock-user" {
		t.Fatalf("pending requests: %+v %v", pending, err)
	}
	offers, err := st.OfferedTo("U0DEV")
	if err != nil || len(offers) != 2 {
		t.Fatalf("passwords offered: %+v %v", offers, err)
	}
	for _, o := range offers {
		if _, err := st.PeekSecret(o.ID, "U0DEV"); err != nil {
			t.Errorf("a restored password does not open with its key: %v", err)
		}
	}
	es, _, err := st.History(0, 1)
	if err != nil || len(es) != 1 {
		t.Fatal(err)
	}
	r, err := st.CreateRequest(Request{Action: "grant-role", Connector: "demo", Requester: "U0DEV"}, "pending", "U0DEV")
	if err != nil || r.ID <= pending[0].ID {
		t.Errorf("a new request after the restore: id %d (%v), want above %d: the sequences were not restored", r.ID, err, pending[0].ID)
	}
}

// A backup taken while another goroutine writes requests is one moment of the journal:
// its header's counts are what it holds, its indexes agree with its records, and the
// restored journal opens and passes the consistency check.
func TestBackupUnderLoad(t *testing.T) {
	dir := t.TempDir()
	st, err := openOpts(dir, Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var stop atomic.Bool
	var wg sync.WaitGroup
	var made atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if _, err := st.CreateRequest(Request{Action: "grant-role", Connector: "c", Requester: "U1", Args: map[string]string{"user": "app"}}, "pending", "U1"); err != nil {
				t.Errorf("write under backup: %v", err)
				return
			}
			made.Add(1)
		}
	}()
	for deadline := time.Now().Add(time.Minute); made.Load() < 5; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the writer made %d requests in a minute", made.Load())
		}
	}
	var last *Backup
	for i := 0; i < 3; i++ {
		b, _ := backupOf(t, st)
		if b.Header.Counts["requests"] == 0 || !b.Header.Indexed {
			t.Errorf("backup %d: %+v", i, b.Header)
		}
		last = b
	}
	stop.Store(true)
	wg.Wait()
	if made.Load() <= int64(last.Header.Counts["requests"]) {
		t.Logf("the writer made %d requests; the last backup holds %d", made.Load(), last.Header.Counts["requests"])
	}
	rs := restoreInto(t, last, testKey, time.Now)
	if err := rs.Check(); err != nil {
		t.Fatalf("restored from a backup under load: %v", err)
	}
	pending, _, err := rs.Requests(0, 100000, "pending")
	if err != nil || len(pending) != last.Header.Counts["requests"] {
		t.Errorf("the restored journal has %d pending requests (%v), the backup %d", len(pending), err, last.Header.Counts["requests"])
	}
}

// rewrite changes a backup's header with edit and signs it again, as a newer version (or an
// attacker who knows the format) would write it.
func rewrite(t *testing.T, raw []byte, edit func(h map[string]any)) []byte {
	t.Helper()
	lines := bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n"))
	var h map[string]any
	if err := json.Unmarshal(lines[0], &h); err != nil {
		t.Fatal(err)
	}
	edit(h)
	lines[0], _ = json.Marshal(h)
	body := append(bytes.Join(lines[:len(lines)-1], []byte("\n")), '\n')
	sum := sha256.Sum256(body)
	return append(body, []byte(fmt.Sprintf("{\"sha256\":%q}\n", hex.EncodeToString(sum[:])))...)
}

// A damaged, cut or newer backup is refused before anything is written, in words; a target
// that holds a journal is refused and left as it was.
func TestRestoreRefusals(t *testing.T) {
	st, err := openOpts(t.TempDir(), Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CreateRequest(Request{Action: "grant-role", Connector: "c", Requester: "U1"}, "pending", "U1"); err != nil {
		t.Fatal(err)
	}
	_, raw := backupOf(t, st)

	flipped := bytes.Clone(raw)
	flipped[len(flipped)/2] ^= 0x20
	for name, data := range map[string][]byte{
		"a byte changed": flipped,
		"cut short":      raw[:len(raw)*2/3],
		"empty":          nil,
		"not a backup":   []byte("hello\nworld\n"),
	} {
		if _, err := ReadBackup(bytes.NewReader(data)); !errors.Is(err, ErrBadBackup) {
			t.Errorf("%s: %v; want ErrBadBackup", name, err)
		}
	}
	newer := rewrite(t, raw, func(h map[string]any) { h["schema"] = SchemaVersion + 1 })
	if _, err := ReadBackup(bytes.NewReader(newer)); !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "newer bot") {
		t.Errorf("newer schema: %v; want ErrNewerSchema", err)
	}
	lying := rewrite(t, raw, func(h map[string]any) { h["records"] = 1 })
	if _, err := ReadBackup(bytes.NewReader(lying)); !errors.Is(err, ErrBadBackup) {
		t.Errorf("counts that do not match: %v", err)
	}

	b, err := ReadBackup(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	// A data folder with a journal: refused, the file untouched.
	dir := filepath.Join(t.TempDir(), "full")
	if err := storetest.WriteV010(dir); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, FileName))
	if err := RestoreFile(dir, b); !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "empty data folder") {
		t.Errorf("restore over a journal: %v; want ErrNotEmpty", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, FileName))
	if !bytes.Equal(before, after) {
		t.Error("a refused restore changed the journal")
	}
	if names, _ := os.ReadDir(dir); len(names) != 1 {
		t.Errorf("a refused restore left files behind: %v", names)
	}
}

// On etcd a restore takes many transactions. One interrupted after its first data
// transaction leaves a journal no open accepts, read-only or not, and no second restore
// writes over; once the prefix is emptied, the restore goes through.
func TestRestoreSharedInterrupted(t *testing.T) {
	if etcdClient == nil {
		t.Skip("a test of the shared journal: it runs in the etcd pass")
	}
	src, err := openOpts(t.TempDir(), Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for i := 0; i < 80; i++ {
		if _, err := src.CreateRequest(Request{Action: "grant-role", Connector: "c", Requester: "U1"}, "pending", "U1"); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := backupOf(t, src)
	dir := t.TempDir()
	prefix := "/store-test-interrupted" + dir + "/"
	db := ha.NewKV(etcdClient, prefix, ha.KVOptions{Timeout: 30 * time.Second, MaxOps: 32})
	crash := errors.New("killed")
	err = RestoreShared(db, "etcd (test)", b, RestoreOptions{MaxOps: 32, afterChunk: func(n int) error {
		if n == 2 {
			return crash
		}
		return nil
	}})
	if !errors.Is(err, crash) {
		t.Fatalf("interrupted restore: %v", err)
	}
	for _, ro := range []bool{false, true} {
		if _, err := OpenShared(db, dir, "etcd (test)", Options{Key: testKey, ReadOnly: ro}); !errors.Is(err, ErrRestoreUnfinished) || !strings.Contains(err.Error(), "run mongobot journal restore again") {
			t.Errorf("open (read-only %v) after an interrupted restore: %v; want ErrRestoreUnfinished", ro, err)
		}
	}
	if err := RestoreShared(db, "etcd (test)", b, RestoreOptions{MaxOps: 32}); !errors.Is(err, ErrNotEmpty) || !errors.Is(err, ErrRestoreUnfinished) {
		t.Errorf("a restore over an unfinished one: %v; want ErrNotEmpty naming the unfinished restore", err)
	}
	if _, err := etcdClient.Delete(t.Context(), prefix, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	// A restore whose mark vanishes after it wrote (the prefix emptied, or another restore
	// started there) says so, never that nothing was changed.
	chunks := 0
	if err := RestoreShared(db, "etcd (test)", b, RestoreOptions{MaxOps: 32, afterChunk: func(n int) error { chunks = n; return nil }}); err != nil {
		t.Fatal(err)
	}
	if _, err := etcdClient.Delete(t.Context(), prefix, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	for _, at := range []int{1, chunks} { // then a data transaction fails, or the last one
		err = RestoreShared(db, "etcd (test)", b, RestoreOptions{MaxOps: 32, afterChunk: func(n int) error {
			if n == at {
				_, err := etcdClient.Delete(t.Context(), prefix, clientv3.WithPrefix())
				return err
			}
			return nil
		}})
		if !errors.Is(err, ErrRestoreLost) || errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "empty the prefix") {
			t.Errorf("a restore whose mark vanished after transaction %d: %v; want ErrRestoreLost with the advice", at, err)
		}
		if _, err := etcdClient.Delete(t.Context(), prefix, clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
	}
	if err := RestoreShared(db, "etcd (test)", b, RestoreOptions{MaxOps: 32}); err != nil {
		t.Fatalf("restore into the emptied prefix: %v", err)
	}
	st, err := OpenShared(db, dir, "etcd (test)", Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Check(); err != nil {
		t.Error(err)
	}
	// A replica started on a non-empty prefix keeps it: a restore there is refused.
	if err := RestoreShared(db, "etcd (test)", b, RestoreOptions{}); !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "empty prefix") {
		t.Errorf("restore over a journal: %v", err)
	}
}

// A backup can hold requests between approval and their entry: approved and queued, or
// executing with no entry yet. The journal it came from may have run them after the backup,
// so the first writable open of the restored journal fails them, with a step by "restore"
// and its audit event, instead of leaving reconciliation to run them on the old approval.
// A request whose entry was begun is left to reconciliation; a pending one is untouched.
func TestRestoreFailsApprovedNotRun(t *testing.T) {
	src, err := openOpts(t.TempDir(), Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	mk := func(states ...string) Request {
		t.Helper()
		r, err := src.CreateRequest(Request{Action: "grant-role", Connector: "c", Requester: "U1", Args: map[string]string{"user": "app"}}, "pending", "U1")
		if err != nil {
			t.Fatal(err)
		}
		from := "pending"
		for _, s := range states {
			if r, err = src.TransitionRequest(r.ID, []string{from}, Step{State: s, By: "U2"}, nil); err != nil {
				t.Fatal(err)
			}
			from = s
		}
		return r
	}
	queued := mk("approved")
	begun := mk("approved", "executing")
	withEntry := mk("approved", "executing")
	if _, err := src.BeginEntry(Entry{RequestID: withEntry.ID, Requester: "U1", Connector: "c", Action: "grant-role"}, "bot"); err != nil {
		t.Fatal(err)
	}
	pending := mk()
	b, _ := backupOf(t, src)

	st := restoreInto(t, b, testKey, time.Now)
	if got := st.RestoreFailed(); len(got) != 2 || got[0] != queued.ID || got[1] != begun.ID {
		t.Errorf("failed by the open after the restore: %v, want [%d %d]", got, queued.ID, begun.ID)
	}
	for _, id := range []uint64{queued.ID, begun.ID} {
		r, err := st.Request(id)
		if err != nil {
			t.Fatal(err)
		}
		last := r.History[len(r.History)-1]
		if r.State != "failed" || last.By != "restore" || !strings.Contains(last.Note, "restored from a backup") || !strings.Contains(last.Note, "ask again") {
			t.Errorf("request %d after the restore: %s, last step %+v; want failed by restore", id, r.State, last)
		}
	}
	if r, _ := st.Request(withEntry.ID); r.State != "executing" {
		t.Errorf("the request with an entry: %s; want it left executing for reconciliation", r.State)
	}
	if r, _ := st.Request(pending.ID); r.State != "pending" {
		t.Errorf("the pending request: %s", r.State)
	}
	running, _, err := st.Requests(0, 100, "approved", "executing")
	if err != nil || len(running) != 1 || running[0].ID != withEntry.ID {
		t.Errorf("approved or executing after the restore: %+v %v; want only #%d", running, err, withEntry.ID)
	}
	if err := st.Check(); err != nil {
		t.Errorf("consistency after settling: %v", err)
	}
	var out bytes.Buffer
	if _, err := st.ExportAudit(&out, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), `"by":"restore"`); n != 2 {
		t.Errorf("%d audit events by restore, want 2:\n%s", n, out.String())
	}
	// The mark is gone: a later open settles nothing more.
	if _, err := st.TransitionRequest(pending.ID, []string{"pending"}, Step{State: "approved"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.update(func(tx kv.Tx) error {
		f, err := settleRestored(st, tx, time.Now())
		if len(f) != 0 {
			t.Errorf("settled again: %v", f)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// A restore moves the audit cursor past any the journal the backup came from can have
// issued since: a shipper whose cursor file is ahead of the backup still gets the events
// the restored journal records.
func TestRestoreAuditCursorMovesOn(t *testing.T) {
	src, err := openOpts(t.TempDir(), Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	mk := func(s *Store, who string) {
		t.Helper()
		if _, err := s.CreateRequest(Request{Action: "grant-role", Connector: "c", Requester: who}, "pending", who); err != nil {
			t.Fatal(err)
		}
	}
	mk(src, "U1")
	b, _ := backupOf(t, src)
	// The old journal goes on after the backup; the shipper ships it all.
	for i := 0; i < 5; i++ {
		mk(src, "U1")
	}
	shipped, err := src.ExportAudit(io.Discard, ExportOptions{ByCursor: true})
	if err != nil {
		t.Fatal(err)
	}

	st := restoreInto(t, b, testKey, time.Now)
	mk(st, "UNEW")
	var out bytes.Buffer
	if _, err := st.ExportAudit(&out, ExportOptions{After: shipped, ByCursor: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"UNEW"`) {
		t.Errorf("the event after the restore is not exported after cursor %d:\n%s", shipped, out.String())
	}
	if c, err := st.AuditCursor(); err != nil || c <= shipped || c < auditRestoreGap {
		t.Errorf("cursor after the restore: %d %v; want above %d and %d", c, err, shipped, uint64(auditRestoreGap))
	}
}

// A crafted backup (the checksum is no signature) is held to what Backup writes: no claims,
// no bucket the journal lacks; and its indexes are never trusted, whatever its header says,
// so an index that disagrees with the records is rebuilt from them.
func TestRestoreCraftedBackup(t *testing.T) {
	src, err := openOpts(t.TempDir(), Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	e, err := src.BeginEntry(Entry{Requester: "U1", Connector: "c", Action: "grant-role", Args: map[string]string{"user": "app"}}, "bot")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.TransitionEntry(e.ID, []string{EntryExecuting}, Step{State: EntryDone}, func(e *Entry) { e.UndoAt = time.Now().Add(8 * time.Hour) }); err != nil {
		t.Fatal(err)
	}
	if temp, err := src.Temporary(); err != nil || len(temp) != 1 {
		t.Fatalf("the grant to end: %d %v", len(temp), err)
	}
	_, raw := backupOf(t, src)

	// resign edits the lines between header and trailer and signs the result again.
	resign := func(edit func(lines [][]byte) [][]byte) []byte {
		lines := bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n"))
		body := edit(slices.Clone(lines[:len(lines)-1]))
		all := append(bytes.Join(body, []byte("\n")), '\n')
		sum := sha256.Sum256(all)
		return append(all, []byte(fmt.Sprintf("{\"sha256\":%q}\n", hex.EncodeToString(sum[:])))...)
	}
	for name, want := range map[string]string{"claims": "claims bucket", "evil": `bucket "evil"`} {
		crafted := resign(func(l [][]byte) [][]byte {
			return append(l, []byte(fmt.Sprintf(`{"bucket":%q}`, name)))
		})
		if _, err := ReadBackup(bytes.NewReader(crafted)); !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), want) {
			t.Errorf("a backup with a %s bucket: %v; want ErrBadBackup naming it", name, err)
		}
	}
	// The grant's key left out of the temporary index, the header still saying indexed.
	var dropped int
	crafted := resign(func(l [][]byte) [][]byte {
		var out [][]byte
		for _, line := range l {
			var bl backupLine
			if json.Unmarshal(line, &bl) == nil && bl.B == string(bucketTemporary) {
				dropped++
				continue
			}
			out = append(out, line)
		}
		var h map[string]any
		if err := json.Unmarshal(out[0], &h); err != nil {
			t.Fatal(err)
		}
		h["indexed"] = true
		h["records"] = h["records"].(float64) - float64(dropped)
		h["counts"].(map[string]any)[string(bucketTemporary)] = 0
		out[0], _ = json.Marshal(h)
		return out
	})
	if dropped != 1 {
		t.Fatalf("the temporary index held %d keys, want 1", dropped)
	}
	b, err := ReadBackup(bytes.NewReader(crafted))
	if err != nil {
		t.Fatalf("the crafted backup: %v", err)
	}
	if !b.Header.Indexed {
		t.Fatal("the crafted header does not claim kept indexes")
	}
	st := restoreInto(t, b, testKey, time.Now)
	if temp, err := st.Temporary(); err != nil || len(temp) != 1 || temp[0].ID != e.ID {
		t.Errorf("the grant to end after restoring a crafted index: %+v %v; want entry #%d", temp, err, e.ID)
	}
	if err := st.Check(); err != nil {
		t.Error(err)
	}
}
