package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"mongobot/approvals"
	"mongobot/config"
	"mongobot/ha"
	"mongobot/ha/etcdtest"
	"mongobot/store"
)

// etcdctl returns a real etcdctl, built from the module proxy by tools/etcdctl.sh (cached);
// a missing one fails the test: a skip would read as a pass in CI.
func etcdctl(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("ETCDCTL_BIN"); b != "" {
		return b
	}
	out, err := exec.Command("bash", "../../tools/etcdctl.sh").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("building etcdctl (this is a failure, not a skip): %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("building etcdctl (this is a failure, not a skip): %v", err)
	}
	return strings.TrimSpace(string(out))
}

// setup runs the shipped setup.sh with env (on top of a bare PATH and HOME) and returns
// its output and error.
func setup(t *testing.T, env map[string]string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", "setup.sh")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func random() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// The operator's path, end to end: a cluster with mutual TLS and auth on (root enabled it),
// setup.sh run as root makes the bot's role and user and writes the generated password to a
// file; run again it changes nothing; then the bot, configured as the docs say, serves with
// that user: it joins, leads, writes and reads the journal, claims, seals a secret with an
// expiring lease. A client logged in as that user is refused everything outside the prefix,
// including a prefix that merely starts with the same letters, and any administration.
func TestSetupGrantsThePrefixOnly(t *testing.T) {
	t0 := time.Now()
	ctl := etcdctl(t)
	t.Logf("etcdctl: %s (%v)", ctl, time.Since(t0).Round(time.Millisecond))

	cl := etcdtest.StartWith(t, 1, etcdtest.Options{TLS: true})
	rootPassword := random()
	if err := cl.EnableAuth(rootPassword); err != nil {
		t.Fatal(err)
	}
	// The operator's own certificate names no etcd user: root is who the password says.
	opCert, opKey, err := cl.ClientCert("operator")
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "mongobot-etcd-password")
	env := map[string]string{
		"ETCDCTL": ctl, "ETCDCTL_ENDPOINTS": strings.Join(cl.Endpoints(), ","),
		"ETCDCTL_CACERT": cl.CAFile(), "ETCDCTL_CERT": opCert, "ETCDCTL_KEY": opKey,
		"ETCDCTL_USER": "root", "ETCDCTL_PASSWORD": rootPassword, "PASSWORD_FILE": pwFile,
	}

	// Mistakes first: a prefix without its closing / would also cover /mongobot-other/.
	env["PREFIX"] = "/mongobot"
	if out, err := setup(t, env); err == nil || !strings.Contains(out, "must begin and end with /") {
		t.Fatalf("PREFIX=/mongobot: %v\n%s", err, out)
	}
	delete(env, "PREFIX")
	// Without root's password, nothing is made, and the script says it failed.
	noRoot := map[string]string{}
	for k, v := range env {
		noRoot[k] = v
	}
	noRoot["ETCDCTL_PASSWORD"] = "wrong-" + random()
	if out, err := setup(t, noRoot); err == nil {
		t.Fatalf("setup.sh with a wrong root password succeeded:\n%s", out)
	}

	t1 := time.Now()
	out, err := setup(t, env)
	if err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(raw))
	if fi, _ := os.Stat(pwFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("the password file is mode %v, want 0600", fi.Mode().Perm())
	}
	if len(password) < 32 || strings.Contains(out, password) {
		t.Fatalf("generated password: %d characters; printed: %v", len(password), strings.Contains(out, password))
	}
	if !strings.Contains(out, "may read and write under /mongobot/ only") {
		t.Errorf("setup.sh did not confirm auth is on:\n%s", out)
	}
	t.Logf("setup.sh (%v):\n%s", time.Since(t1).Round(time.Millisecond), out)
	// Again: nothing changes, the password included.
	os.Remove(pwFile)
	if out, err := setup(t, env); err != nil || strings.Contains(out, "WARNING") {
		t.Fatalf("setup.sh, second run: %v\n%s", err, out)
	}
	if _, err := os.Stat(pwFile); err == nil {
		t.Error("the second run made a new password for the existing user")
	}
	// A permission granted by hand beyond the prefix is not hidden behind "only": the run
	// stops and names it; once it is revoked, the run passes again.
	grant := func(args ...string) {
		t.Helper()
		cmd := exec.Command(ctl, args...)
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("etcdctl %v: %v\n%s", args, err, out)
		}
	}
	grant("role", "grant-permission", "mongobot", "read", "/other/", "--prefix")
	if out, err := setup(t, env); err == nil || !strings.Contains(out, "has other permissions than readwrite on /mongobot/") {
		t.Errorf("setup.sh with an extra permission on the role: %v\n%s", err, out)
	}
	grant("role", "revoke-permission", "mongobot", "/other/", "--prefix")
	if out, err := setup(t, env); err != nil || !strings.Contains(out, "under /mongobot/ only") {
		t.Errorf("setup.sh once the extra permission is revoked: %v\n%s", err, out)
	}

	// The bot with password auth: its certificate names no etcd user, so the password is
	// what makes it mongobot.
	botCert, botKey, err := cl.ClientCert("mongobot-replica-0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := botConfig(t, cl, botCert, botKey, "username: mongobot\n    password: ${ETCD_PASSWORD}", password)
	serve(t, cfg, "r0")
	outsider(t, cfg)

	// With mutual TLS, a client certificate whose common name is the user is enough: etcd
	// takes the name from it, and the config needs no password at all.
	cnCert, cnKey, err := cl.ClientCert("mongobot")
	if err != nil {
		t.Fatal(err)
	}
	cnCfg := botConfig(t, cl, cnCert, cnKey, "", "")
	serve(t, cnCfg, "r1")
	outsider(t, cnCfg)

	// A certificate signed by the cluster's CA but naming no user, without a password, may
	// do nothing at all; and a client without a certificate is not let in by TLS.
	strangerCert, strangerKey, err := cl.ClientCert("stranger")
	if err != nil {
		t.Fatal(err)
	}
	stranger := dial(t, botConfig(t, cl, strangerCert, strangerKey, "", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = stranger.Get(ctx, "/mongobot/", clientv3.WithPrefix())
	cancel()
	if !errors.Is(err, rpctypes.ErrUserEmpty) && !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("a certificate naming no user read under the prefix: %v", err)
	}
	t.Logf("a certificate naming no user: %v", err)
	bare := botConfig(t, cl, "", "", "username: mongobot\n    password: ${ETCD_PASSWORD}", password)
	// The client logs in as it connects, so the refusal comes from Dial here.
	c, err := ha.Dial(clientConfig(bare))
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = c.Get(ctx, "/mongobot/")
		cancel()
		c.Close()
	}
	if err == nil {
		t.Error("a client without a certificate read from a cluster with --client-cert-auth")
	}
	t.Logf("without a client certificate: %v", err)

	// ETCD_PASSWORD given for an existing user changes its password: the old one is refused.
	env["ETCD_PASSWORD"] = random()
	if out, err := setup(t, env); err != nil || strings.Contains(out, env["ETCD_PASSWORD"]) {
		t.Fatalf("setup.sh with a new ETCD_PASSWORD: %v (password printed: %v)", err, strings.Contains(out, env["ETCD_PASSWORD"]))
	}
	if c, err := ha.Dial(clientConfig(cfg)); err == nil {
		c.Close()
		t.Error("the old password still logs in after ETCD_PASSWORD changed it")
	}
	serve(t, botConfig(t, cl, botCert, botKey, "username: mongobot\n    password: ${ETCD_PASSWORD}", env["ETCD_PASSWORD"]), "r2")

	// On a cluster without auth, the script does its part and warns that it means nothing yet.
	open := etcdtest.Start(t, 1)
	out, err = setup(t, map[string]string{"ETCDCTL": ctl, "ETCDCTL_ENDPOINTS": open.Endpoint(0), "PASSWORD_FILE": pwFile})
	if err != nil || !strings.Contains(out, "WARNING: auth is not enabled") {
		t.Errorf("setup.sh on a cluster without auth: %v\n%s", err, out)
	}
	t.Logf("all in %v", time.Since(t0).Round(time.Millisecond))
}

