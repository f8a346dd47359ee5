package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"mongobot/bot/console"
	"mongobot/connector/mongotest"
)

// TestConsoleDemo runs the README's first command: the console on the embedded demo config
// with the in-process emulator, driven by examples/demo.txt.
func TestConsoleDemo(t *testing.T) {
	script, err := os.Open("../../examples/demo.txt")
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
	for _, want := range []string{
		"DEMO: connector \"demo\" is the MongoDB emulator",
		"── #approvals · message 1\n  │ Request #1: grant-role `app_user@admin` role `read@analytics` on demo",
		"[1 Approve] [2 Deny]",
		"✓ Done, journal #1",
		"Rolled back by @dev",
		"✓ Done, journal #2: rollback of #1",
		"── direct message to @dev (private): the same as message 3 above",
		"⚠ Typed in the bot's console, not in Slack",
		"You are not an approver",
		"Approved by @alice, @bob",
		"verified: logged in as app_user@admin with the new password",
		"── direct message to @dev · private, only @dev sees this",
		"Your new password",
		"Denied by @bob",
		"• #1 ", "rolled back by #2",
		"Request #4: access `jit-dev-", "approved by demo's just-in-time policy", "Access #4 is ended",
		"? What do you need?", "(submitted)", "Request #5: grant-role `app_user@admin` role `read@shop` on demo",
		"── your home · private, only @alice sees this", "Waiting for your approval (1)", "── your home · private, only @dev sees this",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the demo does not show %q", want)
		}
	}
	if strings.Contains(got, "  ! ") {
		t.Errorf("the demo script hit an error:\n%s", got)
	}
	// Two new passwords: the rotation's and the access's, each shown once.
	if n := len(regexp.MustCompile(`(?m)^  │ [A-Za-z0-9._~-]{32}$`).FindAllString(got, -1)); n != 2 {
		t.Errorf("new passwords were shown %d times, want twice (once each)", n)
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
		"(now acting as @U0ALICE)",
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
