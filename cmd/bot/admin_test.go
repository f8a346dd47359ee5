package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mongobot/config"
	"mongobot/connector/mongotest"
	"mongobot/delivery/vaultkv/vaulttest"
	"mongobot/secret"
	"mongobot/store"
)

func TestCheck(t *testing.T) {
	full, err := mongotest.NewServer(mongotest.Options{Topology: mongotest.Primary})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	// An account that can only change passwords.
	limited, err := mongotest.NewServer(mongotest.Options{AdminRoles: []mongotest.Role{{Role: "readAnyDatabase", DB: "admin"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer limited.Close()
	cfg := writeConfig(t)
	data := filepath.Join(t.TempDir(), "data")
	var out, errb bytes.Buffer
	check := func(uri string) int {
		out.Reset()
		errb.Reset()
		return run(context.Background(), []string{"check"}, envOf(withSlack(t, map[string]string{"BOT_CONFIG": cfg, "MONGO_URI": uri, "BOT_DATA_DIR": data})), nil, &out, &errb)
	}
	// verdict is check's last line; no line above it may claim the whole is ok.
	verdict := func() string {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		for _, l := range lines[:len(lines)-1] {
			if strings.Contains(l, ": ok") {
				t.Errorf("a verdict before the end: %q", l)
			}
		}
		return lines[len(lines)-1]
	}
	if code := check(full.URI()); code != 0 || !strings.Contains(out.String(), "prod: 7.0.14, replica set primary") ||
		!strings.Contains(out.String(), "grant-role") || verdict() != "check: ok" || errb.Len() != 0 {
		t.Fatalf("check on a full account: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if code := check(limited.URI()); code != 1 || !strings.Contains(out.String(), "cannot: missing") ||
		!strings.HasPrefix(verdict(), "check: ") || !strings.HasSuffix(verdict(), " problem(s)") || errb.Len() != 0 {
		t.Fatalf("check on a limited account: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if code := check("mongodb://u:p@127.0.0.1:1/?serverSelectionTimeoutMS=500"); code != 1 || !strings.Contains(out.String(), "prod: cannot check") ||
		verdict() != "check: 1 problem(s)" {
		t.Fatalf("check on a dead server: exit %d\n%s", code, out.String())
	}
	// A connection string the connector refuses is the connector's problem, in the one
	// verdict: not "config: ok" followed by an error.
	if code := check("postgres://u:pw-in-uri@x/"); code != 1 || !strings.Contains(out.String(), "prod: config: connectors[0]") ||
		verdict() != "check: 1 problem(s)" || strings.Contains(out.String()+errb.String(), "pw-in-uri") {
		t.Fatalf("check with a bad connection string: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"check"}, envOf(map[string]string{"BOT_CONFIG": filepath.Join(t.TempDir(), "none.yaml")}), nil, &out, &errb); code != 1 ||
		!strings.Contains(out.String(), "config: config file") || verdict() != "check: 1 problem(s)" {
		t.Fatalf("check without a config file: exit %d\n%s", code, out.String())
	}
	// Each config mistake is one problem, on its own line.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("connectors: [{name: a, connection_string: x}]\napprovals:\n  channel: general\n  approvers: {users: [alice, \"@bob\"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run(context.Background(), []string{"check"}, envOf(map[string]string{"BOT_CONFIG": bad}), nil, &out, &errb); code != 1 ||
		!strings.Contains(out.String(), "has 3 mistake(s):\n  approvals.channel (line 3)") || verdict() != "check: 3 problem(s)" {
		t.Fatalf("check with config mistakes: exit %d\n%s", code, out.String())
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("check created the data folder: %v", err)
	}
}

func TestJournalCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := st.BeginEntry(store.Entry{Action: "grant-role", Connector: "prod", Requester: "U0DEV", Args: map[string]string{"user": "app"}}, "bot")
	st.TransitionEntry(e.ID, []string{store.EntryExecuting}, store.Step{State: store.EntryDone}, nil)
	env := envOf(map[string]string{"BOT_DATA_DIR": dir})
	var out, errb bytes.Buffer
	// While a bot holds the file, the journal commands say so instead of waiting.
	if code := run(context.Background(), []string{"journal", "list"}, env, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "stop the bot to read the journal") {
		t.Fatalf("locked: exit %d %q", code, errb.String())
	}
	st.Close()
	out.Reset()
	if code := run(context.Background(), []string{"journal", "list"}, env, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "#1 ") || !strings.Contains(out.String(), "grant-role app on prod  by U0DEV") {
		t.Fatalf("list: %d %q", code, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"journal", "show", "1"}, env, nil, &out, &errb); code != 0 {
		t.Fatalf("show: %d", code)
	}
	var got store.Entry
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.State != store.EntryDone {
		t.Fatalf("show: %v %q", err, out.String())
	}
	out.Reset()
	// Two events: the entry journaled executing, then done.
	if code := run(context.Background(), []string{"journal", "export"}, env, nil, &out, &errb); code != 0 || strings.Count(out.String(), "\n") != 2 ||
		strings.Count(out.String(), `"kind":"entry"`) != 2 {
		t.Fatalf("export: %d %q", code, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"journal", "export", "--since", "1"}, env, nil, &out, &errb); code != 0 ||
		strings.Count(out.String(), "\n") != 1 || !strings.Contains(out.String(), `"cursor":2,`) {
		t.Fatalf("export --since 1: %d %q", code, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"journal", "show", "x"}, env, nil, &out, &errb); code != 2 {
		t.Fatalf("show x: %d", code)
	}
}

// journal reindex rebuilds the indexes with the bot stopped, says what they hold, and makes
// no key file for a journal whose key comes from the environment.
func TestJournalReindex(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	key, _ := store.ParseKey(store.NewKey())
	st, err := store.Open(dir, store.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"lock-user", "grant-role"} {
		e, _ := st.BeginEntry(store.Entry{Action: action, Connector: "prod", Requester: "U0DEV", Args: map[string]string{"user": "app"}}, "bot")
		st.TransitionEntry(e.ID, []string{store.EntryExecuting}, store.Step{State: store.EntryDone}, nil)
	}
	st.CreateRequest(store.Request{Action: "grant-role", Connector: "prod"}, "pending", "U0DEV")
	env := envOf(map[string]string{"BOT_DATA_DIR": dir})
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"journal", "reindex"}, env, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "stop the bot to rebuild the indexes") {
		t.Fatalf("locked: exit %d %q", code, errb.String())
	}
	st.Close()
	errb.Reset()
	if code := run(context.Background(), []string{"journal", "reindex"}, env, nil, &out, &errb); code != 0 {
		t.Fatalf("reindex: exit %d %q", code, errb.String())
	}
	for _, want := range []string{"from 2 entries and 1 requests", "requests_by_state    1 key(s)", "entries_locks        1 key(s)", "entries_temporary    0 key(s)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("reindex does not say %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, store.KeyFileName)); !os.IsNotExist(err) {
		t.Fatalf("reindex made a key file: %v", err)
	}
	st, err = store.Open(dir, store.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.LatestLock("prod", "app", "admin"); !ok {
		t.Fatal("the lock is not found after reindex")
	}
}

func TestRekey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := st.PutSecret("U0DEV", []byte("sealed-before-rekey"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	oldKey, _ := os.ReadFile(filepath.Join(dir, store.KeyFileName))
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"rekey", "--yes"}, envOf(map[string]string{"BOT_DATA_DIR": dir}), nil, &out, &errb); code != 0 {
		t.Fatalf("rekey: %d %s", code, errb.String())
	}
	newKey, _ := os.ReadFile(filepath.Join(dir, store.KeyFileName))
	if bytes.Equal(oldKey, newKey) {
		t.Fatal("the key file was not replaced")
	}
	st, err = store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got, err := st.TakeSecret(id, "U0DEV"); err != nil || string(got) != "sealed-before-rekey" {
		t.Fatalf("after rekey: %q %v", got, err)
	}
	if code := run(context.Background(), []string{"rekey"}, envOf(map[string]string{"BOT_DATA_DIR": dir, "BOT_ENCRYPTION_KEY": store.NewKey()}), nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "BOT_NEW_ENCRYPTION_KEY") {
		t.Fatalf("rekey with an env key and no new key: %d %s", code, errb.String())
	}
}

// TestJournalShowsTheRecord: list, show and export each show an entry's requester, reason,
// votes with their times, schedule, rollback (who, and which entry) and server line.
func TestJournalShowsTheRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	at := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	st, err := store.Open(dir, store.Options{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	req, err := st.CreateRequest(store.Request{Action: "grant-role", Connector: "prod", Requester: "U0DEV", Reason: "ticket OPS-42",
		Args: map[string]string{"user": "app"}, Votes: []store.Vote{
			{User: "U0ALICE", Approve: true, At: at.Add(time.Minute)},
			{User: "U0CAROL", Approve: true, At: at.Add(2 * time.Minute), Lapsed: true},
		}}, "approved", "U0DEV")
	if err != nil {
		t.Fatal(err)
	}
	e, _ := st.BeginEntry(store.Entry{RequestID: req.ID, Requester: "U0DEV", Approvers: []string{"U0ALICE"}, Connector: "prod",
		Action: "grant-role", Args: map[string]string{"user": "app"}, Server: "7.0.14, replica set primary"}, "bot")
	st.TransitionEntry(e.ID, []string{store.EntryExecuting}, store.Step{State: store.EntryDone}, nil)
	rb, err := st.BeginRollback(e.ID, store.Entry{Requester: "U0BOB", Connector: "prod", Action: "rollback", CreatedAt: at.Add(time.Hour),
		Args: map[string]string{"user": "app", "reason": "wrong user"}}, "U0BOB")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.TransitionEntry(e.ID, []string{store.EntryDone}, store.Step{State: store.EntryRolledBack, By: "U0BOB", At: at.Add(time.Hour), Note: fmt.Sprintf("by #%d", rb.ID)}, nil); err != nil {
		t.Fatal(err)
	}
	sch, _ := st.BeginEntry(store.Entry{ScheduleID: 7, Slot: at, Requester: "U0DEV", Connector: "prod", Action: "rotate-password",
		Args: map[string]string{"user": "app", "schedule": "7"}}, "bot")
	st.Close()
	env := envOf(map[string]string{"BOT_DATA_DIR": dir})
	var out, errb bytes.Buffer

	if code := run(context.Background(), []string{"journal", "list"}, env, nil, &out, &errb); code != 0 {
		t.Fatalf("list: %d %s", code, errb.String())
	}
	for _, want := range []string{
		`grant-role app on prod  by U0DEV`,
		`reason:         "ticket OPS-42"`,
		`votes:          U0ALICE approved at 2026-03-04T10:01:00Z, U0CAROL approved at 2026-03-04T10:02:00Z (no longer an approver; not counted)`,
		fmt.Sprintf(`rolled back by: #%d, by U0BOB at 2026-03-04T11:00:00Z`, rb.ID),
		`server:         7.0.14, replica set primary`,
		fmt.Sprintf(`rollback of:    #%d`, e.ID),
		`reason:         "wrong user"`,
		`schedule:       #7, slot 2026-03-04T10:00:00Z`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("list does not show %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	if code := run(context.Background(), []string{"journal", "show", fmt.Sprint(e.ID)}, env, nil, &out, &errb); code != 0 {
		t.Fatalf("show: %d %s", code, errb.String())
	}
	var got record
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Requester != "U0DEV" || got.Reason != "ticket OPS-42" || len(got.Votes) != 2 || !got.Votes[0].At.Equal(at.Add(time.Minute)) ||
		got.RolledBackBy != rb.ID || got.RolledBackByUser != "U0BOB" || got.Server != "7.0.14, replica set primary" {
		t.Fatalf("show: %s", out.String())
	}

	out.Reset()
	if code := run(context.Background(), []string{"journal", "export"}, env, nil, &out, &errb); code != 0 {
		t.Fatalf("export: %d %s", code, errb.String())
	}
	// The entry lines of the trail: each entry as it was at each of its states; the last of
	// each is what it is now.
	var recs []record
	last := map[uint64]int{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r struct {
			Kind string `json:"kind"`
			record
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r.Kind != store.EventEntry {
			continue
		}
		if i, ok := last[r.ID]; ok {
			recs[i] = r.record
			continue
		}
		last[r.ID] = len(recs)
		recs = append(recs, r.record)
	}
	if len(recs) != 3 {
		t.Fatalf("export: %d entries:\n%s", len(recs), out.String())
	}
	if recs[0].ID != e.ID || recs[0].Reason != "ticket OPS-42" || len(recs[0].Votes) != 2 || recs[0].RolledBackByUser != "U0BOB" ||
		recs[0].Server == "" || recs[1].RollbackOf != e.ID || recs[1].Reason != "wrong user" || recs[2].ID != sch.ID || recs[2].ScheduleID != 7 {
		t.Fatalf("export, oldest first:\n%s", out.String())
	}
	// The Roll back button's token is not handed out with the audit trail.
	if strings.Contains(out.String(), `"token"`) {
		t.Errorf("export carries button tokens:\n%s", out.String())
	}
}

// Text in the journal comes from people and servers: journal list shows escape sequences,
// bells and bidirectional overrides escaped, never sends them to the terminal.
func TestJournalListIsSafeOnATerminal(t *testing.T) {
	var b strings.Builder
	record{Entry: store.Entry{ID: 1, Action: "create-readonly-user", Connector: "prod",
		Args:  map[string]string{"user": "ev\x1b[2J\x1b]0;pwned\x07il"},
		Error: "user \"ev\x1b[2Jil\" \u202eexists", Server: "7.0\r14"}}.print(&b)
	out := b.String()
	for _, bad := range []string{"\x1b", "\x07", "\u202e", "\r"} {
		if strings.Contains(out, bad) {
			t.Errorf("journal list sent %q to the terminal:\n%q", bad, out)
		}
	}
	for _, shown := range []string{`ev\x1b[2J\x1b]0;pwned\x07il`, `\u202eexists`, `7.0\x0d14`} {
		if !strings.Contains(out, shown) {
			t.Errorf("journal list does not show %s:\n%s", shown, out)
		}
	}
}

// bot check writes to nothing, but asks each delivery target whether the bot could: a real
// Vault, with a token that may and one that may only read.
func TestCheckDeliveryTargets(t *testing.T) {
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	v, err := vaulttest.Start(t.TempDir())
	if err != nil {
		t.Fatalf("Vault: %v", err)
	}
	defer v.Stop()
	t.Logf("delivery target: %s", v)
	if err := v.Policy("rw", `path "secret/data/apps/orders" { capabilities = ["create", "read", "update"] }
path "secret/metadata/apps/orders" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if err := v.Policy("ro", `path "secret/data/apps/orders" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	rw, err := v.Token("rw")
	if err != nil {
		t.Fatal(err)
	}
	ro, err := v.Token("ro")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "bot.yaml")
	body := `connectors: [{name: prod, connection_string: "${MONGO_URI}"}]
approvals: {channel: C0APPROVALS, approvers: {users: [U0ALICE]}}
deliveries:
  - connector: prod
    user: orders
    targets:
      - vault_kv: {address: "` + v.Addr + `", path: apps/orders, auth: {token: "${VAULT_TOKEN}"}}
      - exec: {command: [/bin/cat]}
`
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	check := func(token string) int {
		out.Reset()
		errb.Reset()
		return run(context.Background(), []string{"check"}, envOf(withSlack(t, map[string]string{"BOT_CONFIG": cfg, "MONGO_URI": emu.URI(),
			"BOT_DATA_DIR": filepath.Join(t.TempDir(), "data"), "VAULT_TOKEN": token})), nil, &out, &errb)
	}
	if code := check(rw); code != 0 || !strings.Contains(out.String(), "delivery: Vault KV secret/apps/orders at "+strings.TrimPrefix(v.Addr, "")) ||
		!strings.Contains(out.String(), "delivery: command /bin/cat") || !strings.Contains(out.String(), "ready to deliver") {
		t.Fatalf("check with a token that may write: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if code := check(ro); code != 1 || !strings.Contains(out.String(), "delivery: Vault KV secret/apps/orders") || !strings.HasSuffix(strings.TrimSpace(out.String()), "check: 1 problem(s)") {
		t.Fatalf("check with a read-only token: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if strings.Contains(out.String()+errb.String(), ro) || strings.Contains(out.String()+errb.String(), rw) {
		t.Fatal("check printed a Vault token")
	}
	t.Logf("check with a read-only token says:\n%s", out.String())
}

func TestDeliveryTargetsMustDiffer(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bot.yaml")
	body := `connectors: [{name: prod, connection_string: "mongodb://127.0.0.1:1/"}]
approvals: {channel: C0APPROVALS, approvers: {users: [U0ALICE]}}
deliveries:
  - connector: prod
    user: orders
    targets:
      - exec: {command: [/bin/cat], env: {A: "1"}}
      - exec: {command: [/bin/cat], env: {A: "2"}}
`
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"check"}, envOf(map[string]string{"BOT_CONFIG": cfg, "BOT_DATA_DIR": filepath.Join(t.TempDir(), "data")}), nil, &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "delivery: deliveries[0].targets[0] and targets[1] are both command /bin/cat") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// journal compact refuses while the bot runs and without --yes, then shrinks a purged journal
// and leaves every record as it was.
func TestJournalCompact(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	key, _ := store.ParseKey(store.NewKey())
	now := time.Now()
	clock := func() time.Time { return now }
	st, err := store.Open(dir, store.Options{Key: key, Now: clock, Retention: 400 * 24 * time.Hour, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	reason := strings.Repeat("why ", 200)
	for i := range 2000 {
		e, _ := st.BeginEntry(store.Entry{Action: "grant-role", Connector: "prod", CreatedAt: now.AddDate(-2, 0, 0),
			Args: map[string]string{"user": fmt.Sprint("u", i), "reason": reason}}, "bot")
		st.TransitionEntry(e.ID, []string{store.EntryExecuting}, store.Step{State: store.EntryDone}, nil)
	}
	kept, _ := st.BeginEntry(store.Entry{Action: "grant-role", Connector: "prod", Args: map[string]string{"user": "app"}}, "bot")
	if ps, err := st.Purge(); err != nil || ps.Entries != 2000 {
		t.Fatalf("purge %+v %v", ps, err)
	}
	env := envOf(map[string]string{"BOT_DATA_DIR": dir, "BOT_ENCRYPTION_KEY": fmt.Sprintf("%x", key)})
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"journal", "compact", "--yes"}, env, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "stop the bot to compact the journal") {
		t.Fatalf("locked: exit %d %q", code, errb.String())
	}
	st.Close()
	errb.Reset()
	if code := run(context.Background(), []string{"journal", "compact"}, env, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "needs --yes") {
		t.Fatalf("without --yes: exit %d %q", code, errb.String())
	}
	before, _ := os.Stat(filepath.Join(dir, store.FileName))
	out.Reset()
	if code := run(context.Background(), []string{"journal", "compact", "--yes"}, env, nil, &out, &errb); code != 0 {
		t.Fatalf("compact: exit %d %q", code, errb.String())
	}
	after, _ := os.Stat(filepath.Join(dir, store.FileName))
	t.Logf("%s(file: %d bytes before, %d after)", out.String(), before.Size(), after.Size())
	if after.Size() >= before.Size() || !strings.Contains(out.String(), "before,") {
		t.Errorf("compact: %d bytes before, %d after:\n%s", before.Size(), after.Size(), out.String())
	}
	st, err = store.Open(dir, store.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Entry(kept.ID); err != nil || got.Args["user"] != "app" || got.State != store.EntryExecuting {
		t.Fatalf("the kept entry after compact: %+v %v", got, err)
	}
}

// journal export --since writes only the entries created since a date, a time or a span ago.
func TestJournalExportSince(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{time.Date(2025, 12, 31, 23, 59, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Now().Add(-time.Hour)} {
		st.BeginEntry(store.Entry{Action: "grant-role", Connector: "prod", CreatedAt: at}, "bot")
	}
	st.Close()
	env := envOf(map[string]string{"BOT_DATA_DIR": dir})
	for since, want := range map[string][]uint64{"": {1, 2, 3}, "2026-01-01": {2, 3}, "2026-01-01T00:00:01Z": {3}, "2d": {3}, "90m": {3}, "30m": nil} {
		var out, errb bytes.Buffer
		args := []string{"journal", "export"}
		if since != "" {
			args = append(args, "--since", since)
		}
		if code := run(context.Background(), args, env, nil, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d %q", args, code, errb.String())
		}
		var got []uint64
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var e store.Entry
			if line != "" && json.Unmarshal([]byte(line), &e) == nil {
				got = append(got, e.ID)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("--since %q: %v, want %v", since, got, want)
		}
	}
	for _, args := range [][]string{{"journal", "export", "--since", "yesterday"}, {"journal", "export", "--since", "0d"},
		{"journal", "list", "--since", "2d"}, {"journal", "export", "--yes"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, env, nil, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d %q, want a usage error", args, code, errb.String())
		}
	}
}

// TestCheckConnectorsInOrder: connectors are checked at once, a bounded number at a time, and
// reported in config order, however long each takes.
func TestCheckConnectorsInOrder(t *testing.T) {
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	cfg := &config.Config{}
	for i := range 24 {
		uri := emu.URI()
		if i%3 == 0 {
			uri = "mongodb://u:p@127.0.0.1:1/?serverSelectionTimeoutMS=300" // slow to fail
		}
		cfg.Connectors = append(cfg.Connectors, config.Connector{Name: fmt.Sprintf("c%02d", i), ConnectionString: secret.New(uri)})
	}
	reports := checkConnectors(context.Background(), cfg, nil)
	if len(reports) != len(cfg.Connectors) {
		t.Fatalf("%d reports for %d connectors", len(reports), len(cfg.Connectors))
	}
	for i, r := range reports {
		name := fmt.Sprintf("c%02d: ", i)
		if len(r) == 0 || !strings.HasPrefix(r[0].text, name) {
			t.Fatalf("report %d: %+v, want it to start with %q", i, r, name)
		}
		if dead := i%3 == 0; r[0].problem != dead || (dead && !strings.Contains(r[0].text, "cannot check")) {
			t.Errorf("report %d: %+v", i, r[0])
		}
	}
}
