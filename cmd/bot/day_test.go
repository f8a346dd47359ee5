//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"mongobot/bot"
	"mongobot/bot/slack/slacktest"
	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/internal/syncbuf"
	"mongobot/secret"
)

// dayPage is the walk-through TestOperatorsDay runs word for word.
const dayPage = "../../docs/operators-day.md"

// dayStep is one thing the walk-through does: a bash block to run, or, between blocks, a
// marker (<!-- day: name -->) where the test plays the part of the people in Slack or checks
// what the last block printed.
type dayStep struct {
	code string // a bash block, as written
	mark string // or a marker's name
	line int    // where it starts in the page
}

var (
	fence  = regexp.MustCompile("(?m)^```bash\n((?s:.*?))^```\n")
	marker = regexp.MustCompile(`<!-- day: ([a-z-]+) -->`)
)

// daySteps reads the page's bash blocks and markers in page order.
func daySteps(page string) []dayStep {
	var steps []dayStep
	for _, m := range fence.FindAllStringSubmatchIndex(page, -1) {
		steps = append(steps, dayStep{code: page[m[2]:m[3]], line: 1 + strings.Count(page[:m[0]], "\n")})
	}
	for _, m := range marker.FindAllStringSubmatchIndex(page, -1) {
		steps = append(steps, dayStep{mark: page[m[2]:m[3]], line: 1 + strings.Count(page[:m[0]], "\n")})
	}
	for i := 1; i < len(steps); i++ { // few steps: insertion sort by line
		for j := i; j > 0 && steps[j].line < steps[j-1].line; j-- {
			steps[j], steps[j-1] = steps[j-1], steps[j]
		}
	}
	return steps
}

// shell is one bash, fed the page's blocks one at a time, as a terminal would be: variables
// exported and jobs started by one block are there for the next.
type shell struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *syncbuf.Buffer
	done chan struct{}
	n    int
}

func startShell(t *testing.T, dir string, env []string) *shell {
	t.Helper()
	sh := &shell{cmd: exec.Command("bash", "--noprofile", "--norc"), out: &syncbuf.Buffer{}, done: make(chan struct{})}
	sh.cmd.Dir, sh.cmd.Env = dir, env
	sh.cmd.Stdout, sh.cmd.Stderr = sh.out, sh.out
	// Its own process group, which the jobs it starts share (no job control): when a block
	// fails, set -e ends the shell and its background bot would outlive the test; the
	// group is killed whole instead.
	sh.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := sh.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	sh.in = in
	if err := sh.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = sh.cmd.Wait(); close(sh.done) }()
	t.Cleanup(func() {
		// Whatever the page left running in the background is asked to stop, then the
		// group goes, shell or no shell.
		_, _ = io.WriteString(sh.in, "kill $(jobs -p) 2>/dev/null; wait\nexit\n")
		select {
		case <-sh.done:
		case <-time.After(30 * time.Second):
		}
		_ = syscall.Kill(-sh.cmd.Process.Pid, syscall.SIGKILL)
	})
	// A failing command fails the page: the shell exits and run reports it.
	sh.send(t, "set -eo pipefail\n")
	return sh
}

func (sh *shell) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(sh.in, s); err != nil {
		t.Fatalf("the shell is gone: %v\n%s", err, sh.out.String())
	}
}

