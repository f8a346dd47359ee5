package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"mongobot/store"
	"mongobot/store/storetest"
)

const goldenKey = storetest.V010Key

// unpackV010 makes a data folder holding the journal v0.1.0 wrote (store/storetest).
func unpackV010(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := storetest.WriteV010(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestUpgradeRule holds the rule CHANGELOG.md states, through the commands people run:
// this version reads and serves a journal an older version wrote, and an older version's
// journal stays readable; a journal marked with a newer schema is refused by every command
// that opens it, in words, and not a byte of it changes.
func TestUpgradeRule(t *testing.T) {
	t.Run("older journal", func(t *testing.T) {
		dir := unpackV010(t)
		env := envOf(map[string]string{"BOT_DATA_DIR": dir, "BOT_ENCRYPTION_KEY": goldenKey})
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"journal", "list", "100"}, env, nil, &out, &errb); code != 0 {
			t.Fatalf("journal list on v0.1.0's journal: exit %d: %s", code, errb.String())
		}
		for _, want := range []string{"grant-role", "rotate-password", "access", "U0DEV"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("journal list lacks %q:\n%s", want, out.String())
			}
		}
		// journal export prints every line v0.1.0 printed for it, in the same order: each
		// field with the same value. The lines now begin with the audit trail's schema,
		// cursor and kind (docs/audit.md), so they are compared as JSON objects.
		out.Reset()
		if code := run(context.Background(), []string{"journal", "export"}, env, nil, &out, &errb); code != 0 {
			t.Fatalf("journal export on v0.1.0's journal: exit %d: %s", code, errb.String())
		}
		rest := strings.Split(strings.TrimSpace(out.String()), "\n")
		for _, line := range strings.Split(strings.TrimSpace(string(storetest.V010Export)), "\n") {
			i := slices.IndexFunc(rest, func(l string) bool { return carries(t, l, line) })
			if i < 0 {
				t.Fatalf("journal export lacks, or reorders, a line v0.1.0 printed:\n%s", line)
			}
			rest = rest[i+1:]
		}
		out.Reset()
		if code := run(context.Background(), []string{"journal", "show", "1"}, env, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), `"action"`) {
			t.Fatalf("journal show 1: exit %d: %s %s", code, out.String(), errb.String())
		}
		// A command that opens it for writing migrates it (a no-op while the schema is 1)
		// and leaves it readable by the version that wrote it: the schema stays 1.
		out.Reset()
		if code := run(context.Background(), []string{"journal", "reindex"}, env, nil, &out, &errb); code != 0 {
			t.Fatalf("journal reindex on v0.1.0's journal: exit %d: %s", code, errb.String())
		}
		if got := schemaOf(t, dir); got != 1 {
			t.Errorf("schema after this version wrote to it: %d, want 1 (v0.1.0 must still read it)", got)
		}
		// Opened for writing, the journal has begun its trail: the history before it is
		// still exported, as before.
		out.Reset()
		if code := run(context.Background(), []string{"journal", "export"}, env, nil, &out, &errb); code != 0 {
			t.Fatalf("journal export after this version opened it: exit %d: %s", code, errb.String())
		}
		rest = strings.Split(strings.TrimSpace(out.String()), "\n")
		for _, line := range strings.Split(strings.TrimSpace(string(storetest.V010Export)), "\n") {
			i := slices.IndexFunc(rest, func(l string) bool { return carries(t, l, line) })
			if i < 0 {
				t.Fatalf("journal export, after a writable open, lacks or reorders a line v0.1.0 printed:\n%s", line)
			}
			rest = rest[i+1:]
		}
		// Its records were never authenticated: verify says it awaits adoption, adopt asks
		// (and without a terminal or --yes changes nothing), then adopts and says by whom.
		sh := func(want int, args ...string) string {
			t.Helper()
			var out, errb bytes.Buffer
			e := envOf(map[string]string{"BOT_DATA_DIR": dir, "BOT_ENCRYPTION_KEY": goldenKey, "USER": "ops"})
			if code := run(context.Background(), args, e, nil, &out, &errb); code != want {
				t.Fatalf("%v: exit %d, want %d: %s %s", args, code, want, out.String(), errb.String())
			}
			return out.String() + errb.String()
		}
		if got := sh(1, "journal", "verify"); !strings.Contains(got, "awaits adoption") || !strings.Contains(got, "mongobot journal adopt") {
			t.Errorf("verify of v0.1.0's journal: %s", got)
		}
		before := fileSum(t, filepath.Join(dir, store.FileName))
		if got := sh(2, "journal", "adopt"); !strings.Contains(got, "needs --yes") || fileSum(t, filepath.Join(dir, store.FileName)) != before {
			t.Errorf("adopt without --yes or a terminal: %s", got)
		}
		if got := sh(0, "journal", "adopt", "--yes"); !strings.Contains(got, "adopted the journal") || !strings.Contains(got, "by cli:ops") {
			t.Errorf("adopt --yes: %s", got)
		}
		if got := sh(0, "journal", "verify"); !strings.Contains(got, "every one was written by the bot") {
			t.Errorf("verify after adoption: %s", got)
		}
		if got := sh(0, "journal", "export"); !strings.Contains(got, `"kind":"adopted","at"`) || !strings.Contains(got, `"by":"cli:ops"`) {
			t.Errorf("the adoption is not in the trail:\n%s", got)
		}
		if got := sh(0, "journal", "adopt", "--yes"); !strings.Contains(got, "nothing to adopt") {
			t.Errorf("adopt again: %s", got)
		}
		// A request written into the file behind the bot's back is listed by verify.
		forged := []byte(`{"id":77,"action":"grant-role","connector":"demo","requester":"U0EVE","state":"approved","args":{"user":"eve","role":"root@admin"}}`)
		if err := storetest.Put(dir, "requests", []byte{0, 0, 0, 0, 0, 0, 0, 77}, forged); err != nil {
			t.Fatal(err)
		}
		if got := sh(1, "journal", "verify"); !strings.Contains(got, "request  77") || !strings.Contains(got, "it has no tag") {
			t.Errorf("verify after a forgery: %s", got)
		}
		if got := sh(1, "journal", "adopt", "--yes"); !strings.Contains(got, "adopt never vouches") {
			t.Errorf("adopt over a forgery: %s", got)
		}
	})
	t.Run("newer journal", func(t *testing.T) {
		dir := unpackV010(t)
		if err := storetest.MarkSchema(dir, store.SchemaVersion+1); err != nil {
			t.Fatal(err)
		}
		before := fileSum(t, filepath.Join(dir, store.FileName))
		cfg := writeConfig(t)
		env := envOf(map[string]string{"BOT_DATA_DIR": dir, "BOT_ENCRYPTION_KEY": goldenKey, "BOT_CONFIG": cfg, "MONGO_URI": "mongodb://" + closedPort(t),
			"SLACK_APP_TOKEN": "xapp-1-test", "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": "http://" + closedPort(t) + "/api/"})
		for _, args := range [][]string{{"journal", "list"}, {"journal", "export"}, {"journal", "reindex"}, {"rekey", "--yes"}, {"serve"}} {
			var out, errb bytes.Buffer
			e := env
			if args[0] == "rekey" {
				e = envOf(map[string]string{"BOT_DATA_DIR": dir, "BOT_ENCRYPTION_KEY": goldenKey, "BOT_NEW_ENCRYPTION_KEY": store.NewKey()})
			}
			code := run(context.Background(), args, e, nil, &out, &errb)
			if code != 1 || !strings.Contains(errb.String(), "written by a newer version") || !strings.Contains(errb.String(), "restore a backup") {
				t.Errorf("%v on a newer journal: exit %d, %q; want exit 1 saying it was written by a newer version", args, code, errb.String())
			}
			if after := fileSum(t, filepath.Join(dir, store.FileName)); after != before {
				t.Fatalf("%v changed a journal it refused", args)
			}
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("the refusals left files in the data folder: %v", entries)
		}
	})
}

// carries reports whether JSON line got has every field of JSON line want, with its value.
func carries(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w map[string]any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("export line is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	for k, v := range w {
		if !reflect.DeepEqual(g[k], v) {
			return false
		}
	}
	return true
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// schemaOf is the schema number of the journal in dir, read as journal list would.
func schemaOf(t *testing.T, dir string) int {
	t.Helper()
	st, err := store.Open(dir, store.Options{ReadOnly: true, Key: mustKey(t, goldenKey)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v, err := st.Schema()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustKey(t *testing.T, hex string) []byte {
	t.Helper()
	k, err := store.ParseKey(hex)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
