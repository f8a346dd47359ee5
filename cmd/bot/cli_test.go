package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mongobot/store"
)

// cli runs this test binary as bot with args, in dir as its working directory, with env and
// nothing else of the test's environment (so no BOT_* leaks in), stdin empty and not a
// terminal. HOME is dir too: whatever the command creates lands where the test looks.
func cli(t *testing.T, dir string, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = []string{"BOT_TEST_MAIN=1", "HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// tree lists every file and folder under dir with its contents, to compare before and after.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			out[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func names(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// tripwire is a TCP listener that counts connections: pointed at as Slack and MongoDB, it
// proves a command did not touch the network.
func tripwire(t *testing.T) (addr string, hits *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hits = &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), hits
}

// TestHelpChangesNothing asks every subcommand for help in each of the three ways, with a
// complete environment around it, and checks that it prints that subcommand's usage to stdout,
// exits 0, and creates nothing (no data folder, journal or key) and contacts nothing.
func TestHelpChangesNothing(t *testing.T) {
	addr, hits := tripwire(t)
	cfg := writeConfig(t)
	commands := []string{"serve", "check", "console", "journal", "journal list", "journal show", "journal export", "journal reindex", "journal compact", "journal backup", "journal restore", "rekey", "version"}
	type call struct {
		args []string
		want string // the usage's first line
	}
	var calls []call
	for _, c := range commands {
		words := strings.Fields(c)
		want := "usage: mongobot " + c
		calls = append(calls,
			call{append(words[:len(words):len(words)], "-h"), want},
			call{append(words[:len(words):len(words)], "--help"), want},
			call{append([]string{"help"}, words...), want})
	}
	calls = append(calls,
		// Help wins wherever it is, and over flags that would act.
		call{[]string{"rekey", "--yes", "--help"}, "usage: mongobot rekey"},
		call{[]string{"journal", "compact", "--yes", "--help"}, "usage: mongobot journal compact"},
		call{[]string{"journal", "show", "1", "-h"}, "usage: mongobot journal show"},
		call{[]string{"journal", "list", "5", "--help"}, "usage: mongobot journal list"},
		call{[]string{"journal", "help", "export"}, "usage: mongobot journal export"},
		call{[]string{"console", "--demo", "-h"}, "usage: mongobot console"},
		// Every spelling the flag package takes as a help request.
		call{[]string{"rekey", "-h=true"}, "usage: mongobot rekey"},
		call{[]string{"check", "--h"}, "usage: mongobot check"},
		call{[]string{"check", "-help=false"}, "usage: mongobot check"},
		call{[]string{"journal", "list", "--help=1"}, "usage: mongobot journal list"},
		call{[]string{"help", "--version"}, "usage: mongobot version"},
		call{[]string{"-h"}, "usage: mongobot <command>"},
		call{[]string{"--help"}, "usage: mongobot <command>"},
		call{[]string{"help"}, "usage: mongobot <command>"},
	)
	for _, c := range calls {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			env := map[string]string{"BOT_DATA_DIR": filepath.Join(dir, "data"), "BOT_CONFIG": cfg,
				"SLACK_APP_TOKEN": "xapp-1-test", "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": "http://" + addr + "/api/",
				"MONGO_URI": "mongodb://" + addr + "/?serverSelectionTimeoutMS=500"}
			code, out, errs := cli(t, dir, env, c.args...)
			if code != 0 || errs != "" {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			if first, _, _ := strings.Cut(out, "\n"); !strings.HasPrefix(first, c.want) {
				t.Fatalf("stdout starts %q, want %q\n%s", first, c.want, out)
			}
			if !strings.Contains(out, "Example") && c.want != "usage: mongobot <command>" {
				t.Errorf("the usage has no example:\n%s", out)
			}
			if got := tree(t, dir); len(got) != 0 {
				t.Fatalf("help created %v", names(got))
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("help connected to the network %d time(s)", n)
	}
	// Each command's usage names the environment it reads and its own flags.
	dir := t.TempDir()
	for cmd, wants := range map[string][]string{
		"serve":           {"SLACK_APP_TOKEN", "SLACK_BOT_TOKEN", "SLACK_API_URL", "BOT_CONFIG", "BOT_DATA_DIR", "BOT_ENCRYPTION_KEY"},
		"console":         {"--demo", "--as", "BOT_CONFIG", "BOT_DATA_DIR"},
		"check":           {"BOT_CONFIG", "BOT_DATA_DIR", "check: ok"},
		"journal":         {"list", "show", "export", "reindex", "backup", "restore", "BOT_DATA_DIR"},
		"journal backup":  {"--out", "BOT_DATA_DIR", "BOT_ENCRYPTION_KEY", "0600"},
		"journal restore": {"--yes", "BOT_DATA_DIR", "BOT_ENCRYPTION_KEY", "empty"},
		"rekey":           {"--yes", "BOT_ENCRYPTION_KEY", "BOT_NEW_ENCRYPTION_KEY", "BOT_DATA_DIR"},
	} {
		_, out, _ := cli(t, dir, nil, append(strings.Fields(cmd), "--help")...)
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("bot %s --help does not mention %s", cmd, w)
			}
		}
	}
	if code, _, errs := cli(t, dir, nil, "help", "nonsense"); code != 2 || !strings.Contains(errs, `there is no command "nonsense"`) {
		t.Errorf("help nonsense: exit %d, %q", code, errs)
	}
}

// TestExtraArgumentsAreErrors: an argument a command does not take is one sentence naming it
// and pointing at --help, exit 2, and nothing runs.
func TestExtraArgumentsAreErrors(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "now"}, {"check", "prod"}, {"console", "extra"}, {"journal", "export", "all"},
		{"journal", "list", "5", "6"}, {"journal", "show", "1", "2"}, {"journal", "reindex", "all"}, {"rekey", "now"}, {"version", "x"},
		{"rekey", "--force"}, {"journal", "backup", "now"}, {"journal", "backup", "--yes"},
		{"journal", "restore", "a.jsonl", "b.jsonl"}, {"journal", "restore", "--out", "x", "a.jsonl"}, {"journal", "restore"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			dir := t.TempDir()
			code, out, errs := cli(t, dir, map[string]string{"BOT_DATA_DIR": filepath.Join(dir, "data")}, args...)
			lines := strings.Split(strings.TrimSpace(errs), "\n")
			if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], "--help for its usage") || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 and one line pointing at --help", code, out, errs)
			}
			if got := tree(t, dir); len(got) != 0 {
				t.Fatalf("created %v", names(got))
			}
		})
	}
}

