package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"mongobot/bot/slack/slacktest"
	"mongobot/connector/mongotest"
	"mongobot/store"
)

const keyFileWarning = "the encryption key is in a file next to the journal it protects"

// TestKeyFileWarning runs the bot as its own process and checks that it warns once, at
// start-up, when the key sealing new passwords is the key file beside the journal, and not
// at all when the key comes from BOT_ENCRYPTION_KEY.
func TestKeyFileWarning(t *testing.T) {
	if testing.Short() {
		t.Skip("starts bot processes")
	}
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	for _, tc := range []struct {
		name string
		key  string
		warn bool
	}{
		{"key file", "", true},
		{"BOT_ENCRYPTION_KEY", store.NewKey(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sl := slacktest.New()
			defer sl.Close()
			dir := filepath.Join(t.TempDir(), "data")
			env := map[string]string{"SLACK_APP_TOKEN": sl.AppToken, "SLACK_BOT_TOKEN": sl.BotToken, "SLACK_API_URL": sl.URL(),
				"BOT_CONFIG": writeConfig(t), "BOT_DATA_DIR": dir, "MONGO_URI": emu.URI(), "BOT_ENCRYPTION_KEY": tc.key}
			c := startChild(t, env)
			waitFor(t, sl, "the bot to connect", func() bool { return sl.Connected() })
			waitFor(t, sl, "the start-up log", func() bool { return strings.Contains(c.log.String(), "msg=starting") })
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- c.cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("after SIGTERM: %v\n%s", err, c.log.String())
				}
			case <-time.After(40 * time.Second):
				t.Fatal("the bot did not stop within 40s of SIGTERM")
			}
			logs := c.log.String()
			n := strings.Count(logs, keyFileWarning)
			if !tc.warn {
				if n != 0 || strings.Contains(logs, store.KeyFileName) {
					t.Fatalf("warned about a key file although BOT_ENCRYPTION_KEY is set:\n%s", logs)
				}
				if _, err := os.Stat(filepath.Join(dir, store.KeyFileName)); !os.IsNotExist(err) {
					t.Fatalf("a key file was created although BOT_ENCRYPTION_KEY is set: %v", err)
				}
				return
			}
			if n != 1 {
				t.Fatalf("the key file warning is logged %d times, want once:\n%s", n, logs)
			}
			var line string
			for _, l := range strings.Split(logs, "\n") {
				if strings.Contains(l, keyFileWarning) {
					line = l
				}
			}
			for _, want := range []string{"level=WARN", "a copy of the data folder", "backup", "volume snapshot",
				"set BOT_ENCRYPTION_KEY from a secret store instead", "key_file=" + filepath.Join(dir, store.KeyFileName)} {
				if !strings.Contains(line, want) {
					t.Errorf("the warning %q does not say %q", line, want)
				}
			}
		})
	}
}

// TestKeyFileOpenToOthersStopsTheBot: a key file its group or others may read stops serve and
// the journal commands at start, in one line naming the file and the fix.
func TestKeyFileOpenToOthersStopsTheBot(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits")
	}
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	path := filepath.Join(dir, store.KeyFileName)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{"SLACK_APP_TOKEN": "xapp-test", "SLACK_BOT_TOKEN": "xoxb-test",
		"BOT_CONFIG": writeConfig(t), "BOT_DATA_DIR": dir, "MONGO_URI": "mongodb://127.0.0.1:1/"})
	for _, args := range [][]string{{"serve"}, {"journal", "list"}} {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, env, nil, &out, &errb)
		lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
		if code != 1 || len(lines) != 1 || !strings.Contains(lines[0], path+" has mode 0644") ||
			!strings.Contains(lines[0], "chmod 600 "+path) {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and one line naming %s and chmod 600", args, code, errb.String(), path)
		}
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"journal", "list"}, env, nil, &out, &errb); code != 0 {
		t.Fatalf("after chmod 600: exit %d: %s", code, errb.String())
	}
}

// TestKeyFileToEnvironment follows the README's way off the key file: with the bot stopped,
// bot rekey with BOT_NEW_ENCRYPTION_KEY, delete the key file, start with BOT_ENCRYPTION_KEY.
func TestKeyFileToEnvironment(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := st.PutSecret("U1", []byte("pw-sealed"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	newKey := store.NewKey()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"rekey", "--yes"}, envOf(map[string]string{"BOT_DATA_DIR": dir, "BOT_NEW_ENCRYPTION_KEY": newKey}),
		nil, &out, &errb); code != 0 {
		t.Fatalf("rekey: exit %d: %s", code, errb.String())
	}
	if err := os.Remove(filepath.Join(dir, store.KeyFileName)); err != nil {
		t.Fatal(err)
	}
	st, err = openStore(envOf(map[string]string{"BOT_ENCRYPTION_KEY": newKey}), dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if p := st.KeyFile(); p != "" {
		t.Fatalf("KeyFile() = %q with BOT_ENCRYPTION_KEY set", p)
	}
	if got, err := st.TakeSecret(id, "U1"); err != nil || string(got) != "pw-sealed" {
		t.Fatalf("the secret sealed before the move: %q %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, store.KeyFileName)); !os.IsNotExist(err) {
		t.Fatalf("a key file is back in the data folder: %v", err)
	}
}
