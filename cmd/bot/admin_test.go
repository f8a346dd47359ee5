package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mongobot/connector/mongotest"
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
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"check"}, envOf(map[string]string{"BOT_CONFIG": cfg, "MONGO_URI": full.URI()}), nil, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "prod: 7.0.14, replica set primary") || !strings.Contains(out.String(), "grant-role") {
		t.Fatalf("check on a full account: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	code = run(context.Background(), []string{"check"}, envOf(map[string]string{"BOT_CONFIG": cfg, "MONGO_URI": limited.URI()}), nil, &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "cannot: missing") || !strings.Contains(errb.String(), "problem(s) found") {
		t.Fatalf("check on a limited account: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	code = run(context.Background(), []string{"check"}, envOf(map[string]string{"BOT_CONFIG": cfg, "MONGO_URI": "mongodb://u:p@127.0.0.1:1/?serverSelectionTimeoutMS=500"}), nil, &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "prod: cannot check") {
		t.Fatalf("check on a dead server: exit %d\n%s", code, out.String())
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
	if code := run(context.Background(), []string{"journal", "export"}, env, nil, &out, &errb); code != 0 || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("export: %d %q", code, out.String())
	}
	if code := run(context.Background(), []string{"journal", "show", "x"}, env, nil, &out, &errb); code != 2 {
		t.Fatalf("show x: %d", code)
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
	if code := run(context.Background(), []string{"rekey"}, envOf(map[string]string{"BOT_DATA_DIR": dir}), nil, &out, &errb); code != 0 {
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