// run feeds one block and returns what it printed. The block runs inside braces, so it is
// parsed whole, as a pasted block is, before any of it runs.
func (sh *shell) run(t *testing.T, st dayStep, limit time.Duration) string {
	t.Helper()
	sh.n++
	mark := fmt.Sprintf("@@day-step-%d-done", sh.n)
	start := len(sh.out.String())
	sh.send(t, "{\n"+st.code+"\n}\necho "+mark+"\n")
	deadline := time.After(limit)
	for {
		all := sh.out.String()
		if i := strings.Index(all[start:], mark+"\n"); i >= 0 {
			return all[start : start+i]
		}
		select {
		case <-sh.done: // Wait has copied all the output by now
			t.Fatalf("the block at line %d failed (%s):\n%s\n--- it printed:\n%s", st.line, sh.cmd.ProcessState, st.code, sh.out.String()[start:])
		case <-deadline:
			t.Fatalf("the block at line %d did not finish in %s:\n%s\n--- it printed:\n%s", st.line, limit, st.code, all[start:])
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestOperatorsDay runs docs/operators-day.md as its reader would: every bash block, word
// for word and in order, in one shell, with `mongobot` on the PATH (this test binary acting
// as the program), the Slack stand-in as Slack and the emulator as MongoDB. At the page's
// markers the test plays the people in Slack and checks what the blocks printed.
func TestOperatorsDay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bot as separate processes for a minute")
	}
	raw, err := os.ReadFile(dayPage)
	if err != nil {
		t.Fatal(err)
	}
	steps := daySteps(string(raw))
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	admin, err := connector.New(connector.Config{Name: "check", URI: secret.New(emu.URI())})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	for _, u := range []string{"app", "reports"} {
		if _, _, err := admin.CreateUser(context.Background(), "create-user", connector.UserRef{User: u, DB: "admin"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	sl := slacktest.New()
	defer sl.Close()

	home := t.TempDir()
	bin := filepath.Join(home, ".bin")
	if err := os.Mkdir(bin, 0o700); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\nBOT_TEST_MAIN=1 exec '" + self + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "mongobot"), []byte(wrapper), 0o700); err != nil {
		t.Fatal(err)
	}
	// What a service manager's environment file holds: the secrets, and Slack's address
	// (here the stand-in's). Nothing of the bot's own settings: the page sets those.
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + t.TempDir(), "LANG=C",
		"SLACK_APP_TOKEN=" + sl.AppToken, "SLACK_BOT_TOKEN=" + sl.BotToken, "SLACK_API_URL=" + sl.URL(),
		"MONGO_URI=" + emu.URI()}
	if gc := os.Getenv("GOCOVERDIR"); gc != "" {
		env = append(env, "GOCOVERDIR="+gc)
	}
	sh := startShell(t, home, env)

	var last string // what the last block printed
	day := dayActors{t: t, sl: sl, emu: emu, home: home}
	for _, st := range steps {
		if st.mark != "" {
			check, ok := day.marks()[st.mark]
			if !ok {
				t.Fatalf("line %d: the page names a marker %q the test does not know", st.line, st.mark)
			}
			check(last)
			continue
		}
		last = sh.run(t, st, 2*time.Minute)
		t.Logf("line %d:\n%s", st.line, indent(last))
	}
	if day.ran != len(day.marks()) {
		t.Fatalf("the page has %d of the test's %d markers: a step of the day was left out", day.ran, len(day.marks()))
	}
	// Nothing secret in anything the page printed or wrote.
	all := sh.out.String()
	logs, _ := os.ReadFile(filepath.Join(home, "mongobot", "mongobot.log"))
	for _, s := range append(day.secrets, emu.AdminPassword()) {
		if strings.Contains(all, s) || strings.Contains(string(logs), s) {
			t.Fatal("a password is in the shell's output or the bot's log")
		}
	}
}

func indent(s string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		b.WriteString("    " + sc.Text() + "\n")
	}
	return b.String()
}

// dayActors are the people of the day in Slack, and the checks of what the operator saw.
type dayActors struct {
	t       *testing.T
	sl      *slacktest.Server
	emu     *mongotest.Server
	home    string
	secrets []string
	ran     int
	list    string // journal list, read while the bot served
	audit   string // audit.jsonl after the two exports
}

func (d *dayActors) marks() map[string]func(last string) {
	count := func(f func(string)) func(string) { return func(s string) { d.ran++; f(s) } }
	return map[string]func(string){
		"requests":      count(d.requests),
		"listed":        count(d.listed),
		"more-requests": count(d.moreRequests),
		"exported":      count(d.exported),
		"revealed":      count(d.revealed),
		"drilled":       count(d.drilled),
	}
}

// contains fails the test unless out holds every one of want.
func (d *dayActors) contains(what, out string, want ...string) {
	d.t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			d.t.Fatalf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// listed: the running bot's journal, read while it serves, holds the day's two actions, the
// grant with its end still due.
func (d *dayActors) listed(out string) {
	d.list = out
	d.contains("journal list while the bot serves", out, "rotate-password app on prod  by U0DEV",
		"grant-role reports read@shop on prod  by U0DEV", "ends:")
}

// moreRequests happen between two exports: someone who is no approver presses Approve (the
// click is refused, and that is on the record), then a lock is denied.
func (d *dayActors) moreRequests(string) {
	d.request("U0DEV", "lock-user prod app --reason OPS-7", "U0EVE", bot.TextApprove)
	card, err := d.sl.WaitMessage(20*time.Second, "the lock's card", slacktest.Containing("lock-user"))
	if err != nil {
		d.t.Fatal(err)
	}
	b, _ := card.Find(bot.TextDeny)
	if _, err := d.sl.Click("U0BOB", card, b); err != nil {
		d.t.Fatal(err)
	}
	if _, err := d.sl.WaitMessage(20*time.Second, "the lock denied", func(m slacktest.Message) bool {
		return m.TS == card.TS && strings.Contains(m.All(), "Denied")
	}); err != nil {
		d.t.Fatal(err)
	}
}

// exported: audit.jsonl, written by the two exports, holds every event once, in order, the
// second export only those after the first; the day's decisions are all there.
func (d *dayActors) exported(string) {
	t := d.t
	raw, err := os.ReadFile(filepath.Join(d.home, "mongobot", "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var last float64
	kinds := map[string]int{}
	for i, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var ev struct {
			Cursor float64 `json:"cursor"`
			Kind   string  `json:"kind"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit.jsonl line %d is not JSON: %v\n%s", i+1, err, line)
		}
		if ev.Cursor <= last {
			t.Fatalf("audit.jsonl line %d: cursor %v after %v: an event twice or out of order\n%s", i+1, ev.Cursor, last, raw)
		}
		last = ev.Cursor
		kinds[ev.Kind]++
	}
	d.contains("audit.jsonl", string(raw), `"U0EVE"`, "OPS-7", "drop-user", "rotate-password", "read@shop")
	if len(kinds) < 4 {
		t.Fatalf("audit.jsonl has only the kinds %v:\n%s", kinds, raw)
	}
	d.audit = string(raw)
}

// revealed: after the rotation of the key and the restart, the password sealed before it is
// still revealed to its owner, and logs in.
func (d *dayActors) revealed(string) {
	t := d.t
	offer, err := d.sl.WaitMessage(20*time.Second, "the rotation's reveal offer", func(m slacktest.Message) bool {
		_, ok := m.Find(bot.TextReveal)
		return m.Channel == "DU0DEV" && ok
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := offer.Find(bot.TextReveal)
	var shown slacktest.Message
	err = d.sl.Wait(30*time.Second, "the password revealed after the key's rotation", func(s *slacktest.Server) bool {
		if m, ok := s.Find(func(m slacktest.Message) bool { return m.Ephemeral && strings.Contains(m.All(), "```") }); ok {
			shown = m
			return true
		}
		if s.Connected() {
			_, _ = s.Click("U0DEV", offer, b)
			time.Sleep(500 * time.Millisecond)
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	pw := regexp.MustCompile("```([^`]+)```").FindStringSubmatch(shown.All())[1]
	d.secrets = append(d.secrets, pw)
	if !d.emu.CheckPassword(mongotest.UserRef{User: "app", DB: "admin"}, pw) {
		t.Fatal("the password revealed after the key's rotation is not app's")
	}
}

// drilled: the restored journal lists what the live one did.
func (d *dayActors) drilled(out string) {
	d.contains("the restored journal's list", out, "rotate-password app on prod  by U0DEV",
		"grant-role reports read@shop on prod  by U0DEV", "ends:")
}

// request sends a slash command as user, waits for its card, and has voter press button.
func (d *dayActors) request(user, text, voter, button string) slacktest.Message {
	t := d.t
	t.Helper()
	if _, err := d.sl.SlashCommand(user, "C0OPS", "/mongo", text); err != nil {
		t.Fatal(err)
	}
	card, err := d.sl.WaitMessage(20*time.Second, "the card of "+text, func(m slacktest.Message) bool {
		_, ok := m.Find(bot.TextApprove)
		return m.Channel == "C0APPROVALS" && ok && strings.Contains(m.All(), strings.Fields(text)[0])
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := card.Find(button)
	if _, err := d.sl.Click(voter, card, b); err != nil {
		t.Fatal(err)
	}
	return card
}

// requests is a day's work in Slack: a rotation approved, a temporary grant approved (its
// end is still due at the end of the day), a drop denied.
func (d *dayActors) requests(string) {
	t := d.t
	if err := d.sl.Wait(30*time.Second, "the bot to connect", func(s *slacktest.Server) bool { return s.Connected() }); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ text, button, done string }{
		{"rotate-password prod app", bot.TextApprove, "*Done*"},
		{"grant-role prod reports read@shop --for 8h", bot.TextApprove, "*Done*"},
		{"drop-user prod reports", bot.TextDeny, "Denied"},
	} {
		card := d.request("U0DEV", r.text, "U0ALICE", r.button)
		if _, err := d.sl.WaitMessage(20*time.Second, r.text+" decided", func(m slacktest.Message) bool {
			return m.TS == card.TS && strings.Contains(m.All(), r.done)
		}); err != nil {
			t.Fatal(err)
		}
	}
}
