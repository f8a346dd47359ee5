package bot_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mongobot/bot"
	"mongobot/bot/slack/slacktest"
	"mongobot/connector"
	"mongobot/delivery/command"
	"mongobot/delivery/kubesecret"
	"mongobot/delivery/kubesecret/kubetest"
	"mongobot/delivery/vaultkv"
	"mongobot/delivery/vaultkv/vaulttest"
	"mongobot/secret"
	"mongobot/store"
)

// startVault starts a real Vault server (vault server -dev, built from the module proxy by
// tools/vault.sh) for one test. Not finding it is a failure, never a skip.
func startVault(t *testing.T) *vaulttest.Server {
	t.Helper()
	v, err := vaulttest.Start(t.TempDir())
	if err != nil {
		t.Fatalf("Vault: %v", err)
	}
	t.Cleanup(v.Stop)
	t.Logf("delivery target: %s", v)
	return v
}

func vaultTarget(t *testing.T, v *vaulttest.Server, path string) bot.Target {
	t.Helper()
	tg, err := vaultkv.New(vaultkv.Config{Address: v.Addr, Path: path, Token: secret.New(v.RootToken), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// slowCommand is a real program as a second target that takes its time (as a command that
// restarts something would), in front of Vault: the window between MongoDB having the new
// password and the application reading it is then long enough to measure.
func slowCommand(t *testing.T, app *appSide) bot.Target {
	t.Helper()
	script := filepath.Join(app.dir, "slow.sh")
	body := `#!/bin/sh
umask 077
tr -d '\0' < /proc/$$/cmdline > "$APP_DIR/argv.$$" 2>/dev/null
tr '\0' '\n' < /proc/$$/environ > "$APP_DIR/environ.$$" 2>/dev/null
cat > "$APP_DIR/cred.json.tmp" && mv "$APP_DIR/cred.json.tmp" "$APP_DIR/cred.json"
sleep 0.15
`
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	c, err := command.New(command.Config{Argv: []string{script}, Env: map[string]string{"APP_DIR": app.dir}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// application is the simulated application: it re-reads its secret from Vault and logs in
// with it, over and over, counting the logins that fail.
type application struct {
	ok, failed atomic.Int64
	// cycles counts the reads of the secret whose login has finished.
	cycles atomic.Int64
	stop   chan struct{}
	done   sync.WaitGroup
	mu     sync.Mutex
	seen   []string // every password it read, for the secrets scan
}

func runApplication(t *testing.T, e *env, v *vaulttest.Server, path string, every time.Duration) *application {
	a := &application{stop: make(chan struct{})}
	a.done.Go(func() {
		for {
			select {
			case <-a.stop:
				return
			case <-time.After(every):
			}
			data, _, err := v.Read(path)
			if err != nil {
				continue // Vault sealed or down: the application keeps what it had (not counted)
			}
			a.mu.Lock()
			a.seen = append(a.seen, data["password"])
			a.mu.Unlock()
			if e.admin.Login(t.Context(), connector.UserRef{User: data["username"], DB: "admin"}, secret.New(data["password"])) != nil {
				a.failed.Add(1)
			} else {
				a.ok.Add(1)
			}
			a.cycles.Add(1)
		}
	})
	return a
}

func (a *application) halt(e *env) {
	close(a.stop)
	a.done.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	e.secrets = append(e.secrets, a.seen...)
}

// scanExec checks what the command target's processes were given: never a password in their
// argv or environment, and none of the bot's own environment.
func scanExec(t *testing.T, app *appSide, passwords []string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(app.dir, "argv.*"))
	envs, _ := filepath.Glob(filepath.Join(app.dir, "environ.*"))
	if len(files) == 0 || len(envs) == 0 {
		t.Fatal("the command target recorded no argv or environment")
	}
	for _, f := range append(files, envs...) {
		raw, _ := os.ReadFile(f)
		for _, p := range passwords {
			if p != "" && strings.Contains(string(raw), p) {
				t.Fatalf("a password reached the command's argv or environment (%s)", filepath.Base(f))
			}
		}
		if strings.Contains(string(raw), "MONGOBOT_BOT_ONLY") {
			t.Fatalf("the bot's own environment reached the command (%s)", filepath.Base(f))
		}
	}
}

// rotations runs n scheduled rotations (every 5 minutes on the bot's clock), each with no
// click. Between two, the application re-reads its secret and logs in twice: in five real
// minutes it would have done so thousands of times, and a read made before a delivery must
// have finished its login before the next rotation, as it would have. (A fixed 60 ms pause
// here once let a read stalled by the race detector log in after the next rotation.)
func rotations(t *testing.T, e *env, n int, a *application) {
	t.Helper()
	for i := range n {
		e.advance(5 * time.Minute)
		want := "*Done*, journal #"
		e.message(fmt.Sprintf("scheduled rotation %d", i+1), func(m slacktest.Message) bool {
			return m.Channel == "C0SCHED" && strings.Contains(m.All(), want) && strings.Count(allResults(e), want) >= i+1
		})
		c := a.cycles.Load()
		waitUntil(t, "the application to read its secret again", func() bool { return a.cycles.Load() >= c+2 })
	}
	if n := e.bot.DeliveryPending(); n != 0 {
		t.Fatalf("%d deliveries pending after the rotations", n)
	}
}

// allResults is every scheduled result posted so far, concatenated.
func allResults(e *env) string {
	var b strings.Builder
	for _, m := range e.slack.Messages() {
		if m.Channel == "C0SCHED" && strings.Contains(m.All(), "*Delivered to*") {
			b.WriteString(m.All())
		}
	}
	return b.String()
}

func TestScheduledDeliveryAlternatingUsersZeroFailedLogins(t *testing.T) {
	t.Setenv("MONGOBOT_BOT_ONLY", "the bot's environment")
	v := startVault(t)
	app := newAppSide(t)
	pair := []connector.UserRef{{User: "orders_a", DB: "admin"}, {User: "orders_b", DB: "admin"}}
	e := newEnv(t, envOptions{schedules: bot.ScheduleConfig{Channel: "C0SCHED"}, deliveries: func(e *env) []bot.Delivery {
		return []bot.Delivery{{Connector: "prod", Users: pair, Alternating: true,
			Targets: []bot.Target{slowCommand(t, app), vaultTarget(t, v, "apps/orders")}}}
	}})
	pwA := e.createUser("orders_a", connector.Role{Name: "readWrite", DB: "orders"})
	// What the application team set up before the bot: orders_a in Vault, plus a field of
	// their own that every delivery must keep.
	if _, err := v.Write("apps/orders", map[string]string{"username": "orders_a", "password": pwA, "api_key": "theirs"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(-e.clock.Now().Sub(e.clock.Now().Truncate(5 * time.Minute))) // on a 5-minute slot
	e.command(dev, `schedule rotate-password prod orders_a "*/5 * * * *"`)
	card := e.card("schedule rotate-password", "`orders_b@admin` does not exist yet")
	e.click(alice, card, bot.TextApprove)
	e.message("the schedule confirmed", slacktest.Containing("Schedule #1 is active", "Each run changes whichever of `orders_a@admin` and `orders_b@admin` applications do not use"))

	a := runApplication(t, e, v, "apps/orders", 5*time.Millisecond)
	rotations(t, e, 20, a)
	a.halt(e)
	t.Logf("alternating users: %d logins by the application over 20 scheduled rotations, %d failed", a.ok.Load()+a.failed.Load(), a.failed.Load())
	if a.ok.Load() < 100 {
		t.Fatalf("the application logged in only %d times: the loop did not run", a.ok.Load())
	}
	if a.failed.Load() != 0 {
		t.Fatalf("with alternating users the application saw %d failed logins; want 0", a.failed.Load())
	}
	data, version, err := v.Read("apps/orders")
	if err != nil || data["api_key"] != "theirs" || version != 21 {
		t.Fatalf("Vault after 20 deliveries: version %d, api_key %q (%v); want version 21 with the team's field kept", version, data["api_key"], err)
	}
	// Every run was journaled with its deliveries verified, and nobody clicked anything.
	for _, en := range e.entriesOf("rotate-password") {
		if en.State != store.EntryDone || len(en.Deliveries) != 2 || en.Deliveries[1].State != store.DeliveryVerified || !strings.HasPrefix(en.Deliveries[1].Verified, "read back version") {
			t.Fatalf("journal #%d: %s, deliveries %+v", en.ID, en.State, en.Deliveries)
		}
	}
	scanExec(t, app, a.seen)
}

func TestScheduledDeliverySingleUserCountsTheWindow(t *testing.T) {
	t.Setenv("MONGOBOT_BOT_ONLY", "the bot's environment")
	v := startVault(t)
	app := newAppSide(t)
	e := newEnv(t, envOptions{schedules: bot.ScheduleConfig{Channel: "C0SCHED"}, deliveries: func(e *env) []bot.Delivery {
		return []bot.Delivery{{Connector: "prod", Users: []connector.UserRef{{User: "reports", DB: "admin"}},
			Targets: []bot.Target{slowCommand(t, app), vaultTarget(t, v, "apps/reports")}}}
	}})
	pw := e.createUser("reports", connector.Role{Name: "read", DB: "reports"})
	if _, err := v.Write("apps/reports", map[string]string{"username": "reports", "password": pw}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(-e.clock.Now().Sub(e.clock.Now().Truncate(5 * time.Minute)))
	e.schedule("reports", "*/5 * * * *")
	a := runApplication(t, e, v, "apps/reports", 5*time.Millisecond)
	rotations(t, e, 20, a)
	a.halt(e)
	t.Logf("one user: %d logins by the application over 20 scheduled rotations, %d failed (the window between MongoDB and the secret store)", a.ok.Load()+a.failed.Load(), a.failed.Load())
	if a.failed.Load() == 0 {
		t.Fatal("with one user and a 150ms delivery in front of Vault, the application never saw a failed login: the window was not measured")
	}
	e.message("a result stating the window", slacktest.Containing("One user: between the change on MongoDB and an application reading the new password",
		"Delivery to every target took", "after MongoDB had it"))
	scanExec(t, app, a.seen)
}

func TestDeliveryWhileVaultIsSealed(t *testing.T) {
	v := startVault(t)
	e := newEnv(t, envOptions{schedules: bot.ScheduleConfig{Channel: "C0SCHED"}, deliveries: func(e *env) []bot.Delivery {
		return []bot.Delivery{{Connector: "prod", Users: []connector.UserRef{{User: "reports", DB: "admin"}}, Targets: []bot.Target{vaultTarget(t, v, "apps/reports")}}}
	}})
	e.createUser("reports")
	e.clock.Add(-e.clock.Now().Sub(e.clock.Now().Truncate(time.Hour)))
	e.schedule("reports", "0 * * * *")
	if err := v.Seal(); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Hour)
	e.message("the alarm with the state of everything", func(m slacktest.Message) bool {
		s := m.All()
		return m.Channel == "C0SCHED" && strings.Contains(s, "DELIVERY PENDING, journal #2 (attempt 1)") &&
			strings.Contains(s, "MongoDB has the new password of `reports@admin` on prod") && strings.Contains(s, "does NOT have it") && strings.Contains(s, "sealed")
	})
	if n, _ := e.st.SecretCount(); n != 1 || e.bot.DeliveryPending() != 1 {
		t.Fatalf("while Vault is sealed: %d sealed secrets, %d pending; want 1 and 1", n, e.bot.DeliveryPending())
	}
	e.advance(20 * time.Second) // the first retry: still sealed
	e.message("the second alarm", slacktest.Containing("DELIVERY PENDING, journal #2 (attempt 2)"))
	if err := v.Unseal(); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Minute)
	e.message("delivered later", slacktest.Containing("Journal #2: the password of `reports@admin` on prod is now delivered to every target (after 2 failed attempt(s))"))
	data, _, err := v.Read("apps/reports")
	if err != nil {
		t.Fatal(err)
	}
	e.secrets = append(e.secrets, data["password"])
	if err := e.login("reports", data["password"]); err != nil {
		t.Fatalf("the password delivered after the unseal does not log in: %v", err)
	}
	if n, _ := e.st.SecretCount(); n != 0 || e.bot.DeliveryPending() != 0 {
		t.Fatalf("after the delivery: %d sealed secrets, %d pending; want 0 and 0", n, e.bot.DeliveryPending())
	}
}

// entriesOf is every journal entry of action, oldest first.
func (e *env) entriesOf(action string) []store.Entry {
	var out []store.Entry
	for id := uint64(1); ; id++ {
		en, err := e.st.Entry(id)
		if err != nil {
			return out
		}
		if en.Action == action {
			out = append(out, en)
		}
	}
}

func TestRotationDeliveredToAKubernetesSecret(t *testing.T) {
	k, err := kubetest.Start(t.TempDir())
	if err != nil {
		t.Fatalf("kube-apiserver: %v", err)
	}
	t.Cleanup(k.Stop)
	t.Logf("delivery target: %s", k)
	if err := k.Namespace("orders"); err != nil {
		t.Fatal(err)
	}
	// The application team's Secret, with a key of their own that the delivery must keep.
	if err := k.PutSecret("orders", "orders-mongo", map[string]string{"username": "app", "password": "unknown", "region": "eu"}); err != nil {
		t.Fatal(err)
	}
	tg, err := kubesecret.New(kubesecret.Config{Namespace: "orders", Name: "orders-mongo", Kubeconfig: k.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{deliveries: func(e *env) []bot.Delivery {
		return []bot.Delivery{{Connector: "prod", Users: []connector.UserRef{{User: "app", DB: "admin"}}, Targets: []bot.Target{tg}}}
	}})
	e.createUser("app")
	e.command(dev, "rotate-password prod app")
	card := e.card("Request #1", "delivered to Kubernetes Secret orders/orders-mongo")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*, journal #1", ":white_check_mark: Kubernetes Secret orders/orders-mongo: resourceVersion", "user and password match")
	data, _, err := k.Secret("orders", "orders-mongo")
	if err != nil {
		t.Fatal(err)
	}
	e.secrets = append(e.secrets, data["password"])
	if data["username"] != "app" || data["region"] != "eu" || e.login("app", data["password"]) != nil {
		t.Fatalf("the Secret after delivery: user %q, region %q; its password must log in", data["username"], data["region"])
	}
}
