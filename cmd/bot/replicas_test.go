package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mongobot/bot/slack/slacktest"
	"mongobot/connector/mongotest"
	"mongobot/ha/etcdtest"
	"mongobot/internal/syncbuf"
	"mongobot/store"
)

// Two replicas of serve share one journal on a real embedded 3-member etcd cluster: both
// take commands (their request ids come from one sequence), exactly one leads, and when it
// stops the other leads within the session TTL. Each replica has a Slack stand-in of its own
// here: the stand-in holds one socket at a time.
func TestReplicasShareOneJournal(t *testing.T) {
	cl := etcdtest.Start(t, 3)
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	for _, u := range []string{"app1", "app2", "app3"} {
		if err := emu.CreateUser(u, "pw-"+u, "admin", nil); err != nil {
			t.Fatal(err)
		}
	}
	key := store.NewKey()
	replicas := 0
	start := func(name string) *replica {
		r := &replica{name: name, sl: slacktest.New(), code: make(chan int, 1), logs: &syncbuf.Buffer{}}
		t.Cleanup(r.sl.Close)
		r.sl.StartIDsAt(replicas * 100000) // one Slack never repeats an id
		replicas++
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.addr = ln.Addr().String()
		ln.Close()
		cfg := filepath.Join(t.TempDir(), "bot.yaml")
		raw := fmt.Sprintf(`connectors:
  - name: prod
    connection_string: ${MONGO_URI}
approvals:
  channel: C0APPROVALS
  approvers: {users: [U0ALICE, U0BOB]}
  expire_after: 1h
http: {listen: %q}
store:
  etcd:
    endpoints: [%s]
    prefix: /replicas-test/
    replica: %s
    session_ttl: 3s
`, r.addr, strings.Join(cl.Endpoints(), ", "), name)
		if err := os.WriteFile(cfg, []byte(raw), 0o600); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"SLACK_APP_TOKEN": r.sl.AppToken, "SLACK_BOT_TOKEN": r.sl.BotToken, "SLACK_API_URL": r.sl.URL(),
			"BOT_CONFIG": cfg, "BOT_DATA_DIR": t.TempDir(), "MONGO_URI": emu.URI(), "BOT_ENCRYPTION_KEY": key}
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		go func() { r.code <- run(ctx, []string{"serve"}, envOf(env), nil, r.logs, r.logs) }()
		t.Cleanup(func() {
			if c := r.stop(); c != 0 {
				t.Errorf("%s exited %d", name, c)
			}
			if t.Failed() {
				t.Logf("%s's log:\n%s", name, r.logs.String())
			}
		})
		waitFor(t, r.sl, name+" ready", func() bool { c, _ := r.get("/readyz"); return c == 200 })
		return r
	}
	r0 := start("r0")
	waitFor(t, r0.sl, "r0 to lead", func() bool { return r0.leads() })
	r1 := start("r1")
	time.Sleep(500 * time.Millisecond)
	if r1.leads() {
		t.Fatal("two replicas lead")
	}

	// Each takes a command; the requests are numbered from the one journal.
	for i, r := range []*replica{r1, r0} {
		if _, err := r.sl.SlashCommand("U0ALICE", "C0OPS", "/mongo", fmt.Sprintf("lock-user prod app%d", i+1)); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("Request #%d", i+1)
		if _, err := r.sl.WaitMessage(20*time.Second, r.name+"'s card", slacktest.Containing(want)); err != nil {
			var seen []string
			for _, m := range r.sl.Messages() {
				seen = append(seen, m.Text)
			}
			t.Fatalf("%s: %v; messages: %q", r.name, err, seen)
		}
	}

	// What one replica journaled, the other knows: a twin of #1 asked on r0 is refused.
	if _, err := r0.sl.SlashCommand("U0BOB", "C0OPS", "/mongo", "lock-user prod app1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r0.sl.WaitMessage(20*time.Second, "the twin refused on r0", slacktest.Containing("Request #1", "already waiting for approval")); err != nil {
		t.Fatal(err)
	}

	// The leader stops: the other leads once its session is gone, and serves on.
	if c := r0.stop(); c != 0 {
		t.Fatalf("r0 exited %d", c)
	}
	began := time.Now()
	waitFor(t, r1.sl, "r1 to lead", func() bool { return r1.leads() })
	t.Logf("r1 leads %s after r0 stopped (session TTL 3s)", time.Since(began).Round(100*time.Millisecond))
	if _, err := r1.sl.SlashCommand("U0ALICE", "C0OPS", "/mongo", "lock-user prod app3"); err != nil {
		t.Fatal(err)
	}
	if _, err := r1.sl.WaitMessage(20*time.Second, "r1's second card", slacktest.Containing("Request #3")); err != nil {
		t.Fatal(err)
	}
}

// replica is one serve process of the test, in-process.
type replica struct {
	name   string
	sl     *slacktest.Server
	addr   string
	cancel context.CancelFunc
	code   chan int
	logs   *syncbuf.Buffer
	once   sync.Once
	exit   int
}

// stop ends the replica as SIGTERM would, and returns its exit code (-1: it did not stop).
func (r *replica) stop() int {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.exit = <-r.code:
		case <-time.After(30 * time.Second):
			r.exit = -1
		}
	})
	return r.exit
}

func (r *replica) get(path string) (int, string) { return httpGet(r.addr, path) }

// leads says whether the replica's metrics say it leads.
func (r *replica) leads() bool {
	_, body := r.get("/metrics")
	return strings.Contains(body, "\nmongobot_leader 1\n")
}

// httpGet fetches path from the listener at addr.
func httpGet(addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// With store.etcd in the config, bot check reports the cluster and the bot's leader, and
// the commands that work on the data folder's bbolt file refuse in words.
func TestCheckAndJournalCommandsOnEtcd(t *testing.T) {
	cl := etcdtest.Start(t, 3)
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	cfg := filepath.Join(t.TempDir(), "bot.yaml")
	raw := fmt.Sprintf("connectors:\n  - name: prod\n    connection_string: ${MONGO_URI}\napprovals:\n  channel: C0APPROVALS\n  approvers: {users: [U0ALICE]}\nstore:\n  etcd:\n    endpoints: [%s]\n", strings.Join(cl.Endpoints(), ", "))
	if err := os.WriteFile(cfg, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BOT_CONFIG": cfg, "BOT_DATA_DIR": t.TempDir(), "MONGO_URI": emu.URI()}
	var out bytes.Buffer
	run(context.Background(), []string{"check"}, envOf(env), nil, &out, &out)
	for _, want := range []string{"store: etcd http://", "3 member(s)", "(leads the cluster)", "bot leader: none"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bot check lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run(context.Background(), []string{"journal", "list"}, envOf(env), nil, &out, &out); code == 0 || !strings.Contains(out.String(), "keeps the journal on etcd") {
		t.Fatalf("journal list with store.etcd: exit %d\n%s", code, out.String())
	}
}
