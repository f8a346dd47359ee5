package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"mongobot/bot/console"
	"mongobot/connector/mongotest"
)

// TestConsoleDemo runs the README's first command: the console on the embedded demo config
// with the in-process emulator, driven by examples/demo.txt, then examples/demo-form.txt.
// A transcript is not a terminal: an updated card prints only what changed, so the tour
// reads as a conversation and fits on a few screens.
func TestConsoleDemo(t *testing.T) {
	got := runDemoScript(t, "../../examples/demo.txt")
	for _, want := range []string{
		"DEMO: connector \"demo\" is the MongoDB emulator",
		"── #approvals · message 1\n  │ Request #1: grant-role `app_user@admin` role `read@analytics` on demo",
		"[1 Approve] [2 Deny]",
		"✓ Done, journal #1",
		// The card of a rolled-back action names the rollback's entry.
		"Rolled back by @dev", "journal #2 undid journal #1",
		"✓ Done, journal #2: rollback of #1",
		"Roll back would: undo this rollback in turn",
		"Judged as the revoke-role it performs on demo: 1 approval from its approvers.",
		"── direct message to @dev (private): the same as message 3 above",
		"⚠ Typed in the bot's console, not in Slack",
		"Request #3: you are not an approver",
		"Approved by @alice, @bob",
		"verified: logged in as app_user@admin with the new password",
		"No rollback: the old password was never stored)",
		"── direct message to @dev · private, only @dev sees this",
		"Your new password",
		"Request #4: access `jit-u0dev-", "approved by demo's just-in-time policy",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the demo does not show %q", want)
		}
	}
	// Two new passwords: the rotation's and the access's, each shown once.
	if n := len(regexp.MustCompile(`(?m)^  │ [A-Za-z0-9._~-]{32}$`).FindAllString(got, -1)); n != 2 {
		t.Errorf("new passwords were shown %d times, want twice (once each)", n)
	}
	// Each card is printed in full once; its updates say only what changed, once each.
	if n := strings.Count(got, "Requested by: @dev · Reason: OPS-42"); n != 1 {
		t.Errorf("card #1 printed %d times in full, want once", n)
	}
	// A field that only lost its neighbour on the line (Expires) is not said again.
	if n := strings.Count(got, "Roll back would: revoke read@analytics"); n != 1 {
		t.Errorf("\"Roll back would: revoke read@analytics\" said %d times, want once", n)
	}
	if n := strings.Count(got, "(Approved by @alice)"); n != 3 {
		t.Errorf("\"Approved by @alice\" said %d times, want once on each of the three cards she approved", n)
	}
	for _, garbled := range []string{"cannot be rolled back: a password rotation cannot", "itself rolled back", "approval(s)", ") (journal #", "Running since"} {
		if strings.Contains(got, garbled) {
			t.Errorf("the demo still says %q", garbled)
		}
	}
	const most = 150
	if n := strings.Count(got, "\n"); n > most {
		t.Errorf("the demo's transcript is %d lines, more than %d: a few screens at most\n%s", n, most, got)
	}

	got = runDemoScript(t, "../../examples/demo-form.txt")
	for _, want := range []string{
		"? What do you need?", "(submitted)", "Request #1: grant-role `app_user@admin` role `read@analytics` on demo",
		"── your home · private, only @alice sees this", "Waiting for your approval (1)", "Your schedules: none.",
		"Denied by @bob", "Access #3 has ended", "journal #3 undid journal #2",
		"• #1 ", "rolled back by #3",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the second demo does not show %q", want)
		}
	}
	if n := strings.Count(got, "\n"); n > most {
		t.Errorf("the second demo's transcript is %d lines, more than %d", n, most)
	}
}

// runDemoScript runs `console --demo` on script and returns what it printed, checked for
// errors, raw markup and numbering.
func runDemoScript(t *testing.T, path string) string {
	t.Helper()
	script, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer script.Close()
	var out, errb bytes.Buffer
	env := envOf(map[string]string{"BOT_CONFIG": "/nonexistent/bot.yaml"})
	if code := run(context.Background(), []string{"console", "--demo"}, env, script, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errb.String(), out.String())
	}
	got := out.String()
	if strings.Contains(got, "  ! ") {
		t.Errorf("the demo script %s hit an error:\n%s", path, got)
	}
	if errb.Len() > 0 {
		t.Errorf("stderr: %s", errb.String())
	}
	// Not a pipe's worth of markup: no shortcode, bold marker or entity reaches the reader.
	for _, raw := range []string{":white_check_mark:", ":key:", "*Done*", "&lt;", "&gt;", "&amp;", "<@U0"} {
		if strings.Contains(got, raw) {
			t.Errorf("the demo shows raw Slack markup %q", raw)
		}
	}
	checkNumbering(t, got)
	return got
}

