package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"mongobot/bot"
	"mongobot/config"
	"mongobot/connector"
	"mongobot/delivery/command"
	"mongobot/delivery/kubesecret"
	"mongobot/delivery/vaultkv"
)

// target is what the binary needs from a delivery target: the bot's interface, and a check
// that it can be reached and written (bot check).
type target interface {
	bot.Target
	Check(ctx context.Context) error
}

// deliveries makes the configured delivery targets; nothing touches the network.
func deliveries(c *config.Config) ([]bot.Delivery, []target, error) {
	return deliveriesWith(c, newTarget)
}

// deliveriesWith is deliveries with the targets made by mk (the console's demo makes
// stand-ins that never reach the configured places).
func deliveriesWith(c *config.Config, mk func(config.Target) (target, error)) ([]bot.Delivery, []target, error) {
	var out []bot.Delivery
	var all []target
	for i, d := range c.Deliveries {
		db := d.DB
		if db == "" {
			db = "admin"
		}
		bd := bot.Delivery{Connector: d.Connector, Alternating: d.Strategy == "alternating", Reveal: d.Reveal == "owner"}
		for _, u := range d.Names() {
			bd.Users = append(bd.Users, connector.UserRef{User: u, DB: db})
		}
		seen := map[string]int{}
		for j, t := range d.Targets {
			tg, err := mk(t)
			if err != nil {
				return nil, nil, usageError{fmt.Sprintf("config: deliveries[%d].targets[%d]: %v", i, j, err)}
			}
			// The journal names a delivery by its target's description: two alike could not be
			// told apart after a restart.
			if k, dup := seen[tg.Describe()]; dup {
				return nil, nil, usageError{fmt.Sprintf("config: deliveries[%d].targets[%d] and targets[%d] are both %s: one target once per delivery", i, k, j, tg.Describe())}
			}
			seen[tg.Describe()] = j
			bd.Targets = append(bd.Targets, tg)
			all = append(all, tg)
		}
		out = append(out, bd)
	}
	return out, all, nil
}

func newTarget(t config.Target) (target, error) {
	switch {
	case t.VaultKV != nil:
		v := t.VaultKV
		vc := vaultkv.Config{Address: v.Address, Mount: v.Mount, Path: v.Path, UsernameField: v.UsernameField,
			PasswordField: v.PasswordField, TLSCAFile: v.TLSCAFile, Namespace: v.Namespace, Timeout: time.Duration(v.Timeout),
			Token: v.Auth.Token.String, TokenFile: v.Auth.TokenFile}
		if a := v.Auth.AppRole; a != nil {
			vc.AppRole = &vaultkv.AppRole{Mount: a.Mount, RoleID: a.RoleID, RoleIDFile: a.RoleIDFile, SecretID: a.SecretID.String, SecretIDFile: a.SecretIDFile}
		}
		if k := v.Auth.Kubernetes; k != nil {
			vc.Kubernetes = &vaultkv.Kubernetes{Mount: k.Mount, Role: k.Role, JWTFile: k.JWTFile}
		}
		return vaultkv.New(vc)
	case t.KubernetesSecret != nil:
		k := t.KubernetesSecret
		return kubesecret.New(kubesecret.Config{Namespace: k.Namespace, Name: k.Name, UsernameKey: k.UsernameKey,
			PasswordKey: k.PasswordKey, Kubeconfig: k.Kubeconfig, Context: k.Context, Timeout: time.Duration(k.Timeout)})
	case t.Exec != nil:
		x := t.Exec
		return command.New(command.Config{Argv: x.Command, Timeout: time.Duration(x.Timeout), Env: x.Env, Dir: x.Dir})
	}
	return nil, fmt.Errorf("no target given")
}

// checkTargets says, for bot check, whether every delivery target can be built from the
// config, and reached and written: each one, whatever the others say.
func checkTargets(ctx context.Context, cfg *config.Config, w io.Writer, problem func(string, ...any)) {
	for i, d := range cfg.Deliveries {
		seen := map[string]int{}
		for j, ct := range d.Targets {
			t, err := newTarget(ct)
			if err != nil {
				problem("delivery: deliveries[%d].targets[%d]: %v", i, j, err)
				continue
			}
			if k, dup := seen[t.Describe()]; dup {
				problem("delivery: deliveries[%d].targets[%d] and targets[%d] are both %s: one target once per delivery", i, k, j, t.Describe())
				continue
			}
			seen[t.Describe()] = j
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err = t.Check(cctx)
			cancel()
			if err != nil {
				problem("delivery: %s: %v", t.Describe(), err)
				continue
			}
			fmt.Fprintf(w, "delivery: %s: ready to deliver\n", t.Describe())
		}
	}
}
