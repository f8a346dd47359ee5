package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
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
		"*Request #1*: grant-role `app_user@admin` role `read@analytics` on demo",
		"[1 Approve] [2 Deny]",
		"*Done*, journal #1",
		"*Rolled back* by @dev",
		"*Done*, journal #2: rollback of #1",
		"You are not an approver",
		"Approved by @alice, @bob",
		"verified: logged in as app_user@admin with the new password",
		"── direct message to @dev · private, only @dev sees this",
		"Your new password",
		"*Denied* by @bob",
		"• #1 ", "rolled back by #2",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the demo does not show %q", want)
		}
	}
	if strings.Contains(got, "  ! ") {
		t.Errorf("the demo script hit an error:\n%s", got)
	}
	if n := len(regexp.MustCompile("```[A-Za-z0-9._~-]{32}```").FindAllString(got, -1)); n != 1 {
		t.Errorf("the new password was shown %d times, want once", n)
	}
	if errb.Len() > 0 {
		t.Errorf("stderr: %s", errb.String())
	}
}