// botConfig is the bot's config as the docs give it, with auth (the lines under store.etcd)
// and the password in ETCD_PASSWORD; certFile empty leaves the client certificate out.
func botConfig(t *testing.T, cl *etcdtest.Cluster, certFile, keyFile, auth, password string) *config.Etcd {
	t.Helper()
	var tls strings.Builder
	fmt.Fprintf(&tls, "      ca_file: %s\n", cl.CAFile())
	if certFile != "" {
		fmt.Fprintf(&tls, "      cert_file: %s\n      key_file: %s\n", certFile, keyFile)
	}
	raw := fmt.Sprintf(`connectors:
  - name: prod
    connection_string: mongodb://127.0.0.1:27017/
approvals:
  channel: C0APPROVALS
  approvers: {users: [U0ALICE]}
store:
  etcd:
    endpoints: [%s]
    prefix: /mongobot/
    session_ttl: 5s
    %s
    tls:
%s`, strings.Join(cl.Endpoints(), ", "), auth, tls.String())
	cfg, err := config.Parse([]byte(raw), func(k string) (string, bool) {
		if k == "ETCD_PASSWORD" {
			return password, true
		}
		return "", false
	})
	if err != nil {
		t.Fatalf("the config: %v", err)
	}
	return cfg.Store.Etcd
}