// checkNumbering checks that the messages of a console transcript are numbered as seen: new
// ones from 1 in order, with no gap for private ones; buttons likewise; and that no result
// is printed twice.
func checkNumbering(t *testing.T, got string) {
	t.Helper()
	next := 1
	for _, m := range regexp.MustCompile(`· message (\d+)(, updated)?`).FindAllStringSubmatch(got, -1) {
		n, _ := strconv.Atoi(m[1])
		if m[2] == "" {
			if n != next {
				t.Errorf("new message numbered %d, want %d", n, next)
			}
			next = n + 1
		} else if n >= next {
			t.Errorf("message %d updated before it was shown", n)
		}
	}
	if next == 1 {
		t.Errorf("no numbered message in:\n%s", got)
	}
	nextButton := 1
	for _, m := range regexp.MustCompile(`\[(\d+) [A-Z][a-z]`).FindAllStringSubmatch(got, -1) {
		if n, _ := strconv.Atoi(m[1]); n != nextButton {
			t.Errorf("button numbered %d, want %d", n, nextButton)
		}
		nextButton++
	}
	for _, m := range regexp.MustCompile(`(?m)^  │ ✓ Done, journal #(\d+)`).FindAllStringSubmatch(got, -1) {
		if c := strings.Count(got, m[0]+":"); c != 1 {
			t.Errorf("result of journal #%s printed %d times", m[1], c)
		}
	}
}

// TestConsoleOutsideDemo runs the console on a config of one's own: it says how to act as
// someone (ids: it knows no names), takes typed ids in any case, keeps typed bytes from the
// terminal, and every journal entry it makes, rollbacks included, says it came from the console.
func TestConsoleOutsideDemo(t *testing.T) {
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	if err := seedDemo(context.Background(), emu.URI()); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "bot.yaml")
	// A grant and its rollback (a revoke) need approval; a lock and its rollback (an unlock)
	// run at once: every way an entry is journaled, with a request and without.
	os.WriteFile(cfg, []byte(`connectors:
  - name: prod
    connection_string: ${MONGO_URI}
approvals:
  channel: C0APPROVALS
  approvers: {users: [U0ALICE, U0BOB], usergroups: [S0DBAS]}
  require: [grant-role, revoke-role]
`), 0o600)
	env := envOf(map[string]string{"BOT_CONFIG": cfg, "BOT_DATA_DIR": t.TempDir(), "MONGO_URI": emu.URI(), "NO_COLOR": ""})
	script := strings.Join([]string{
		"help",
		"/mongo grant-role prod app_user read@analytics --reason \"<!channel> <@U0BOB> \x1b[2J\x1b]0;owned\x07\"",
		"as alice",
		"as u0alice",
		"press Approve",
		"as U0CONSOLE",
		"/mongo rollback 1",
		"as U0BOB",
		"press Approve",
		"/mongo lock-user prod reporting",
		"/mongo rollback 3",
		"as \x1b[31mX",
	}, "\n")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"console"}, env, strings.NewReader(script), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errb.String(), out.String())
	}
	got := out.String()
	intro, _, _ := strings.Cut(got, "\n\n")
	for _, want := range []string{
		"You are U0CONSOLE. `as <Slack user id>` acts as someone else (the config names U0ALICE, U0BOB), e.g. `as U0ALICE`. No names are known here",
		"Approvers named by user group (S0DBAS) cannot approve here",
		`marked "via console"`,
		"--as <user id>",
	} {
		if !strings.Contains(intro, want) {
			t.Errorf("the start text does not say %q:\n%s", want, intro)
		}
	}
	for _, want := range []string{
		"  as <user id>     act as another user",
		"  You are @U0CONSOLE. `as <Slack user id>` acts as someone else (the config names U0ALICE, U0BOB)",
		`! "alice" is not a Slack user id`,
		"\n@U0ALICE> press Approve", // a switch that worked shows in the next line's prompt
		"✓ Done, journal #1: grant-role",
		"✓ Done, journal #2: rollback of #1",
		"✓ Done, journal #3: lock-user",
		"✓ Done, journal #4: rollback of #3",
		"⚠ Typed in the bot's console, not in Slack",
		// Typed markup stays text, typed control bytes are shown, not obeyed.
		`Reason: <!channel> <@U0BOB> \x1b[2J\x1b]0;owned\x07`,
		`! "\x1b[31mX" is not a Slack user id`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the console does not show %q", want)
		}
	}
	if strings.ContainsAny(got, "\x1b\x07") {
		t.Errorf("a control character reached the output:\n%q", got)
	}
	checkNumbering(t, got)

	var export bytes.Buffer
	if code := run(context.Background(), []string{"journal", "export"}, env, nil, &export, &errb); code != 0 {
		t.Fatalf("journal export: exit %d: %s", code, errb.String())
	}
	// The audit trail shows each entry at each of its states: the last line of each.
	var lines []string
	at := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(export.String()), "\n") {
		var ev struct {
			Kind string          `json:"kind"`
			ID   json.RawMessage `json:"id"`
		}
		if json.Unmarshal([]byte(l), &ev) != nil || ev.Kind != "entry" {
			continue
		}
		if i, ok := at[string(ev.ID)]; ok {
			lines[i] = l
			continue
		}
		at[string(ev.ID)] = len(lines)
		lines = append(lines, l)
	}
	if len(lines) != 4 {
		t.Fatalf("want 4 journal entries, got:\n%s", export.String())
	}
	for i, l := range lines {
		if !strings.Contains(l, `"via":"console"`) {
			t.Errorf("journal entry #%d does not say it came from the console: %s", i+1, l)
		}
	}
	var show bytes.Buffer
	if code := run(context.Background(), []string{"journal", "show", "4"}, env, nil, &show, &errb); code != 0 {
		t.Fatalf("journal show: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(show.String(), `"via": "console"`) {
		t.Errorf("journal show 4 does not say it came from the console:\n%s", show.String())
	}
	var list bytes.Buffer
	if code := run(context.Background(), []string{"journal", "list"}, env, nil, &list, &errb); code != 0 {
		t.Fatalf("journal list: exit %d: %s", code, errb.String())
	}
	if n := strings.Count(list.String(), "(via console, not verified by Slack)"); n != 4 {
		t.Errorf("journal list marks %d of 4 entries as typed in the console:\n%s", n, list.String())
	}
}

