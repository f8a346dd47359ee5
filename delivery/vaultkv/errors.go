package vaultkv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/hashicorp/vault/api"

	"mongobot/delivery"
	"mongobot/secret"
)

// failure turns an error from the library into a sentence that says what was being done,
// whether trying again may help (plain) or not by itself (delivery.ErrRejected), and
// nothing secret. Only the library error's scrubbed text is kept, never the error itself:
// whoever unwraps and prints it later would print what it quotes.
func (t *Target) failure(err error, doing string, hide ...secret.String) error {
	return t.fail(err, doing, false, t.hidden(hide...))
}

// hidden is every secret the Target holds, and extra.
func (t *Target) hidden(extra ...secret.String) []secret.String {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hiddenLocked(extra...)
}

// hiddenLocked is hidden for a caller that holds t.mu.
func (t *Target) hiddenLocked(extra ...secret.String) []secret.String {
	h := append(append([]secret.String(nil), extra...), t.s.held...)
	h = append(h, t.s.token, t.cfg.Token)
	if a := t.cfg.AppRole; a != nil {
		h = append(h, a.SecretID, secret.New(a.RoleID))
	}
	return h
}

// fail is failure with the secrets to hide already gathered; login marks a login, where a
// 400 or a 403 means the credentials were refused, not that a policy is missing.
func (t *Target) fail(err error, doing string, login bool, hide []secret.String) error {
	scrub := func(s string) string { return secret.Scrub(s, hide...) }
	at := "Vault at " + t.cfg.Address

	var re *api.ResponseError
	if errors.As(err, &re) {
		said := scrub(tidy(re.Errors))
		if said == "" {
			said = http.StatusText(re.StatusCode)
		}
		e := &vaultError{status: re.StatusCode}
		switch {
		case re.StatusCode == http.StatusServiceUnavailable && strings.Contains(strings.ToLower(said), "sealed"):
			e.text = fmt.Sprintf("%s is sealed (while %s); deliveries resume once it is unsealed", at, doing)
		case login && (re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusBadRequest):
			e.kind = delivery.ErrRejected
			e.text = fmt.Sprintf("%s refused %s: %s", at, doing, said)
		case re.StatusCode == http.StatusForbidden && invalidToken(re):
			e.kind = delivery.ErrRejected
			e.text = fmt.Sprintf("%s does not know the token (expired, revoked or never issued) while %s: %s", at, doing, said)
		case re.StatusCode == http.StatusForbidden:
			e.kind = delivery.ErrRejected
			e.text = fmt.Sprintf("%s denied %s: %s (the token's policies do not allow it)", at, doing, said)
		case re.StatusCode == http.StatusNotFound:
			e.kind = delivery.ErrRejected
			e.text = fmt.Sprintf("%s found nothing for %s: %s", at, doing, said)
		case re.StatusCode == http.StatusTooManyRequests || re.StatusCode == http.StatusPreconditionFailed || re.StatusCode >= 500:
			// 429: a rate limit; 412: a performance standby not caught up yet (Enterprise).
			e.text = fmt.Sprintf("%s failed %s: %d %s", at, doing, re.StatusCode, said)
		default:
			e.kind = delivery.ErrRejected
			e.text = fmt.Sprintf("%s refused %s: %s", at, doing, said)
		}
		return e
	}

	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &vaultError{kind: context.DeadlineExceeded, text: fmt.Sprintf("%s did not answer in time (while %s; the timeout is %v)", at, doing, t.cfg.Timeout)}
	case errors.Is(err, context.Canceled):
		return &vaultError{kind: context.Canceled, text: fmt.Sprintf("%s: %s was cancelled", at, doing)}
	case errors.As(err, &unknownCA), errors.As(err, &badHost), errors.As(err, &invalid), errors.As(err, &verify):
		return errorf(delivery.ErrRejected, "%s: its certificate does not verify (while %s): %s; tls_ca_file must name the CA that signed it",
			at, doing, scrub(rootCause(err).Error()))
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return errorf(nil, "%s did not answer (while %s): %s", at, doing, scrub(netErr.Error()))
	}
	return errorf(nil, "%s: %s failed: %s", at, doing, scrub(err.Error()))
}

// multiError is how Vault words a list of one or more errors: "1 error occurred:\n\t* …".
var multiError = regexp.MustCompile(`^\d+ errors? occurred:\s*\*\s*`)

// tidy makes Vault's error list one line.
func tidy(errs []string) string {
	var out []string
	for _, e := range errs {
		e = strings.Join(strings.Fields(e), " ")
		e = multiError.ReplaceAllString(e, "")
		e = strings.ReplaceAll(e, " * ", "; ")
		if e != "" {
			out = append(out, e)
		}
	}
	return strings.Join(out, "; ")
}

// rootCause drops the library's "error encountered while …" layers, which repeat what
// failure already says, down to the first error that names the request (a *url.Error).
func rootCause(err error) error {
	var netErr net.Error
	if errors.As(err, &netErr) {
		return netErr
	}
	for errors.Unwrap(err) != nil {
		err = errors.Unwrap(err)
	}
	return err
}

// vaultError is a failure as a sentence. Its kind (delivery.ErrRejected, ErrConflict,
// ErrMismatch, or nil for one that may pass) is what errors.Is sees; it is not repeated in
// the text. The status, Vault's HTTP answer if there was one, lets call tell a 403 (which
// may be an expired token) from the rest.
type vaultError struct {
	kind   error
	text   string
	status int
}

func (e *vaultError) Error() string { return e.text }
func (e *vaultError) Unwrap() error { return e.kind }

func errorf(kind error, format string, a ...any) error {
	return &vaultError{kind: kind, text: fmt.Sprintf(format, a...)}
}

// invalidToken reports whether Vault refused the token itself rather than what it may do.
// Both are a 403; only the words differ ("permission denied; invalid token").
func invalidToken(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	for _, e := range re.Errors {
		if strings.Contains(e, "invalid token") {
			return true
		}
	}
	return false
}

// statusOf is Vault's HTTP status in err, or 0 when Vault did not answer.
func statusOf(err error) int {
	var se *vaultError
	if errors.As(err, &se) {
		return se.status
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}
