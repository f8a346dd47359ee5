package vaultkv

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"mongobot/delivery"
	"mongobot/secret"
)

// Target delivers credentials into one KV v2 secret. It is safe for concurrent use; the
// writes themselves are kept apart by Vault's check-and-set, not by the Target.
type Target struct {
	// The configuration and the login state sit behind pointers: printing a Target value
	// with %v shows their addresses. fmt cannot call String on a secret.String kept in an
	// unexported field, and would print the token itself.
	cfg   *Config
	where string // the secret as the CLI names it, "secret/apps/orders", for sentences
	now   func() time.Time

	client *api.Client // the calls; holds the current token
	login  *api.Client // logins only, so a failed login never clears the token in use
	kv     *api.KVv2

	mu sync.Mutex // serialises logins; guards s
	s  *session

	// beforeWrite, set by tests only, runs between Deliver's read and its write: the window
	// in which a concurrent writer makes the check-and-set fail.
	beforeWrite func()
}

// session is what the Target learnt since New.
type session struct {
	token   secret.String   // what client holds; empty before the first login
	renewAt time.Time       // log in again from then on (a token near its TTL); zero: never
	held    []secret.String // the credentials read at the last login, scrubbed from errors
	isKVv2  bool            // the mount was seen to be KV version 2
}

// New checks the configuration and builds the client. It does not talk to Vault: logging in
// waits for the first call, so a bot starts even while Vault is down.
func New(c Config) (*Target, error) {
	c, err := c.normalize()
	if err != nil {
		return nil, errorf(delivery.ErrRejected, "vault configuration: %v", err)
	}
	t := &Target{cfg: &c, where: c.Mount + "/" + c.Path, now: time.Now, s: &session{}}
	hc, err := httpClient(c)
	if err != nil {
		return nil, errorf(delivery.ErrRejected, "vault configuration: %v", err)
	}
	if t.client, err = newClient(c, hc); err != nil {
		return nil, err
	}
	if t.login, err = newClient(c, hc); err != nil {
		return nil, err
	}
	t.kv = t.client.KVv2(c.Mount)
	return t, nil
}

// httpClient is the transport both clients share. Built here rather than by
// api.DefaultConfig, which reads VAULT_SKIP_VERIFY, VAULT_CACERT and the like: an environment
// variable meant for someone's CLI must not switch off certificate checks for the bot. The
// standard proxy variables (HTTPS_PROXY, NO_PROXY) are still honoured, as by any Go program.
func httpClient(c Config) (*http.Client, error) {
	tr, ok := http.DefaultTransport.(*http.Transport)
	if ok {
		tr = tr.Clone()
	} else { // replaced by someone: start from Go's defaults that matter here
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second}
	}
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	hc := &http.Client{
		Transport: tr,
		// The library follows Vault's redirects itself (standby to active), refusing a
		// downgrade to http; net/http must hand the redirect back to it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if c.TLSCAFile != "" {
		cfg := &api.Config{HttpClient: hc}
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: c.TLSCAFile}); err != nil {
			return nil, fmt.Errorf("tls_ca_file %s: %v", c.TLSCAFile, err)
		}
	}
	return hc, nil
}

func newClient(c Config, hc *http.Client) (*api.Client, error) {
	client, err := api.NewClient(&api.Config{
		Address:    c.Address,
		HttpClient: hc,
		Timeout:    c.Timeout,
		// No retries inside a call: the bot retries a failed delivery itself, re-reading
		// the secret first. A write retried blindly could meet its own first attempt and
		// look like a conflict.
		MaxRetries: 0,
	})
	if err != nil {
		return nil, fmt.Errorf("vault client for %s: %w", c.Address, err)
	}
	// NewClient takes VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS from the environment;
	// only the bot's configuration counts.
	client.ClearToken()
	client.SetHeaders(http.Header{api.RequestHeaderName: {"true"}})
	if c.Namespace != "" {
		client.SetNamespace(c.Namespace)
	}
	return client, nil
}

// Describe names the secret and the server, for the bot's messages. It holds no secret.
func (t *Target) Describe() string {
	s := fmt.Sprintf("Vault KV %s at %s", t.where, t.cfg.Address)
	if t.cfg.Namespace != "" {
		s += " (namespace " + t.cfg.Namespace + ")"
	}
	return s
}

// String is Describe, so that printing a Target never shows more.
func (t *Target) String() string { return t.Describe() }