// Attributes only on a terminal, colour only without NO_COLOR, nothing on a dumb terminal:
// a transcript piped to a file holds text alone.
func TestConsoleTermStyle(t *testing.T) {
	tests := []struct {
		tty  bool
		env  map[string]string
		want console.Style
	}{
		{false, nil, console.Style{}},
		{false, map[string]string{"TERM": "xterm-256color"}, console.Style{}},
		{true, map[string]string{"TERM": "xterm-256color"}, console.Style{Bold: true, Color: true}},
		{true, map[string]string{"NO_COLOR": "1"}, console.Style{Bold: true}},
		{true, map[string]string{"NO_COLOR": ""}, console.Style{Bold: true, Color: true}}, // no-color.org: set and not empty
		{true, map[string]string{"TERM": "dumb"}, console.Style{}},
	}
	for _, tc := range tests {
		if got := styleFor(tc.tty, envOf(tc.env)); got != tc.want {
			t.Errorf("tty=%v env=%v: %+v, want %+v", tc.tty, tc.env, got, tc.want)
		}
	}
	// A pipe is not a terminal.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if got := termStyle(w, envOf(map[string]string{"TERM": "xterm"})); got != (console.Style{}) {
		t.Errorf("a pipe gets %+v", got)
	}
}

// A config named in BOT_CONFIG and not there is a mistake to report, not a reason to start
// the demo instead.
func TestConsoleWithAMissingConfigSaysSo(t *testing.T) {
	var out, errb bytes.Buffer
	missing := filepath.Join(t.TempDir(), "bot.yaml")
	code := run(context.Background(), []string{"console"}, envOf(map[string]string{"BOT_CONFIG": missing}), strings.NewReader(""), &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "BOT_CONFIG names "+missing) || strings.Contains(out.String(), "demo") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
}

