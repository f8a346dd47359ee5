package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"mongobot/bot/slack/slacktest"
	"mongobot/ha/etcdtest"
	"mongobot/internal/syncbuf"
	"mongobot/store"
)

// A start that fails its checks (Slack unreachable, the token refused, a bad key) leaves
// nothing behind: no data folder, so no key file and no journal. A start that passes them
// makes all three.
func TestServeCreatesNothingUntilChecksPass(t *testing.T) {
	sl := slacktest.New()
	defer sl.Close()
	cfg := writeConfig(t)
	base := func(data string) map[string]string {
		return map[string]string{"SLACK_APP_TOKEN": sl.AppToken, "SLACK_BOT_TOKEN": sl.BotToken, "SLACK_API_URL": sl.URL(),
			"BOT_CONFIG": cfg, "BOT_DATA_DIR": data, "MONGO_URI": "mongodb://bot:pw-in-uri@" + closedPort(t) + "/"}
	}
	for _, tt := range []struct {
		name, key, value string
		code             int
		says             string
	}{
		{"Slack unreachable", "SLACK_API_URL", "http://" + closedPort(t) + "/api/", 1, "cannot be reached: the connection was refused"},
		{"token refused", "SLACK_BOT_TOKEN", "xoxb-revoked", 1, "SLACK_BOT_TOKEN is not accepted by Slack"},
		{"bad key", "BOT_ENCRYPTION_KEY", "short", 2, "BOT_ENCRYPTION_KEY"},
	} {
		data := filepath.Join(t.TempDir(), "data")
		env := base(data)
		env[tt.key] = tt.value
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"serve"}, envOf(env), nil, &out, &errb)
		if code != tt.code || !strings.Contains(errb.String(), tt.says) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d saying %q", tt.name, code, errb.String(), tt.code, tt.says)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			// Names only: the key file's content is a secret.
			var names []string
			entries, _ := os.ReadDir(data)
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("%s: the failed start made the data folder (%v), holding %v", tt.name, err, names)
		}
	}

	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncbuf.Buffer
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"serve"}, envOf(base(data)), nil, &logs, &logs) }()
	waitFor(t, sl, "the bot to start", func() bool { return strings.Contains(logs.String(), "msg=starting") })
	for _, name := range []string{store.KeyFileName, store.FileName} {
		if _, err := os.Stat(filepath.Join(data, name)); err != nil {
			t.Errorf("a valid start did not make %s: %v", name, err)
		}
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("serve exited %d:\n%s", c, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// With store.etcd, a start that cannot reach Slack writes nothing to etcd: no replica
// session, no journal key.
func TestServeOnEtcdWritesNothingUntilSlackAnswers(t *testing.T) {
	cl := etcdtest.Start(t, 1)
	cfg := filepath.Join(t.TempDir(), "bot.yaml")
	raw := fmt.Sprintf("connectors:\n  - name: prod\n    connection_string: ${MONGO_URI}\napprovals:\n  channel: C0APPROVALS\n  approvers: {users: [U0ALICE]}\nstore:\n  etcd:\n    endpoints: [%s]\n    replica: r1\n", strings.Join(cl.Endpoints(), ", "))
	if err := os.WriteFile(cfg, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"SLACK_APP_TOKEN": "xapp-1-test", "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": "http://" + closedPort(t) + "/api/",
		"BOT_CONFIG": cfg, "BOT_DATA_DIR": data, "MONGO_URI": "mongodb://" + closedPort(t) + "/",
		"BOT_ENCRYPTION_KEY": strings.Repeat("ab", 32)}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"serve"}, envOf(env), nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "cannot be reached") {
		t.Fatalf("exit %d, stderr %q; want exit 1, Slack cannot be reached", code, errb.String())
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: cl.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 0 {
		t.Errorf("the failed start wrote %d key(s) to etcd, the first %q", len(r.Kvs), r.Kvs[0].Key)
	}
	leases, err := c.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(leases.Leases) != 0 {
		t.Errorf("the failed start left %d lease(s) in etcd", len(leases.Leases))
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the failed start made the data folder: %v", err)
	}
}
