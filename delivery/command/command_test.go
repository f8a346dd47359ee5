//go:build unix

package command

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mongobot/delivery"
	"mongobot/secret"
)

// password has the characters JSON escapes (" and \) and the ones it may (<, >, &), so the
// tests see it arrive intact and see it scrubbed in both its raw and its JSON form.
const password = `pa"ss\w<&>rd-4f9c2e`

var cred = delivery.Credential{Connector: "orders", User: "app", Database: "admin", Password: secret.New(password), Entry: 42}

// script writes a shell script into a new temporary directory and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "deliver")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

func target(t *testing.T, c Config) *Target {
	t.Helper()
	tg, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDeliver(t *testing.T) {
	t.Setenv("MONGOBOT_TEST_SECRET", "bot-only-token")
	// The script keeps what it received in files only it can read, whatever the bot's umask,
	// and records the arguments and environment it really got from the kernel where it can.
	path := script(t, `umask 077
dir=$(dirname "$0")
cat > "$dir/stdin.json"
printf '%s\n' "$0" "$@" > "$dir/argv"
cat /proc/$$/cmdline >> "$dir/argv" 2>/dev/null
{ cat /proc/$$/environ 2>/dev/null || env; } > "$dir/env"
`)
	dir := filepath.Dir(path)
	tg := target(t, Config{Argv: []string{path, "--to", "orders"}, Env: map[string]string{"DELIVER_TO": "orders"}})
	version, err := tg.Deliver(context.Background(), cred)
	if err != nil || version != "" {
		t.Fatalf("Deliver = %q, %v; want \"\", nil", version, err)
	}

	in := read(t, filepath.Join(dir, "stdin.json"))
	if strings.Count(in, "\n") != 1 || !strings.HasSuffix(in, "\n") {
		t.Errorf("stdin is not one line ending in a newline: %q", in)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(in), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"connector": "orders", "user": "app", "database": "admin",
		"username": "app", "password": password, "journal_id": 42.0}
	if len(got) != len(want) {
		t.Errorf("stdin has keys %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("stdin %s = %v, want %v", k, got[k], v)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "stdin.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("stdin.json: %v, %v; want mode 0600", fi.Mode(), err)
	}

	argv, env := read(t, filepath.Join(dir, "argv")), read(t, filepath.Join(dir, "env"))
	if !strings.Contains(argv, "--to") {
		t.Errorf("argv was not recorded: %q", argv)
	}
	for _, leak := range []string{password, "pa\"ss", "rd-4f9c2e", "bot-only-token", "MONGOBOT_TEST_SECRET"} {
		if strings.Contains(argv, leak) || strings.Contains(env, leak) {
			t.Errorf("%q reached the program's argv or environment", leak)
		}
	}
	if !strings.Contains(env, "DELIVER_TO=orders") {
		t.Errorf("Config.Env did not reach the program: %q", env)
	}
	if runtime.GOOS == "linux" { // /proc/PID/environ is exactly what the program was given
		var names []string
		for _, kv := range strings.Split(strings.TrimRight(env, "\x00"), "\x00") {
			names = append(names, strings.SplitN(kv, "=", 2)[0])
		}
		sort.Strings(names)
		for _, n := range names {
			if n != "DELIVER_TO" && !strings.Contains(" PATH HOME LANG TZ TMPDIR ", " "+n+" ") {
				t.Errorf("the program's environment has %s; it has %v", n, names)
			}
		}
	}

	how, err := tg.Verify(context.Background(), cred, version)
	if err != nil || how != "a command cannot be read back: it exited with status 0" {
		t.Errorf("Verify = %q, %v", how, err)
	}
	if err := tg.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestDeliverFailureIsScrubbed(t *testing.T) {
	// The program echoes its input (JSON-escaped password) and the raw password, with colour
	// codes, before failing.
	path := script(t, `cat >&2
printf 'raw %s\n' '`+password+`' >&2
printf '\033[31mno route to vault\033[0m\n'
exit 3
`)
	_, err := target(t, Config{Argv: []string{path}}).Deliver(context.Background(), cred)
	if err == nil {
		t.Fatal("Deliver succeeded; want exit status 3")
	}
	msg := err.Error()
	for _, want := range []string{"command " + path + " exited with status 3: ", "no route to vault", "raw REDACTED", `"password":"REDACTED"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	for _, leak := range []string{"pa\"ss", `pa\"ss`, "rd-4f9c2e", "\x1b", "[31m"} {
		if strings.Contains(msg, leak) {
			t.Errorf("error %q contains %q", msg, leak)
		}
	}
	if errors.Is(err, delivery.ErrRejected) {
		t.Errorf("a failing program is not a rejection: %v", err)
	}
}

func TestDeliverTimeoutKillsGroup(t *testing.T) {
	path := script(t, `sleep 30 &
echo $! > "$(dirname "$0")/child"
sleep 30
`)
	start := time.Now()
	_, err := target(t, Config{Argv: []string{path}, Timeout: 300 * time.Millisecond}).Deliver(context.Background(), cred)
	want := "command " + path + " did not finish within 300ms; it was stopped"
	if err == nil || err.Error() != want {
		t.Fatalf("Deliver = %v, want %q", err, want)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Deliver took %v after a 300ms timeout", d)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(read(t, filepath.Join(filepath.Dir(path), "child"))))
	if err != nil {
		t.Fatal(err)
	}
	// The background sleep was killed with its group; it may linger briefly as a zombie until
	// whoever inherited it reaps it, which counts as gone.
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the script's background child %d outlived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err != nil || !strings.Contains(string(stat), ") Z ")
}

func TestDeliverCancelled(t *testing.T) {
	path := script(t, "sleep 30\n")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := target(t, Config{Argv: []string{path}}).Deliver(ctx, cred)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "was stopped before it finished") {
		t.Fatalf("Deliver = %v; want stopped, wrapping the context's error", err)
	}
}

func TestDeliverWithoutReading(t *testing.T) {
	// Exits 0 at once, without reading its input; the second leaves a background process
	// holding its output open, which must not hold Deliver longer than waitDelay.
	for _, body := range []string{"exit 0\n", "sleep 10 &\necho $! > \"$(dirname \"$0\")/child\"\nexit 0\n"} {
		path := script(t, body)
		start := time.Now()
		if _, err := target(t, Config{Argv: []string{path}, Timeout: time.Minute}).Deliver(context.Background(), cred); err != nil {
			t.Errorf("%q: %v", body, err)
		}
		if d := time.Since(start); d > waitDelay+5*time.Second {
			t.Errorf("%q: Deliver took %v", body, d)
		}
		if b, err := os.ReadFile(filepath.Join(filepath.Dir(path), "child")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

func TestMissingProgram(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "deliver")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"/nonexistent/deliver-orders", "mongobot-no-such-program", notExec} {
		_, err := New(Config{Argv: []string{name}})
		if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), "command "+name+" cannot be run") {
			t.Errorf("New(%q) = %v; want ErrRejected, cannot be run", name, err)
		}
	}

	// A program removed after New: Check and Deliver say so.
	path := script(t, "exit 0\n")
	tg := target(t, Config{Argv: []string{path}})
	os.Remove(path)
	if err := tg.Check(context.Background()); !errors.Is(err, delivery.ErrRejected) {
		t.Errorf("Check = %v; want ErrRejected", err)
	}
	_, err := tg.Deliver(context.Background(), cred)
	want := "the target refused the delivery: command " + path + " could not be started: no such file or directory"
	if !errors.Is(err, delivery.ErrRejected) || err.Error() != want {
		t.Errorf("Deliver = %v; want %q", err, want)
	}
}

func TestNew(t *testing.T) {
	sh := "/bin/sh"
	for _, c := range []Config{
		{},
		{Argv: []string{""}},
		{Argv: []string{"./deliver"}},
		{Argv: []string{sh}, Timeout: time.Millisecond},
		{Argv: []string{sh}, Timeout: time.Hour},
		{Argv: []string{sh}, Timeout: -time.Second},
		{Argv: []string{sh}, Env: map[string]string{"A=B": "c"}},
		{Argv: []string{sh}, Env: map[string]string{"": "c"}},
		{Argv: []string{sh}, Dir: "/nonexistent"},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
	tg := target(t, Config{Argv: []string{"sh", "-c", "exit 0"}, Dir: t.TempDir()})
	if tg.timeout != DefaultTimeout || !filepath.IsAbs(tg.path) {
		t.Errorf("New: timeout %v, path %q", tg.timeout, tg.path)
	}
	if got, want := tg.Describe(), "command "+tg.path+" (2 args)"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	if got := target(t, Config{Argv: []string{sh}}).Describe(); got != "command /bin/sh" {
		t.Errorf("Describe = %q", got)
	}
}

func TestSummaryDropsCutLine(t *testing.T) {
	// The kept tail begins five bytes into the password: the rest of it cannot be matched by
	// Scrub, so the cut line must not reach the error.
	var out tail
	after := "\n" + strings.Repeat("y", keepBytes-(len(password)-5)-len("\n\nlast\n")) + "\nlast\n"
	for _, s := range []string{strings.Repeat("x", 5000), password, after} {
		out.Write([]byte(s))
	}
	if len(out.buf) != keepBytes || !strings.HasPrefix(string(out.buf), password[5:]) {
		t.Fatalf("the test's arithmetic is off: kept %d bytes starting %q", len(out.buf), out.buf[:20])
	}
	if got := out.summary(secret.New(password)); strings.Contains(got, "rd-4f9c2e") || !strings.HasSuffix(got, " | last") {
		t.Errorf("summary = %.80q…", got)
	}
	out = tail{}
	out.Write([]byte(strings.Repeat("z", 2*keepBytes)))
	if got := out.summary(secret.New(password)); got != "" {
		t.Errorf("summary of one cut line = %.40q…, want none", got)
	}
}
