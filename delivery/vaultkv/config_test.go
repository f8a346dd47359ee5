package vaultkv

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"mongobot/delivery"
	"mongobot/secret"
)

func TestConfigMistakes(t *testing.T) {
	tok := secret.New("hvs.config-test-token")
	for _, tc := range []struct {
		name string
		c    Config
		want []string // each must appear, each mistake on its own line
	}{
		{"empty", Config{}, []string{"address is missing", "path is missing", "no way to log in"}},
		{"not a URL", Config{Address: "vault:8200", Path: "a", Token: tok}, []string{`address "vault:8200" is not an http:// or https:// URL`}},
		{"API path", Config{Address: "https://v", Path: "data/apps/orders", Token: tok}, []string{"starts with data/: give it as the CLI shows it"}},
		{"dot dot", Config{Address: "https://v", Path: "apps/../x", Token: tok}, []string{"has an empty, . or .. segment"}},
		{"same fields", Config{Address: "https://v", Path: "a", Token: tok, UsernameField: "pw", PasswordField: "pw"}, []string{`username_field and password_field are both "pw"`}},
		{"two tokens", Config{Address: "https://v", Path: "a", Token: tok, TokenFile: "/t"}, []string{"token and token_file are both set"}},
		{"two methods", Config{Address: "https://v", Path: "a", Token: tok, Kubernetes: &Kubernetes{Role: "r"}}, []string{"more than one way to log in"}},
		{"approle halves", Config{Address: "https://v", Path: "a", AppRole: &AppRole{RoleID: "r", RoleIDFile: "/f"}}, []string{"exactly one of role_id and role_id_file", "exactly one of secret_id and secret_id_file"}},
		{"kubernetes role", Config{Address: "https://v", Path: "a", Kubernetes: &Kubernetes{}}, []string{"kubernetes needs the Vault role"}},
		{"negative timeout", Config{Address: "https://v", Path: "a", Token: tok, Timeout: -1}, []string{"timeout -1ns is negative"}},
	} {
		_, err := New(tc.c)
		if !errors.Is(err, delivery.ErrRejected) {
			t.Errorf("%s: %v, want ErrRejected", tc.name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.name, err, w)
			}
		}
		if n := strings.Count(err.Error(), "\n"); n != len(tc.want)-1 {
			t.Errorf("%s: %d lines, want one per mistake:\n%v", tc.name, n+1, err)
		}
		if strings.Contains(err.Error(), tok.Reveal()) {
			t.Errorf("%s: the token shows: %v", tc.name, err)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	tg, err := New(Config{Address: "https://vault.example:8200/", Path: "/apps/orders/", AppRole: &AppRole{RoleID: "r", SecretID: secret.New("s")}})
	if err != nil {
		t.Fatal(err)
	}
	c := tg.cfg
	if c.Mount != "secret" || c.Path != "apps/orders" || c.UsernameField != "username" || c.PasswordField != "password" || c.Timeout != DefaultTimeout || c.AppRole.Mount != "approle" {
		t.Errorf("defaults: %+v", c)
	}
	if got := tg.Describe(); got != "Vault KV secret/apps/orders at https://vault.example:8200" {
		t.Errorf("Describe: %q", got)
	}
	k, err := New(Config{Address: "http://v", Path: "a", Kubernetes: &Kubernetes{Role: "bot"}, Namespace: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	if k.cfg.Kubernetes.Mount != "kubernetes" || k.cfg.Kubernetes.JWTFile != DefaultJWTFile {
		t.Errorf("kubernetes defaults: %+v", *k.cfg.Kubernetes)
	}
	if got := k.Describe(); got != "Vault KV secret/a at http://v (namespace team-a)" {
		t.Errorf("Describe: %q", got)
	}
}

// failure keeps only the library error's text, scrubbed of every secret the Target holds:
// here errors are made to quote them, which Vault itself seldom does.
func TestFailureScrubs(t *testing.T) {
	tg, err := New(Config{Address: "http://127.0.0.1:1", Path: "a", Token: secret.New("hvs.the-static-token")})
	if err != nil {
		t.Fatal(err)
	}
	tg.s.held = []secret.String{secret.New("the-secret-id-value"), secret.New("eyJhbGciOi.the-jwt")}
	tg.s.token = secret.New("hvs.the-login-token")
	pw := secret.New("the-password-value")
	secrets := []string{"hvs.the-static-token", "the-secret-id-value", "eyJhbGciOi.the-jwt", "hvs.the-login-token", "the-password-value"}
	quoting := strings.Join(secrets, " ")
	for _, lib := range []error{
		&api.ResponseError{HTTPMethod: "PUT", URL: "http://v/v1/x", StatusCode: 400, Errors: []string{"bad value " + quoting}},
		&api.ResponseError{StatusCode: 403, Errors: []string{quoting}},
		&api.ResponseError{StatusCode: 503, Errors: []string{"Vault is sealed " + quoting}},
		&api.ResponseError{StatusCode: 500, RawError: true, Errors: []string{"<html>" + quoting}},
		&url.Error{Op: "Put", URL: "http://v/" + quoting, Err: errors.New("connection refused")},
		errors.New("wrapped: " + quoting),
	} {
		err := tg.failure(lib, "writing secret/a", pw)
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%q shows %q", err, s)
			}
		}
		if errors.Unwrap(err) != nil && errors.Unwrap(err) == lib {
			t.Errorf("%q wraps the library's error, which can be printed unscrubbed", err)
		}
		var re *api.ResponseError
		if errors.As(err, &re) {
			t.Errorf("%q still carries the library's ResponseError", err)
		}
	}
	if got := statusOf(tg.failure(&api.ResponseError{StatusCode: http.StatusForbidden}, "x")); got != 403 {
		t.Errorf("the status of a 403 is kept as %d", got)
	}
}
