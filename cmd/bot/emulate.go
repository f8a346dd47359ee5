package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"mongobot/config"
	"mongobot/connector/mongotest"
	"mongobot/delivery"
	"mongobot/secret"
)

// demoPlaceholder is what every ${VAR} of a config tried in the demo stands for: never the
// environment's value, so no credential is read, and none is needed.
const demoPlaceholder = "demo-placeholder"

// emulatedConfig reads the config at path for `console --demo --config`: its rules, quorums,
// just-in-time policy and schedule settings as written, every ${VAR} the placeholder. A
// config that does not parse or validate is a usage error that says so and why.
func emulatedConfig(path string) (*config.Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError{fmt.Sprintf("--config %s cannot be read (%v); fix the path, or run mongobot console --demo for the embedded demo", path, unwrapPath(err))}
	}
	cfg, err := config.Parse(raw, func(string) (string, bool) { return demoPlaceholder, true })
	if err != nil {
		return nil, usageError{fmt.Sprintf("%s cannot be tried in the demo: it does not parse or validate: %v (in the demo every ${VAR} stands for %q, never a value from your environment). Fix the file and try again; mongobot check says the same of it",
			path, err, demoPlaceholder)}
	}
	return cfg, nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// emulate puts an in-process emulator under each of cfg's connectors, with the demo's users,
// in place of the servers it names: same names, same policies, no connection string, TLS or
// Atlas credential kept. It returns the emulators, to close.
func emulate(ctx context.Context, cfg *config.Config) ([]*mongotest.Server, error) {
	var emus []*mongotest.Server
	for i, cn := range cfg.Connectors {
		emu, err := mongotest.NewServer(mongotest.Options{})
		if err != nil {
			closeEmulators(emus)
			return nil, fmt.Errorf("demo server for %s: %v", cn.Name, err)
		}
		emus = append(emus, emu)
		if err := seedDemo(ctx, emu.URI()); err != nil {
			closeEmulators(emus)
			return nil, fmt.Errorf("demo server for %s: %v", cn.Name, err)
		}
		cfg.Connectors[i] = config.Connector{Name: cn.Name, ConnectionString: secret.New(emu.URI()), PasswordLength: cn.PasswordLength,
			VerifyLogin: cn.VerifyLogin, Concurrency: cn.Concurrency, Queue: cn.Queue, JIT: cn.JIT}
	}
	// The journal is the demo's own (a temporary folder): never an etcd cluster named here.
	cfg.Store = config.Store{}
	return emus, nil
}

func closeEmulators(emus []*mongotest.Server) {
	for _, e := range emus {
		e.Close()
	}
}

// emulatedNames lists the connectors as the demo's introduction names them.
func emulatedNames(cfg *config.Config) string {
	var names []string
	for _, cn := range cfg.Connectors {
		names = append(names, fmt.Sprintf("%q", cn.Name))
	}
	return strings.Join(names, ", ")
}

// heldTarget stands in for a configured delivery target in the demo: it keeps the password
// in this process's memory and writes nothing to Vault, Kubernetes or a command, which it
// never starts.
type heldTarget struct {
	place string
	mu    sync.Mutex
	held  map[string]delivery.Credential
	n     int
}

func newHeldTarget(t config.Target) (target, error) {
	place := "a delivery target"
	switch {
	case t.VaultKV != nil:
		mount := t.VaultKV.Mount
		if mount == "" {
			mount = "secret"
		}
		place = fmt.Sprintf("Vault KV %s/%s at %s", mount, t.VaultKV.Path, t.VaultKV.Address)
	case t.KubernetesSecret != nil:
		place = "Kubernetes Secret " + t.KubernetesSecret.Namespace + "/" + t.KubernetesSecret.Name
	case t.Exec != nil && len(t.Exec.Command) > 0:
		place = "command " + t.Exec.Command[0]
	}
	return &heldTarget{place: place, held: map[string]delivery.Credential{}}, nil
}

func (t *heldTarget) Describe() string {
	return "demo stand-in for " + t.place + " (held in memory, not sent)"
}

func (t *heldTarget) Deliver(_ context.Context, c delivery.Credential) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n++
	v := fmt.Sprintf("demo version %d", t.n)
	t.held[v] = c
	return v, nil
}

func (t *heldTarget) Verify(_ context.Context, c delivery.Credential, version string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	got, ok := t.held[version]
	if !ok || got.User != c.User || got.Password.Reveal() != c.Password.Reveal() {
		return "", fmt.Errorf("the demo stand-in does not hold %s", version)
	}
	return "read back from the demo's memory", nil
}

func (t *heldTarget) Check(context.Context) error { return nil }
