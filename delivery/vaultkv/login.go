package vaultkv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"

	"mongobot/delivery"
	"mongobot/secret"
)

// call runs op with a token. Vault answers an expired or revoked token with a 403, as it
// does a denial (only its words differ, which are not a contract), so with a way to log in
// again any 403 earns one more login and one more try; a second 403 is a real denial. op must be safe to run twice: Deliver's is, since
// it re-reads the secret and writes with check-and-set.
func (t *Target) call(ctx context.Context, password secret.String, op func() error) error {
	used, err := t.session(ctx, password)
	if err != nil {
		return err
	}
	err = op()
	if statusOf(err) != http.StatusForbidden || !t.cfg.Token.Empty() {
		return err
	}
	fresh, lerr := t.relogin(ctx, used, password)
	if lerr != nil {
		return lerr
	}
	if !fresh {
		return err
	}
	return op()
}

// session returns the token the client holds, logging in first when there is none, when
// the last one is near the end of its TTL, or (TokenFile) every time.
func (t *Target) session(ctx context.Context, password secret.String) (secret.String, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	stale := !t.s.renewAt.IsZero() && !t.now().Before(t.s.renewAt)
	if t.s.token.Empty() || stale || t.cfg.TokenFile != "" {
		if err := t.logIn(ctx, password); err != nil {
			return secret.String{}, err
		}
	}
	return t.s.token, nil
}

// relogin logs in again unless someone already replaced the token that failed. It reports
// whether the token is now a different one, worth trying.
func (t *Target) relogin(ctx context.Context, failed, password secret.String) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.s.token.Reveal() != failed.Reveal() {
		return true, nil
	}
	if err := t.logIn(ctx, password); err != nil {
		return false, err
	}
	return t.s.token.Reveal() != failed.Reveal(), nil
}

// logIn gets a token the configured way and gives it to the client. Credentials in files
// are read here, at each login, so that rotated ones are used. The files are read by this
// package rather than by the auth libraries so that it knows every value it must scrub
// from error texts. Called with t.mu held.
func (t *Target) logIn(ctx context.Context, password secret.String) error {
	c := t.cfg
	if !c.Token.Empty() {
		t.s.token, t.s.held = c.Token, []secret.String{c.Token}
		t.client.SetToken(c.Token.Reveal())
		return nil
	}
	if c.TokenFile != "" {
		tok, err := readCredential(c.TokenFile, "token_file")
		if err != nil {
			return err
		}
		t.s.token, t.s.held = tok, []secret.String{tok}
		t.client.SetToken(tok.Reveal())
		return nil
	}

	var method api.AuthMethod
	var what string
	var held []secret.String
	switch {
	case c.AppRole != nil:
		a := c.AppRole
		what = fmt.Sprintf("AppRole login at auth/%s", a.Mount)
		roleID := secret.New(a.RoleID)
		if a.RoleIDFile != "" {
			var err error
			if roleID, err = readCredential(a.RoleIDFile, "role_id_file"); err != nil {
				return err
			}
		}
		secretID := a.SecretID
		if a.SecretIDFile != "" {
			var err error
			if secretID, err = readCredential(a.SecretIDFile, "secret_id_file"); err != nil {
				return err
			}
		}
		held = []secret.String{roleID, secretID}
		m, err := approle.NewAppRoleAuth(roleID.Reveal(), &approle.SecretID{FromString: secretID.Reveal()}, approle.WithMountPath(a.Mount))
		if err != nil {
			return errorf(delivery.ErrRejected, "%s: %s", what, secret.Scrub(err.Error(), held...))
		}
		method = m
	case c.Kubernetes != nil:
		k := c.Kubernetes
		what = fmt.Sprintf("Kubernetes login as role %q at auth/%s", k.Role, k.Mount)
		jwt, err := readCredential(k.JWTFile, "the service-account token file")
		if err != nil {
			return err
		}
		held = []secret.String{jwt}
		m, err := kubernetes.NewKubernetesAuth(k.Role, kubernetes.WithServiceAccountToken(jwt.Reveal()), kubernetes.WithMountPath(k.Mount))
		if err != nil {
			return errorf(delivery.ErrRejected, "%s: %s", what, secret.Scrub(err.Error(), held...))
		}
		method = m
	}

	// The login client is separate, so a failed login leaves the working token in place
	// for the calls running meanwhile.
	t.login.ClearToken()
	s, err := t.login.Auth().Login(ctx, method)
	t.login.ClearToken()
	if err != nil {
		return t.fail(err, "the "+what, true, t.hiddenLocked(append(held, password)...))
	}
	tok := secret.New(s.Auth.ClientToken)
	t.s.token, t.s.held = tok, append(held, tok)
	t.client.SetToken(tok.Reveal())
	t.s.renewAt = renewAt(t.now(), s.Auth.LeaseDuration)
	return nil
}

// readCredential reads a credential file, trimming the line end an editor or `echo` leaves.
func readCredential(path, what string) (secret.String, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is said once, below
		}
		return secret.String{}, errorf(delivery.ErrRejected, "cannot read %s %s: %v", what, path, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return secret.String{}, errorf(delivery.ErrRejected, "%s %s is empty", what, path)
	}
	return secret.New(v), nil
}

// renewAt is when to log in again: after three quarters of the token's TTL, so that no call
// starts with a token about to expire. A token without a TTL is kept until Vault refuses it.
func renewAt(now time.Time, ttlSeconds int) time.Time {
	if ttlSeconds <= 0 {
		return time.Time{}
	}
	return now.Add(time.Duration(ttlSeconds) * time.Second * 3 / 4)
}