// TestConsoleDemoOfOwnConfig tries a config of one's own in the demo: its quorum rule and its
// just-in-time auto-approval apply, on the emulator under the config's connector name; every
// card says it is a demo; nothing dials the servers it names (a listener and a Vault stand-in
// count the attempts), no credential is read, and no delivery command runs.
func TestConsoleDemoOfOwnConfig(t *testing.T) {
	mongoLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mongoLn.Close()
	var dialled atomic.Int32
	go func() {
		for {
			c, err := mongoLn.Accept()
			if err != nil {
				return
			}
			dialled.Add(1)
			c.Close()
		}
	}()
	var vaultHits atomic.Int32
	vault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vaultHits.Add(1)
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer vault.Close()
	dir := t.TempDir()
	marker := filepath.Join(dir, "delivered")
	cfg := filepath.Join(dir, "bot.yaml")
	os.WriteFile(cfg, []byte(`connectors:
  - name: prod-mongo
    connection_string: mongodb://${PROD_USER}:${PROD_PASSWORD}@`+mongoLn.Addr().String()+`/?authSource=admin
    jit:
      roles: [read@*]
      max_for: 4h
      auto_approve:
        - roles: [read@*]
          users: [U0DEV]
approvals:
  channel: C0APPROVALS
  approvers: {users: [U0ALICE, U0BOB, U0CAROL]}
  quorum: 1
  rules:
    - actions: [grant-role]
      quorum: 3
deliveries:
  - connector: prod-mongo
    user: reporting
    targets:
      - vault_kv:
          address: `+vault.URL+`
          path: apps/reporting
          auth:
            token: ${VAULT_TOKEN}
      - exec:
          command: [/bin/sh, -c, "touch `+marker+`"]
`), 0o600)
	script := strings.Join([]string{
		"/mongo grant-role prod-mongo app_user read@analytics",
		"/mongo access prod-mongo read@analytics --for 1h",
		"/mongo rotate-password prod-mongo reporting",
		"as U0ALICE",
		"press Approve",
	}, "\n")
	// The real credentials are in the environment: the demo must not read them.
	env := envOf(map[string]string{"PROD_USER": "admin", "PROD_PASSWORD": "s3cret-prod-password", "VAULT_TOKEN": "hvs.real-token",
		"BOT_DATA_DIR": filepath.Join(dir, "real-journal")})
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"console", "--demo", "--config", cfg, "--as", "U0DEV"}, env, strings.NewReader(script), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errb.String(), out.String())
	}
	got := out.String()
	for _, want := range []string{
		"DEMO of " + cfg, `"prod-mongo"`, "None of its servers is contacted",
		// The config's rule: a grant needs three approvals.
		"Request #1: grant-role `app_user@admin` role `read@analytics` on prod-mongo", "Approvals: 0 of 3",
		// The config's just-in-time policy approves dev's reads without a vote.
		"approved by prod-mongo's just-in-time policy", "✓ Done, journal #1: access `jit-",
		// The rotation's delivery stays in memory.
		"✓ Done, journal #2: rotate-password `reporting@admin` on prod-mongo",
		"demo stand-in for Vault KV secret/apps/reporting", "demo stand-in for command /bin/sh",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the demo of one's own config does not show %q", want)
		}
	}
	// Every card and result says it is a demo.
	const note = "Demo: on the in-process emulator, not the real prod-mongo"
	if cards, notes := strings.Count(got, "── #approvals · message"), strings.Count(got, note); notes < cards || cards < 3 {
		t.Errorf("%d cards and results, %d say %q:\n%s", cards, notes, note, got)
	}
	for _, secret := range []string{"s3cret-prod-password", "hvs.real-token"} {
		if strings.Contains(got+errb.String(), secret) {
			t.Errorf("the demo shows a credential from the environment")
		}
	}
	if n := dialled.Load(); n != 0 {
		t.Errorf("the demo dialled the configured MongoDB %d times", n)
	}
	if n := vaultHits.Load(); n != 0 {
		t.Errorf("the demo called the configured Vault %d times", n)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the demo ran the delivery command")
	}
	if _, err := os.Stat(filepath.Join(dir, "real-journal")); err == nil {
		t.Errorf("the demo wrote in BOT_DATA_DIR, the real bot's journal")
	}
	checkNumbering(t, got)
}

// A config that does not parse or validate gets a sentence saying so, and how to go on.
func TestConsoleDemoOfABrokenConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bot.yaml")
	os.WriteFile(cfg, []byte("connectors:\n  - name: prod\napprovals: {channel: C0APPROVALS}\n"), 0o600)
	for _, tc := range []struct{ path, want string }{
		{cfg, "cannot be tried in the demo: it does not parse or validate: "},
		{filepath.Join(dir, "missing.yaml"), "cannot be read"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"console", "--demo", "--config", tc.path}, envOf(nil), strings.NewReader(""), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) || !strings.Contains(errb.String(), tc.path) {
			t.Errorf("%s: exit %d\nstdout %s\nstderr %s", tc.path, code, out.String(), errb.String())
		}
		// Without --demo, --config names the config of the real console: a missing one is
		// said, never replaced by the demo.
		out.Reset()
		errb.Reset()
		code = run(context.Background(), []string{"console", "--config", tc.path}, envOf(nil), strings.NewReader(""), &out, &errb)
		if code != 2 || strings.Contains(out.String(), "DEMO") || !strings.Contains(errb.String(), tc.path) {
			t.Errorf("console --config %s: exit %d\nstdout %s\nstderr %s", tc.path, code, out.String(), errb.String())
		}
	}
}
