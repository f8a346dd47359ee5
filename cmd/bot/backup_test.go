package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mongobot/bot/slack/slacktest"
	"mongobot/connector/mongotest"
	"mongobot/ha/etcdtest"
	"mongobot/store"
)

// records reads a backup file's records (bucket -> key -> value), leaving out meta's
// "indexed" mark, which names the transaction that kept the indexes and so differs from one
// journal to another by design, and its "restored" mark, which a restore leaves for the
// first writable open (none here: the journal commands only read).
func records(t *testing.T, path string) map[string]map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := store.ReadBackup(f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	f.Seek(0, 0)
	out := map[string]map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var l struct {
			B string `json:"b"`
			K []byte `json:"k"`
			V []byte `json:"v"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.B == "" || (l.B == "meta" && (string(l.K) == "indexed" || string(l.K) == "restored")) {
			continue
		}
		if out[l.B] == nil {
			out[l.B] = map[string]string{}
		}
		out[l.B][string(l.K)] = string(l.V)
	}
	return out
}

// TestBackupWhileServeRuns runs serve as its own process on the bbolt journal, which it
// locks, while a goroutine files requests through Slack: journal list, export and backup
// work meanwhile on snapshots the bot hands out and say so; the backup is restored into an
// empty data folder, then into an empty etcd prefix, and backed up from etcd and restored
// into bbolt again: each copy holds exactly the records of the backup, and a bot serves the
// restored journal. The refusals (a journal already there, a damaged backup) change nothing.
// requesters file the tests' load in turn: one person may have only
// approvals.max_open_per_requester (default 10) requests open at once.
var requesters = [2]string{"U0DEV", "U0OPS"}

func TestBackupWhileServeRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a bot process")
	}
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	const users = 12
	for i := 1; i <= users; i++ {
		if err := emu.CreateUser(fmt.Sprintf("app%d", i), "pw", "admin", nil); err != nil {
			t.Fatal(err)
		}
	}
	sl := slacktest.New()
	defer sl.Close()
	key := store.NewKey()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	env := map[string]string{"SLACK_APP_TOKEN": sl.AppToken, "SLACK_BOT_TOKEN": sl.BotToken, "SLACK_API_URL": sl.URL(),
		"BOT_CONFIG": writeConfig(t), "BOT_DATA_DIR": data, "MONGO_URI": emu.URI(), "BOT_ENCRYPTION_KEY": key}
	bot := startChild(t, env)
	waitFor(t, sl, "the bot to start", func() bool { return strings.Contains(bot.log.String(), "msg=starting") })
	sock := filepath.Join(data, SocketName)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the snapshot socket: %v %v", fi, err)
	}

	// Load: requests filed one after another while the journal is read and backed up.
	var stop atomic.Bool
	var filed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= users && !stop.Load(); i++ {
			// Two requesters: one person may hold only approvals.max_open_per_requester (10)
			// open requests, and these stay pending.
			if _, err := sl.SlashCommand(requesters[i%2], "C0OPS", "/mongo", fmt.Sprintf("lock-user prod app%d", i)); err != nil {
				t.Errorf("slash command: %v", err)
				return
			}
			if _, err := sl.WaitMessage(20*time.Second, "a request card", slacktest.Containing(fmt.Sprintf("Request #%d", i))); err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			filed.Add(1)
		}
	}()
	waitFiled(t, &filed, 2)
	for _, args := range [][]string{{"journal", "list"}, {"journal", "export"}} {
		code, _, errs := cli(t, work, env, args...)
		if code != 0 || !strings.Contains(errs, "reading a snapshot of its journal") {
			t.Fatalf("%v while serve runs: exit %d, stderr %q", args, code, errs)
		}
	}
	backup := filepath.Join(work, "backup.jsonl")
	for i := 0; i < 3; i++ {
		code, out, errs := cli(t, work, env, "journal", "backup", "--out", backup)
		if code != 0 || !strings.Contains(out, "backed up") || !strings.Contains(out, "of "+filepath.Join(data, store.FileName)+" (bbolt") || !strings.Contains(errs, "reading a snapshot") {
			t.Fatalf("journal backup while serve runs: exit %d, %q %q", code, out, errs)
		}
	}
	stop.Store(true)
	wg.Wait()
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the backup file: %v %v", fi, err)
	}
	took := records(t, backup)
	if len(took["requests"]) < 2 {
		t.Errorf("the backup holds %d requests, at least 2 were filed before it", len(took["requests"]))
	}
	if len(took["claims"]) != 0 {
		t.Error("the backup holds claims")
	}
	if strings.Contains(string(mustRead(t, backup)), key) {
		t.Fatal("the backup holds the encryption key")
	}
	if names, _ := filepath.Glob(filepath.Join(work, ".backup.jsonl.tmp-*")); len(names) != 0 {
		t.Errorf("temporary files left: %v", names)
	}
	bot.cmd.Process.Signal(os.Interrupt)
	bot.cmd.Wait()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the socket is left after a clean stop: %v", err)
	}

	// Into an empty data folder.
	restored := filepath.Join(work, "restored")
	renv := with(env, "BOT_DATA_DIR", restored)
	if code, out, errs := cli(t, work, renv, "journal", "restore", backup, "--yes"); code != 0 || !strings.Contains(out, "restored") {
		t.Fatalf("restore: exit %d: %s %s", code, out, errs)
	}
	b2 := filepath.Join(work, "b2.jsonl")
	if code, _, errs := cli(t, work, renv, "journal", "backup", "--out", b2); code != 0 {
		t.Fatalf("backup of the restored journal: %d %s", code, errs)
	}
	if got := records(t, b2); !reflect.DeepEqual(got, took) {
		t.Errorf("the restored journal differs from the backup")
	}
	// Refusals: a journal there already, a damaged backup, the wrong key. Nothing changes.
	before := mustRead(t, filepath.Join(restored, store.FileName))
	damaged := filepath.Join(work, "damaged.jsonl")
	raw := mustRead(t, backup)
	raw[len(raw)/2] ^= 1
	os.WriteFile(damaged, raw, 0o600)
	empty := filepath.Join(work, "empty")
	for _, tt := range []struct {
		env  map[string]string
		file string
		says string
	}{
		{renv, backup, "already holds a journal"},
		{with(env, "BOT_DATA_DIR", empty), damaged, "checksum does not match"},
	} {
		code, _, errs := cli(t, work, tt.env, "journal", "restore", tt.file, "--yes")
		if code == 0 || !strings.Contains(errs, tt.says) || !strings.Contains(errs, "nothing was changed") {
			t.Errorf("restore %s into %s: exit %d, %q; want a refusal saying %q", tt.file, tt.env["BOT_DATA_DIR"], code, errs, tt.says)
		}
	}
	if !bytes.Equal(before, mustRead(t, filepath.Join(restored, store.FileName))) {
		t.Error("a refused restore changed the journal")
	}
	if _, err := os.Stat(empty); err == nil {
		if names, _ := os.ReadDir(empty); len(names) != 0 {
			t.Errorf("a refused restore wrote into the empty folder: %v", names)
		}
	}

	// Into an empty etcd prefix (max_txn_ops at its floor: several transactions), and back.
	cl := etcdtest.Start(t, 1)
	ecfg := filepath.Join(work, "etcd.yaml")
	os.WriteFile(ecfg, []byte(fmt.Sprintf("connectors:\n  - name: prod\n    connection_string: ${MONGO_URI}\napprovals:\n  channel: C0APPROVALS\n  approvers: {users: [U0ALICE]}\nstore:\n  etcd:\n    endpoints: [%s]\n    prefix: /restored/\n    max_txn_ops: 32\n", strings.Join(cl.Endpoints(), ", "))), 0o600)
	eenv := with(with(env, "BOT_CONFIG", ecfg), "BOT_DATA_DIR", filepath.Join(work, "edata"))
	if code, out, errs := cli(t, work, eenv, "journal", "restore", backup, "--yes"); code != 0 {
		t.Fatalf("restore into etcd: exit %d: %s %s", code, out, errs)
	}
	if code, _, errs := cli(t, work, eenv, "journal", "restore", backup, "--yes"); code == 0 || !strings.Contains(errs, "already holds a journal") {
		t.Errorf("a second restore into the prefix: exit %d, %q", code, errs)
	}
	b3 := filepath.Join(work, "b3.jsonl")
	if code, _, errs := cli(t, work, eenv, "journal", "backup", "--out", b3); code != 0 {
		t.Fatalf("backup from etcd: %d %s", code, errs)
	}
	if got := records(t, b3); !reflect.DeepEqual(got, took) {
		t.Errorf("the journal restored into etcd differs from the backup")
	}
	back := filepath.Join(work, "back")
	if code, _, errs := cli(t, work, with(env, "BOT_DATA_DIR", back), "journal", "restore", b3, "--yes"); code != 0 {
		t.Fatalf("etcd's backup into bbolt: %d %s", code, errs)
	}
	code, listed, errs := cli(t, work, with(env, "BOT_DATA_DIR", back), "journal", "list")
	_, want, _ := cli(t, work, renv, "journal", "list")
	if code != 0 || listed != want {
		t.Errorf("journal list after bbolt -> etcd -> bbolt: exit %d %s\n%s\nwant\n%s", code, errs, listed, want)
	}

	// A bot serves the restored journal, the pending requests with it.
	served := startChild(t, renv)
	waitFor(t, sl, "the restored bot to start", func() bool { return strings.Contains(served.log.String(), "msg=starting") })
	served.cmd.Process.Signal(os.Interrupt)
	served.cmd.Wait()
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{}
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The journal v0.1.0 left holds sealed passwords: its backup, taken with the bot stopped, is
// refused by a restore with another key, or with none, in words and before anything is
// written; with its key it is restored, and the restored journal lists as the original.
func TestRestoreNeedsTheKey(t *testing.T) {
	dir := unpackV010(t)
	work := t.TempDir()
	env := map[string]string{"BOT_DATA_DIR": dir, "BOT_ENCRYPTION_KEY": goldenKey}
	backup := filepath.Join(work, "v010.jsonl")
	code, out, errs := cli(t, work, env, "journal", "backup", "--out", backup)
	if code != 0 || strings.Contains(errs, "snapshot") || !strings.Contains(out, "secrets 2") {
		t.Fatalf("backup of a stopped bot's journal: exit %d, %q %q", code, out, errs)
	}
	target := filepath.Join(work, "restored")
	for _, tt := range []struct{ key, says string }{
		{store.NewKey(), "do not open with BOT_ENCRYPTION_KEY"},
		{"", "no key is given"},
	} {
		code, _, errs := cli(t, work, map[string]string{"BOT_DATA_DIR": target, "BOT_ENCRYPTION_KEY": tt.key}, "journal", "restore", "--yes", backup)
		if code == 0 || !strings.Contains(errs, tt.says) || !strings.Contains(errs, "set BOT_ENCRYPTION_KEY to the key of the bot that took the backup") {
			t.Errorf("restore with key %q: exit %d, %q", tt.key, code, errs)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Fatalf("a refused restore made %s: %v", target, err)
		}
	}
	renv := with(env, "BOT_DATA_DIR", target)
	if code, out, errs := cli(t, work, renv, "journal", "restore", "--yes", backup); code != 0 || !strings.Contains(out, "secrets 2") {
		t.Fatalf("restore with the key: exit %d: %s %s", code, out, errs)
	}
	_, want, _ := cli(t, work, env, "journal", "list", "100")
	if _, got, _ := cli(t, work, renv, "journal", "list", "100"); got != want || !strings.Contains(got, "grant-role") {
		t.Errorf("the restored journal lists\n%s\nthe original\n%s", got, want)
	}
}

// On etcd, journal backup reads one revision while a replica serves and files requests: the
// backup is restored into an empty data folder, which then holds exactly its records.
func TestBackupWhileReplicaServes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd cluster and a replica")
	}
	cl := etcdtest.Start(t, 1)
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	const users = 10
	for i := 1; i <= users; i++ {
		if err := emu.CreateUser(fmt.Sprintf("app%d", i), "pw", "admin", nil); err != nil {
			t.Fatal(err)
		}
	}
	key := store.NewKey()
	r := newReplica(t, "r0", 0, cl, emu.URI(), key)
	r.serve(t)
	var filed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= users; i++ {
			if _, err := r.sl.SlashCommand(requesters[i%2], "C0OPS", "/mongo", fmt.Sprintf("lock-user prod app%d", i)); err != nil {
				t.Errorf("slash command: %v", err)
				return
			}
			if _, err := r.sl.WaitMessage(20*time.Second, "a request card", slacktest.Containing(fmt.Sprintf("Request #%d", i))); err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			filed.Add(1)
		}
	}()
	waitFiled(t, &filed, 2)
	work := t.TempDir()
	backup := filepath.Join(work, "etcd.jsonl")
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"journal", "backup", "--out", backup}, envOf(r.env), nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "(etcd, schema 1)") {
		t.Fatalf("backup while a replica serves: exit %d: %s %s", code, out.String(), errb.String())
	}
	wg.Wait()
	took := records(t, backup)
	if n := len(took["requests"]); n < 2 || n > users {
		t.Errorf("the backup holds %d requests; 2 to %d were filed by then", n, users)
	}
	if len(took["claims"]) != 0 {
		t.Error("the backup holds the replicas' claims")
	}
	benv := map[string]string{"BOT_CONFIG": writeConfig(t), "BOT_DATA_DIR": filepath.Join(work, "bbolt"), "BOT_ENCRYPTION_KEY": key, "MONGO_URI": emu.URI()}
	if code := run(t.Context(), []string{"journal", "restore", backup, "--yes"}, envOf(benv), nil, &out, &errb); code != 0 {
		t.Fatalf("etcd's backup into bbolt: %s", errb.String())
	}
	again := filepath.Join(work, "again.jsonl")
	if code := run(t.Context(), []string{"journal", "backup", "--out", again}, envOf(benv), nil, &out, &errb); code != 0 {
		t.Fatalf("backup of the restored journal: %s", errb.String())
	}
	got := records(t, again)
	// Every record, the shared journal's sealing key id in meta among them, made the trip.
	if !reflect.DeepEqual(got, took) {
		t.Errorf("the restored journal differs from the backup:\n%v\n%v", got["meta"], took["meta"])
	}
}

// waitFiled waits until n requests were filed, for at most a minute: the goroutine filing
// them may have failed.
func waitFiled(t *testing.T, filed *atomic.Int64, n int64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); filed.Load() < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d request(s) filed in a minute, want %d", filed.Load(), n)
		}
	}
}

// A shipper's cursor file that is ahead of a backup (it shipped what the journal recorded
// after the backup was taken) still gets what the restored journal records: a restore moves
// the audit cursor past any the old journal can have issued.
func TestRestoreKeepsExportCursorGoing(t *testing.T) {
	work := t.TempDir()
	old, restored := filepath.Join(work, "data"), filepath.Join(work, "restored")
	cursor := filepath.Join(work, "audit.cursor")
	entry := func(dir, who string) {
		t.Helper()
		st, err := store.Open(dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		e, err := st.BeginEntry(store.Entry{Action: "grant-role", Connector: "prod", Requester: who, Args: map[string]string{"user": "app"}}, "bot")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.TransitionEntry(e.ID, []string{store.EntryExecuting}, store.Step{State: store.EntryDone}, nil); err != nil {
			t.Fatal(err)
		}
	}
	do := func(dir string, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(t.Context(), args, envOf(map[string]string{"BOT_DATA_DIR": dir}), nil, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d %s", args, code, errb.String())
		}
		return out.String()
	}
	entry(old, "U0DEV")
	backup := filepath.Join(work, "backup.jsonl")
	do(old, "journal", "backup", "--out", backup)
	entry(old, "U0DEV") // after the backup: shipped, then lost with the old journal
	do(old, "journal", "export", "--cursor-file", cursor)
	shipped, _ := os.ReadFile(cursor)

	do(restored, "journal", "restore", backup, "--yes")
	entry(restored, "U0NEW")
	out := do(restored, "journal", "export", "--cursor-file", cursor)
	if strings.Count(out, `"U0NEW"`) != 2 || strings.Contains(out, `"U0DEV"`) {
		t.Errorf("export after the restore, from cursor %s: want the 2 new events and none before\n%s", bytes.TrimSpace(shipped), out)
	}
	if now, _ := os.ReadFile(cursor); string(now) == string(shipped) {
		t.Errorf("the cursor file stayed at %s", now)
	}
}

// A restore into etcd that lost its mark after it wrote never says nothing was changed: it
// names the prefix to delete, and that no replica must start on it; one refused before it
// wrote says nothing was changed.
func TestSharedRestoreErrorWords(t *testing.T) {
	lost := sharedRestoreError(fmt.Errorf("store: restore into etcd stopped after 3 transaction(s): %w: the mark vanished", store.ErrRestoreLost), "/bot/journal/")
	if s := lost.Error(); strings.Contains(s, "nothing was changed") || !strings.Contains(s, "etcdctl del --prefix /bot/journal/") || !strings.Contains(s, "start no replica") {
		t.Errorf("lost mark: %q", s)
	}
	refused := sharedRestoreError(fmt.Errorf("%w: etcd already holds a journal", store.ErrNotEmpty), "/bot/journal/")
	if s := refused.Error(); !strings.HasSuffix(s, "nothing was changed") {
		t.Errorf("refused: %q", s)
	}
}

// The bot started on a restored journal says which requests the backup held approved and
// not run, and that they were failed, not run; MongoDB never sees them.
func TestServeSaysRestoreFailedRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a bot process")
	}
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	if err := emu.CreateUser("app", "pw", "admin", nil); err != nil {
		t.Fatal(err)
	}
	sl := slacktest.New()
	defer sl.Close()
	key := store.NewKey()
	k, err := store.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	data, restored := filepath.Join(work, "data"), filepath.Join(work, "restored")
	st, err := store.Open(data, store.Options{Key: k})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.CreateRequest(store.Request{Action: "lock-user", Connector: "prod", Requester: "U0DEV", Args: map[string]string{"user": "app", "db": "admin"}}, "pending", "U0DEV")
	if err == nil {
		_, err = st.TransitionRequest(r.ID, []string{"pending"}, store.Step{State: "approved", By: "U0ALICE"}, func(r *store.Request) {
			r.Votes = append(r.Votes, store.Vote{User: "U0ALICE", Approve: true, At: r.CreatedAt})
		})
	}
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SLACK_APP_TOKEN": sl.AppToken, "SLACK_BOT_TOKEN": sl.BotToken, "SLACK_API_URL": sl.URL(),
		"BOT_CONFIG": writeConfig(t), "BOT_DATA_DIR": data, "MONGO_URI": emu.URI(), "BOT_ENCRYPTION_KEY": key}
	backup := filepath.Join(work, "backup.jsonl")
	if code, _, errs := cli(t, work, env, "journal", "backup", "--out", backup); code != 0 {
		t.Fatalf("backup: %d %s", code, errs)
	}
	renv := with(env, "BOT_DATA_DIR", restored)
	if code, _, errs := cli(t, work, renv, "journal", "restore", backup, "--yes"); code != 0 {
		t.Fatalf("restore: %d %s", code, errs)
	}
	bot := startChild(t, renv)
	waitFor(t, sl, "the bot to start", func() bool { return strings.Contains(bot.log.String(), "msg=starting") })
	bot.cmd.Process.Signal(os.Interrupt)
	bot.cmd.Wait()
	if l := bot.log.String(); !strings.Contains(l, "restored from a backup") || !strings.Contains(l, fmt.Sprintf("requests=[%d]", r.ID)) {
		t.Errorf("the start on a restored journal does not say which requests it failed:\n%s", l)
	}
	if n := emu.Count("updateUser"); n != 0 {
		t.Errorf("updateUser sent %d times: the old approval ran", n)
	}
}
