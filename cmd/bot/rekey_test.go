package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mongobot/connector/mongotest"
	"mongobot/ha"
	"mongobot/ha/etcdtest"
	"mongobot/store"
)

// mongobot rekey rotates the key of a journal on a real embedded etcd cluster while serve
// replicas run on it: with the old-only and the two-key configs mixed during the rolling
// restart, the rotation itself, check's report at each step, and the old key retired; a
// replica started with only the old key afterwards is refused in words naming both keys'
// fingerprints, and no key appears in anything the commands print.
func TestRekeyOnEtcd(t *testing.T) {
	cl := etcdtest.Start(t, 3)
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	oldKey, newKey := store.NewKey(), store.NewKey()
	ok, _ := store.ParseKey(oldKey)
	nk, _ := store.ParseKey(newKey)
	oldID, newID := store.Fingerprint(ok), store.Fingerprint(nk)

	// r0 serves with the old key only; another replica's store seals passwords meanwhile.
	r0 := newReplica(t, "r0", 0, cl, emu.URI(), oldKey)
	r0.serve(t)
	c, err := ha.Dial(ha.ClientConfig{Endpoints: cl.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sealer := func(key []byte, more ...[]byte) (*store.Store, error) {
		return store.OpenShared(ha.NewKV(c, "/replicas-test/journal/", ha.KVOptions{MaxOps: 32}), t.TempDir(), "etcd", store.Options{Key: key, OldKeys: more})
	}
	side, err := sealer(ok)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for i := range 50 {
		pw := fmt.Sprintf("pw-%d", i)
		id, err := side.PutSecret("U"+pw, []byte(pw), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		secrets[id] = pw
	}

	cmd := func(env map[string]string, args ...string) (int, string) {
		t.Helper()
		var out bytes.Buffer
		code := run(context.Background(), args, envOf(env), strings.NewReader(""), &out, &out)
		for _, k := range []string{oldKey, newKey} {
			if strings.Contains(out.String(), k) {
				t.Fatalf("%v prints a key:\n%s", args, out.String())
			}
		}
		return code, out.String()
	}
	has := func(what, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("%s lacks %q:\n%s", what, w, out)
			}
		}
	}
	_, out := cmd(r0.env, "check")
	has("check before", out, "keys: the journal seals with key "+oldID+"; 50 sealed password(s)")
	code, out := cmd(r0.env, "rekey", "--yes")
	if code != 2 {
		t.Fatalf("rekey without BOT_NEW_ENCRYPTION_KEY: exit %d\n%s", code, out)
	}
	has("rekey without the new key", out, "BOT_NEW_ENCRYPTION_KEY", "nothing was changed")

	// The rolling restart, step 1: r1 holds both keys while r0 still has only the old one.
	r1 := newReplica(t, "r1", 1, cl, emu.URI(), oldKey)
	r1.env["BOT_NEW_ENCRYPTION_KEY"] = newKey
	r1.serve(t)
	both := maps.Clone(r1.env)
	_, out = cmd(both, "check")
	has("check with both keys", out, "ready to rotate to key "+newID)
	if code := r0.stop(); code != 0 {
		t.Fatalf("r0 exited %d", code)
	}
	// Without --yes and no terminal, nothing happens.
	code, out = cmd(both, "rekey")
	has("rekey without --yes", out, "from key "+oldID, "to key "+newID, "needs --yes")
	if code != 2 {
		t.Fatalf("rekey without --yes: exit %d", code)
	}
	code, out = cmd(both, "rekey", "--yes")
	if code != 0 {
		t.Fatalf("rekey: exit %d\n%s", code, out)
	}
	t.Logf("mongobot rekey --yes:\n%s", out)
	has("rekey", out, "seals with key "+newID, "all 50 sealed password(s) re-encrypted", "retire the old key "+oldID)
	if c, _ := r1.get("/readyz"); c != 200 {
		t.Fatalf("r1 after the rekey: /readyz %d", c)
	}
	_, out = cmd(both, "check")
	has("check after", out, "rotation to key "+newID+" (BOT_NEW_ENCRYPTION_KEY) is done")
	code, out = cmd(both, "rekey", "--yes")
	has("rekey again", out, "nothing to do")
	if code != 0 {
		t.Fatalf("rekey again: exit %d", code)
	}

	// The old key is retired: a replica with the new key alone serves, the passwords open
	// with the new key alone, and one still on the old key is refused.
	stale := newReplica(t, "r3", 3, cl, emu.URI(), oldKey)
	r2 := newReplica(t, "r2", 2, cl, emu.URI(), newKey)
	r2.serve(t)
	retired, err := sealer(nk)
	if err != nil {
		t.Fatal(err)
	}
	for id, pw := range secrets {
		if got, err := retired.TakeSecret(id, "U"+pw); err != nil || string(got) != pw {
			t.Fatalf("with the new key alone, secret %s: %q, %v", id, got, err)
		}
	}
	_, out = cmd(r2.env, "check")
	has("check after retiring", out, "keys: the journal seals with key "+newID+"; 0 sealed password(s)")
	if strings.Contains(out, "keys: the keys given here") || strings.Contains(out, "unfinished") {
		t.Fatalf("check with the new key alone flags the keys:\n%s", out)
	}
	_, out = cmd(stale.env, "check")
	has("check with the old key alone", out, "keys: the keys given here ("+oldID+") lack key "+newID)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var logs bytes.Buffer
	if code := run(ctx, []string{"serve"}, envOf(stale.env), nil, &logs, &logs); code == 0 {
		t.Fatal("a replica with only the old key served")
	}
	t.Logf("the stale replica: %s", lastLine(logs.String()))
	has("the stale replica's refusal", logs.String(), "sealed with key "+newID, "this replica has "+oldID, "BOT_ENCRYPTION_KEY")
	if strings.Contains(logs.String(), oldKey) || strings.Contains(logs.String(), newKey) {
		t.Fatal("the refusal prints a key")
	}
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// A rotation interrupted after its switch (the state a crash of mongobot rekey leaves after
// its first transaction, written here straight into etcd) is reported by check as unfinished,
// refused as the start of another rotation, and finished by running rekey again.
func TestRekeyResumesOnEtcd(t *testing.T) {
	cl := etcdtest.Start(t, 3)
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	cfg := filepath.Join(t.TempDir(), "bot.yaml")
	raw := fmt.Sprintf("connectors:\n  - name: prod\n    connection_string: ${MONGO_URI}\napprovals:\n  channel: C0APPROVALS\n  approvers: {users: [U0ALICE]}\nstore:\n  etcd:\n    endpoints: [%s]\n    prefix: /resume/\n", strings.Join(cl.Endpoints(), ", "))
	if err := os.WriteFile(cfg, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	oldKey, newKey, otherKey := store.NewKey(), store.NewKey(), store.NewKey()
	ok, _ := store.ParseKey(oldKey)
	nk, _ := store.ParseKey(newKey)
	oldID, newID := store.Fingerprint(ok), store.Fingerprint(nk)
	c, err := ha.Dial(ha.ClientConfig{Endpoints: cl.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	open := func(key []byte, more ...[]byte) *store.Store {
		st, err := store.OpenShared(ha.NewKV(c, "/resume/journal/", ha.KVOptions{}), t.TempDir(), "etcd", store.Options{Key: key, OldKeys: more})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open(ok)
	secrets := map[string]string{}
	for i := range 30 {
		pw := fmt.Sprintf("pw-%d", i)
		id, err := st.PutSecret("U"+pw, []byte(pw), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		secrets[id] = pw
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for k, v := range map[string]string{"sealing-key": newID, "rekey-from": oldID} {
		if _, err := c.Put(ctx, "/resume/journal/k/meta\x00"+k, v); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"BOT_CONFIG": cfg, "BOT_DATA_DIR": t.TempDir(), "MONGO_URI": emu.URI(),
		"BOT_ENCRYPTION_KEY": oldKey, "BOT_NEW_ENCRYPTION_KEY": newKey}
	runs := func(env map[string]string, args ...string) (int, string) {
		var out bytes.Buffer
		code := run(context.Background(), args, envOf(env), strings.NewReader(""), &out, &out)
		for _, k := range []string{oldKey, newKey, otherKey} {
			if strings.Contains(out.String(), k) {
				t.Fatalf("%v prints a key:\n%s", args, out.String())
			}
		}
		return code, out.String()
	}
	code, out := runs(env, "check")
	if code == 0 || !strings.Contains(out, "the rotation from key "+oldID+" to key "+newID+" is unfinished: 30 sealed password(s) still use the old key") {
		t.Fatalf("check on an unfinished rotation: exit %d\n%s", code, out)
	}
	other := maps.Clone(env)
	other["BOT_NEW_ENCRYPTION_KEY"] = otherKey
	if code, out := runs(other, "rekey", "--yes"); code == 0 || !strings.Contains(out, "not to ") || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("another rotation over an unfinished one: exit %d\n%s", code, out)
	}
	code, out = runs(env, "rekey", "--yes")
	if code != 0 || !strings.Contains(out, "finish the rotation") || !strings.Contains(out, "30 of its 30 sealed password(s) are still sealed with the old key") {
		t.Fatalf("rekey resuming: exit %d\n%s", code, out)
	}
	after := open(nk)
	for id, pw := range secrets {
		if got, err := after.TakeSecret(id, "U"+pw); err != nil || string(got) != pw {
			t.Fatalf("with the new key alone, secret %s: %q, %v", id, got, err)
		}
	}
	if _, out := runs(env, "check"); strings.Contains(out, "unfinished") {
		t.Fatalf("check after the rotation finished:\n%s", out)
	}
}
