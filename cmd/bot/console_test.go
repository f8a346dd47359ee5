package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
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
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the demo does not show %q", want)
		}
	}
	if strings.Contains(got, "  ! ") {
		t.Errorf("the demo script hit an error:\n%s", got)
	}
	if n := len(regexp.MustCompile(`(?m)^  │ [A-Za-z0-9._~-]{32}$`).FindAllString(got, -1)); n != 1 {
		t.Errorf("the new password was shown %d times, want once", n)
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