// clientConfig is what cmd/bot dials store.etcd with.
func clientConfig(cfg *config.Etcd) ha.ClientConfig {
	return ha.ClientConfig{Endpoints: cfg.Endpoints, Username: cfg.Username, Password: cfg.Password,
		CAFile: cfg.TLS.CAFile, CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile}
}

func dial(t *testing.T, cfg *config.Etcd) *ha.Client {
	t.Helper()
	c, err := ha.Dial(clientConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serve does what the bot's serve does with store.etcd (cmd/bot's joinShared, open and lead),
// with the same keys under the prefix, and the journal operations that touch etcd in each
// way: transactions on the journal, a request claimed by the replica's lease, a secret kept
// under a lease of its own, writes fenced by the leader's term.
func serve(t *testing.T, cfg *config.Etcd, name string) {
	t.Helper()
	c := dial(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := ha.Join(ctx, ha.Config{Client: c, Prefix: cfg.Prefix + "ha/", Name: name, TTL: time.Duration(cfg.SessionTTL)})
	if err != nil {
		t.Fatalf("%s: join: %v", name, err)
	}
	defer r.Close()
	kv := ha.NewKV(c, cfg.Prefix+"journal/", ha.KVOptions{MaxOps: cfg.MaxTxnOps, Session: r})
	st, err := store.OpenShared(kv, t.TempDir(), cfg.String(), store.Options{Key: key})
	if err != nil {
		t.Fatalf("%s: open the shared journal: %v", name, err)
	}
	defer st.Close()

	req, err := st.CreateRequest(store.Request{Action: "lock-user", Connector: "prod", Requester: "U0ALICE"}, approvals.Approved, "U0ALICE")
	if err != nil {
		t.Fatalf("%s: create a request: %v", name, err)
	}
	if got, err := st.Request(req.ID); err != nil || got.State != approvals.Approved {
		t.Fatalf("%s: read request #%d back: %+v, %v", name, req.ID, got, err)
	}
	// An approved request is claimed, on its creation, under the replica's lease.
	if err := st.ClaimRequest(req.ID); !errors.Is(err, store.ErrClaimed) || !strings.Contains(err.Error(), name) {
		t.Fatalf("%s: request #%d should be claimed by this replica: %v", name, req.ID, err)
	}
	cl, err := r.Claim(ctx, "schedule-slot")
	if err != nil {
		t.Fatalf("%s: claim: %v", name, err)
	}
	if err := cl.Release(ctx); err != nil {
		t.Fatalf("%s: release the claim: %v", name, err)
	}
	id, err := st.PutSecret("U0ALICE", []byte("sealed"), time.Minute)
	if err != nil {
		t.Fatalf("%s: keep a secret under a lease: %v", name, err)
	}
	if got, err := st.TakeSecret(id, "U0ALICE"); err != nil || string(got) != "sealed" {
		t.Fatalf("%s: take the secret: %q, %v", name, got, err)
	}
	if first, err := st.Seen("event-"+name, time.Minute); err != nil || !first {
		t.Fatalf("%s: dedupe an event: %v, %v", name, first, err)
	}

	led := make(chan error, 1)
	lctx, stop := context.WithCancel(ctx)
	go func() {
		led <- r.Lead(lctx, func(term ha.Term) {
			defer stop()
			fenced := st.Fenced(kv.Fenced(term))
			_, err := fenced.CreateRequest(store.Request{Action: "unlock-user", Connector: "prod", Requester: "U0BOB"}, approvals.Approved, "U0BOB")
			if err == nil {
				// What bot check reads to name the leader.
				var leader string
				if leader, err = ha.LeaderOf(c, cfg.Prefix+"ha/", 5*time.Second); err == nil && leader != name {
					err = fmt.Errorf("bot check would name %q as the leader", leader)
				}
			}
			led <- err
		})
	}()
	if err := <-led; err != nil {
		t.Fatalf("%s: a write fenced by its term as leader: %v", name, err)
	}
	if err := <-led; !errors.Is(err, context.Canceled) {
		t.Fatalf("%s: lead: %v", name, err)
	}
	t.Logf("%s: joined, led (a fenced write in its term), wrote and read the journal, claimed, kept a secret under a lease", name)
	if _, err := ha.Members(c, 5*time.Second); err != nil {
		t.Errorf("%s: list the members as bot check does: %v", name, err)
	}
	if on, err := ha.AuthEnabled(c, 5*time.Second); err != nil || !on {
		t.Errorf("%s: ask whether auth is on, as bot check does: %v, %v", name, on, err)
	}
}

// key seals the journal's secrets, the same for every replica.
var key = func() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}()

// outsider logs in as the bot's user does and tries everything outside the prefix.
func outsider(t *testing.T, cfg *config.Etcd) {
	t.Helper()
	c := dial(t, cfg)
	for _, k := range []string{"/other/x", "/mongobot-other/x", "/mongobot", "/", "mongobot/x"} {
		denied(t, "read "+k, func(ctx context.Context) error { _, err := c.Get(ctx, k); return err })
		denied(t, "write "+k, func(ctx context.Context) error { _, err := c.Put(ctx, k, "v"); return err })
		denied(t, "delete "+k, func(ctx context.Context) error { _, err := c.Delete(ctx, k); return err })
	}
	denied(t, "read every key", func(ctx context.Context) error {
		_, err := c.Get(ctx, "/", clientv3.WithPrefix())
		return err
	})
	denied(t, "read from the first key on", func(ctx context.Context) error {
		_, err := c.Get(ctx, "\x00", clientv3.WithFromKey())
		return err
	})
	denied(t, "read the range /mongobot/ to /mongobot0 and past it", func(ctx context.Context) error {
		_, err := c.Get(ctx, "/mongobot/", clientv3.WithRange("/mongobot1"))
		return err
	})
	denied(t, "a transaction comparing a key outside", func(ctx context.Context) error {
		_, err := c.Txn(ctx).If(clientv3.Compare(clientv3.Version("/other/x"), "=", 0)).
			Then(clientv3.OpPut("/mongobot/x", "v")).Commit()
		return err
	})
	denied(t, "a lease on a key outside", func(ctx context.Context) error {
		g, err := c.Grant(ctx, 5)
		if err != nil {
			return err
		}
		_, err = c.Put(ctx, "/other/x", "v", clientv3.WithLease(g.ID))
		return err
	})
	denied(t, "list users", func(ctx context.Context) error { _, err := c.UserList(ctx); return err })
	denied(t, "widen its own role", func(ctx context.Context) error {
		_, err := c.RoleGrantPermission(ctx, "mongobot", "/", "\x00", clientv3.PermissionType(clientv3.PermReadWrite))
		return err
	})
	denied(t, "grant itself root", func(ctx context.Context) error { _, err := c.UserGrantRole(ctx, "mongobot", "root"); return err })
	denied(t, "turn auth off", func(ctx context.Context) error { _, err := c.AuthDisable(ctx); return err })
	t.Logf("%d operations outside /mongobot/ refused", refusals)
	refusals = 0
	// Inside, the same client may: the refusals above are the prefix's bounds, not a
	// client that can do nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "/mongobot/probe", "v"); err != nil {
		t.Errorf("write under the prefix: %v", err)
	}
	if _, err := c.Delete(ctx, "/mongobot/probe"); err != nil {
		t.Errorf("delete under the prefix: %v", err)
	}
}

// refusals counts denied's checks, for the log.
var refusals int

// denied runs op and fails t unless etcd refused it for want of permission.
func denied(t *testing.T, what string, op func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := op(ctx)
	refusals++
	if !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("%s: %v, want permission denied", what, err)
	}
}