// TestReadOnlyCommandsCreateNothing: the journal commands and check, run where there is no
// data folder, say which folder and how to set BOT_DATA_DIR, and create nothing.
func TestReadOnlyCommandsCreateNothing(t *testing.T) {
	cfg := writeConfig(t)
	for _, args := range [][]string{{"journal", "list"}, {"journal", "show", "1"}, {"journal", "export"}, {"journal", "reindex"}, {"rekey", "--yes"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			code, _, errs := cli(t, dir, map[string]string{"BOT_DATA_DIR": data}, args...)
			if code != 1 || !strings.Contains(errs, "there is no data folder "+data) || !strings.Contains(errs, "set BOT_DATA_DIR") {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			// An empty data folder: no journal in it, and none made.
			os.Mkdir(data, 0o700)
			code, _, errs = cli(t, dir, map[string]string{"BOT_DATA_DIR": data}, args...)
			if code != 1 || !strings.Contains(errs, "there is no journal in "+data) {
				t.Fatalf("empty folder: exit %d, stderr %q", code, errs)
			}
			if got := tree(t, dir); len(got) != 1 {
				t.Fatalf("created %v", names(got))
			}
			// The default is ./data, relative to where the bot runs.
			os.Remove(data)
			if code, _, errs = cli(t, dir, nil, args...); code != 1 || !strings.Contains(errs, "there is no data folder "+data) {
				t.Fatalf("default folder: exit %d, stderr %q", code, errs)
			}
			if got := tree(t, dir); len(got) != 0 {
				t.Fatalf("created %v", names(got))
			}
		})
	}
	dir := t.TempDir()
	code, out, _ := cli(t, dir, map[string]string{"BOT_CONFIG": cfg, "MONGO_URI": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300"}, "check")
	if code != 1 || !strings.Contains(out, "data: no journal in "+filepath.Join(dir, "data")) || !strings.Contains(out, "BOT_DATA_DIR") {
		t.Fatalf("check: exit %d\n%s", code, out)
	}
	if got := tree(t, dir); len(got) != 0 {
		t.Fatalf("check created %v", names(got))
	}
}

// TestRekeyAsksFirst: rekey says what it will do, and without --yes (and no terminal to ask
// at) refuses and changes nothing; with --yes it re-keys.
func TestRekeyAsksFirst(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	st, err := store.Open(data, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := st.PutSecret("U0DEV", []byte("sealed"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	before := tree(t, dir)
	env := map[string]string{"BOT_DATA_DIR": data}
	code, out, errs := cli(t, dir, env, "rekey")
	if code != 2 || !strings.Contains(out, "rekey will re-encrypt the 1 sealed password(s) in "+filepath.Join(data, store.FileName)) ||
		!strings.Contains(out, filepath.Join(data, store.KeyFileName)) || !strings.Contains(errs, "needs --yes") || !strings.Contains(errs, "nothing was changed") {
		t.Fatalf("rekey without --yes: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	after := tree(t, dir)
	if len(after) != len(before) {
		t.Fatalf("files before %v, after %v", names(before), names(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("rekey without --yes changed %s", k)
		}
	}
	if code, out, errs = cli(t, dir, env, "rekey", "--yes"); code != 0 || !strings.Contains(out, "re-encrypted") {
		t.Fatalf("rekey --yes: exit %d %s %s", code, out, errs)
	}
	if k := tree(t, dir)[filepath.Join("data", store.KeyFileName)]; k == before[filepath.Join("data", store.KeyFileName)] {
		t.Fatal("rekey --yes did not replace the key file")
	}
	st, err = store.Open(data, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got, err := st.TakeSecret(id, "U0DEV"); err != nil || string(got) != "sealed" {
		t.Fatalf("after rekey: %q %v", got, err)
	}
}

// Passwords sealed with a key from the environment, and rekey run without it: refused before
// anything is written, saying which variable to set (no stray key files left behind).
func TestRekeyWithoutTheEnvironmentsKey(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	key, err := store.ParseKey(store.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(data, store.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutSecret("U0DEV", []byte("sealed"), time.Hour); err != nil {
		t.Fatal(err)
	}
	st.Close()
	before := tree(t, dir)
	code, _, errs := cli(t, dir, map[string]string{"BOT_DATA_DIR": data}, "rekey", "--yes")
	if code == 0 || !strings.Contains(errs, "set BOT_ENCRYPTION_KEY to it") || !strings.Contains(errs, "nothing was changed") {
		t.Fatalf("rekey without the environment's key: exit %d: %s", code, errs)
	}
	if after := tree(t, dir); len(after) != len(before) {
		t.Fatalf("files before %v, after %v", names(before), names(after))
	}
}

// The version stamped at link time wins; without one, the toolchain's stamp (a test binary
// has none, so "dev").
func TestVersion(t *testing.T) {
	defer func(v string) { version = v }(version)
	for _, tt := range []struct{ stamped, want string }{{"v0.2.0-3-gabc1234", "mongobot v0.2.0-3-gabc1234\n"}, {"", "mongobot dev\n"}} {
		version = tt.stamped
		var out bytes.Buffer
		if code := run(context.Background(), []string{"version"}, envOf(nil), nil, &out, &out); code != 0 || out.String() != tt.want {
			t.Errorf("version stamped %q: exit %d, %q; want %q", tt.stamped, code, out.String(), tt.want)
		}
	}
}