// Deliver writes c's user and password into the secret, keeping every other field, with
// check-and-set on the version it read: if anyone writes in between, Vault refuses the
// write and Deliver returns an error wrapping delivery.ErrConflict, having overwritten
// nothing. It returns the version it wrote, as "version N".
func (t *Target) Deliver(ctx context.Context, c delivery.Credential) (string, error) {
	if c.User == "" || c.Password.Empty() {
		return "", errorf(delivery.ErrRejected, "nothing to deliver to %s: the credential has no user or no password", t.where)
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	var written int
	err := t.call(ctx, c.Password, func() error {
		if err := t.checkMount(ctx, c.Password); err != nil {
			return err
		}
		data, version, err := t.read(ctx, c.Password)
		if err != nil {
			return err
		}
		if data == nil {
			data = map[string]any{}
		}
		data[t.cfg.UsernameField] = c.User
		data[t.cfg.PasswordField] = c.Password.Reveal()
		if t.beforeWrite != nil {
			t.beforeWrite()
		}
		s, err := t.kv.Put(ctx, t.cfg.Path, data, api.WithCheckAndSet(version))
		if err != nil {
			if statusOf(err) == http.StatusBadRequest {
				// Vault answers a stale cas with a 400 whose only mark is its wording;
				// the version now in Vault says it without reading the wording.
				if _, now, rerr := t.read(ctx, c.Password); rerr == nil && now != version {
					return errorf(delivery.ErrConflict, "%s at %s was written by someone else (version %d read, version %d now) between reading and writing it; nothing of theirs was overwritten",
						t.where, t.cfg.Address, version, now)
				}
			}
			return t.failure(err, "writing "+t.where, c.Password)
		}
		if s == nil || s.VersionMetadata == nil {
			return errorf(nil, "Vault at %s took the write to %s but did not say which version it made", t.cfg.Address, t.where)
		}
		written = s.VersionMetadata.Version
		return nil
	})
	if err != nil {
		return "", err
	}
	return "version " + strconv.Itoa(written), nil
}

// read returns the secret's current data and version: nil and 0 when it does not exist, nil
// data and its version when its latest version was deleted or destroyed (a write with that
// version as cas replaces it).
func (t *Target) read(ctx context.Context, hide ...secret.String) (map[string]any, int, error) {
	s, err := t.kv.Get(ctx, t.cfg.Path)
	switch {
	case errors.Is(err, api.ErrSecretNotFound):
		return nil, 0, nil
	case err != nil:
		return nil, 0, t.failure(err, "reading "+t.where, hide...)
	case s.VersionMetadata == nil:
		return nil, 0, errorf(nil, "Vault at %s answered for %s without a version: is %s a KV version 2 mount?", t.cfg.Address, t.where, t.cfg.Mount)
	}
	return s.Data, s.VersionMetadata.Version, nil
}

// Verify reads back the version Deliver returned and compares the user and the password. It
// also reads the current version, when a later one exists: a secret whose newest version no
// longer holds the credential does not deliver it, whatever an older version says.
func (t *Target) Verify(ctx context.Context, c delivery.Credential, version string) (string, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(version, "version "))
	if err != nil || n <= 0 || !strings.HasPrefix(version, "version ") {
		return "", errorf(delivery.ErrRejected, "%q is not a version Deliver returned (\"version N\")", version)
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	var how string
	err = t.call(ctx, c.Password, func() error {
		s, err := t.kv.GetVersion(ctx, t.cfg.Path, n)
		switch {
		case errors.Is(err, api.ErrSecretNotFound):
			return errorf(delivery.ErrMismatch, "%s at %s has no version %d any more", t.where, t.cfg.Address, n)
		case err != nil:
			return t.failure(err, fmt.Sprintf("reading version %d of %s", n, t.where), c.Password)
		}
		if why := t.differs(s.Data, c); why != "" {
			return errorf(delivery.ErrMismatch, "version %d of %s at %s: %s", n, t.where, t.cfg.Address, why)
		}
		how = fmt.Sprintf("read back version %d: user and password match", n)
		latest, err := t.kv.Get(ctx, t.cfg.Path)
		switch {
		case errors.Is(err, api.ErrSecretNotFound):
			return errorf(delivery.ErrMismatch, "%s at %s was deleted after version %d was written", t.where, t.cfg.Address, n)
		case err != nil:
			return t.failure(err, "reading "+t.where, c.Password)
		case latest.VersionMetadata == nil || latest.VersionMetadata.Version == n:
			return nil
		}
		m := latest.VersionMetadata.Version
		if why := t.differs(latest.Data, c); why != "" {
			return errorf(delivery.ErrMismatch, "%s at %s changed after version %d: in version %d, the current one, %s", t.where, t.cfg.Address, n, m, why)
		}
		how += fmt.Sprintf(", and still in version %d, the current one", m)
		return nil
	})
	if err != nil {
		return "", err
	}
	return how, nil
}

// differs says how data fails to hold c, or "" when it holds it. It never quotes a password.
func (t *Target) differs(data map[string]any, c delivery.Credential) string {
	if data == nil {
		return "it was deleted or destroyed"
	}
	user, uok := data[t.cfg.UsernameField].(string)
	pass, pok := data[t.cfg.PasswordField].(string)
	switch {
	case !uok:
		return fmt.Sprintf("the %s field is missing", t.cfg.UsernameField)
	case user != c.User:
		return fmt.Sprintf("the %s field holds %q, not %q", t.cfg.UsernameField, user, c.User)
	case !pok:
		return fmt.Sprintf("the %s field is missing", t.cfg.PasswordField)
	case pass != c.Password.Reveal():
		return fmt.Sprintf("the %s field holds another password", t.cfg.PasswordField)
	}
	return ""
}

// Check logs in and asks Vault whether the token may read and write the secret (for `bot
// check`). It writes nothing.
func (t *Target) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	return t.call(ctx, secret.String{}, func() error {
		if err := t.checkMount(ctx); err != nil {
			return err
		}
		apiPath := t.cfg.Mount + "/data/" + t.cfg.Path
		caps, err := t.client.Sys().CapabilitiesSelfWithContext(ctx, apiPath)
		if err != nil {
			return t.failure(err, "asking what the token may do on "+apiPath)
		}
		if slices.Contains(caps, "root") {
			return nil
		}
		need := []string{"read", "update"}
		if slices.Contains(caps, "read") {
			data, version, err := t.read(ctx)
			if err != nil {
				return err
			}
			if data == nil && version == 0 {
				need = append(need, "create") // the first delivery creates the secret
			}
		} else {
			need = append(need, "create")
		}
		var missing []string
		for _, c := range need {
			if !slices.Contains(caps, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		have := "nothing"
		if len(caps) > 0 && !slices.Equal(caps, []string{"deny"}) {
			have = strings.Join(caps, ", ")
		}
		return errorf(delivery.ErrRejected, "Vault at %s: the token's policies allow %s on %s; a delivery also needs %s",
			t.cfg.Address, have, apiPath, strings.Join(missing, ", "))
	})
}

// checkMount makes sure, once, that the mount is KV version 2, and with a namespace, that
// Vault has namespaces. On a version 1 mount the write to mount/data/path would succeed: it
// would create a secret named "data/apps/orders" holding the request, not the credential.
// Open-source Vault ignores a namespace on writes but not on reads (a read answers 404, a
// write lands in the root namespace: seen on v1.21.4), so a namespace there would make every
// delivery create the secret somewhere nobody reads it.
func (t *Target) checkMount(ctx context.Context, hide ...secret.String) error {
	t.mu.Lock()
	ok := t.s.isKVv2
	t.mu.Unlock()
	if ok {
		return nil
	}
	if t.cfg.Namespace != "" {
		h, err := t.client.Sys().HealthWithContext(ctx)
		if err != nil {
			return t.failure(err, "asking whether it has namespaces", hide...)
		}
		if !h.Enterprise {
			return errorf(delivery.ErrRejected, "Vault at %s is open-source Vault %s, which has no namespaces: namespace %q must be left out",
				t.cfg.Address, h.Version, t.cfg.Namespace)
		}
	}
	// The route the CLI uses for the same question; any token with some access to the
	// path may ask it.
	s, err := t.client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+t.where)
	if statusOf(err) == http.StatusForbidden && !invalidToken(err) {
		// Vault answers 403 both for a mount that does not exist and for one the token
		// may do nothing under. The status is kept: with a login, it may also mean the
		// token expired.
		return &vaultError{status: http.StatusForbidden, kind: delivery.ErrRejected, text: fmt.Sprintf(
			"Vault at %s has no mount for %s that the token may use: there is no mount %q, or the token's policies allow nothing under it",
			t.cfg.Address, t.where, t.cfg.Mount)}
	}
	if err != nil {
		return t.failure(err, "looking up the mount of "+t.where, hide...)
	}
	var kind, version string
	if s != nil && s.Data != nil {
		kind, _ = s.Data["type"].(string)
		if o, _ := s.Data["options"].(map[string]any); o != nil {
			version, _ = o["version"].(string)
		}
	}
	switch {
	case s == nil || kind == "":
		return errorf(delivery.ErrRejected, "Vault at %s has no mount %q", t.cfg.Address, t.cfg.Mount)
	case kind != "kv" || version != "2":
		what := kind
		if kind == "kv" {
			what = "KV version " + cmp.Or(version, "1")
		}
		return errorf(delivery.ErrRejected, "Vault at %s: the mount of %s is %s, not KV version 2", t.cfg.Address, t.where, what)
	}
	t.mu.Lock()
	t.s.isKVv2 = true
	t.mu.Unlock()
	return nil
}
