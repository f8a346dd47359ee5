package kubesecret

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"mongobot/delivery"
	"mongobot/secret"
)

// Error is what every Target method returns on failure. Its text never holds a credential.
type Error struct {
	// Kind is delivery.ErrConflict, delivery.ErrRejected or delivery.ErrMismatch, or nil when
	// the API server could not be reached or did not answer (trying again may work).
	Kind error
	Op   string // what was being done, e.g. "update Secret orders/orders-mongo"
	Msg  string // a plain sentence, already scrubbed
	Code int    // the API server's HTTP status, 0 when it did not answer

	// cause is a context error only: they carry no text of anyone's, and errors.Is on them
	// tells a caller's own cancellation from the API server's silence.
	cause error
}

func (e *Error) Error() string { return "kubesecret: " + e.Op + ": " + e.Msg }

// Unwrap exposes Kind and a context error to errors.Is.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// fail turns what client-go returned for op into an *Error. verb is the Kubernetes verb op used
// (get, update, create), named in the sentence when the API server refuses it.
func (t *Target) fail(op, verb string, err error, pw secret.String) *Error {
	scrub := func(s string) string { return secret.Scrub(s, t.secrets(pw)...) }
	e := &Error{Op: op}
	var status apierrors.APIStatus
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		e.Msg = fmt.Sprintf("no answer from the Kubernetes API server at %s within %s", t.host, t.cfg.Timeout)
		e.cause = context.DeadlineExceeded
		return e
	case errors.Is(err, context.Canceled):
		e.Msg = "canceled"
		e.cause = context.Canceled
		return e
	case errors.As(err, &status):
		e.Code = int(status.Status().Code)
	default:
		e.Msg = scrub(transportMessage(t.host, err))
		var certErr *tls.CertificateVerificationError
		var unknownCA x509.UnknownAuthorityError
		var hostErr x509.HostnameError
		if errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) {
			// A certificate that does not verify will not start verifying by itself.
			e.Kind = delivery.ErrRejected
		}
		return e
	}
	server := scrub(status.Status().Message)
	switch {
	case apierrors.IsConflict(err):
		e.Kind = delivery.ErrConflict
		e.Msg = "someone else changed the Secret after the bot read it; nothing of theirs was overwritten: " + server
	case apierrors.IsAlreadyExists(err):
		e.Kind = delivery.ErrConflict
		e.Msg = "someone else created the Secret after the bot found it missing; nothing of theirs was overwritten"
	case apierrors.IsForbidden(err):
		e.Kind = delivery.ErrRejected
		e.Msg = fmt.Sprintf("Kubernetes refused to %s Secret %s in namespace %s (403 Forbidden): %s", verb, t.cfg.Name, t.cfg.Namespace, server)
	case apierrors.IsUnauthorized(err):
		e.Kind = delivery.ErrRejected
		e.Msg = fmt.Sprintf("the Kubernetes API server at %s did not accept the bot's credentials (401 Unauthorized): the token is wrong or has expired", t.host)
	case apierrors.IsNotFound(err) && verb == "update":
		// Deleted between the read and the write: the next attempt creates it afresh.
		e.Kind = delivery.ErrConflict
		e.Msg = "someone else deleted the Secret after the bot read it"
	case apierrors.IsNotFound(err) && verb == "create":
		// The only thing a create can find missing is the namespace it creates in.
		e.Kind = delivery.ErrRejected
		e.Msg = fmt.Sprintf("namespace %s does not exist: %s", t.cfg.Namespace, server)
	case apierrors.IsNotFound(err):
		e.Kind = delivery.ErrRejected
		e.Msg = fmt.Sprintf("not found (404): %s", server)
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsRequestEntityTooLargeError(err),
		apierrors.IsMethodNotSupported(err), apierrors.IsNotAcceptable(err), apierrors.IsUnsupportedMediaType(err):
		e.Kind = delivery.ErrRejected
		e.Msg = fmt.Sprintf("the API server rejected the request (%d %s): %s", e.Code, status.Status().Reason, server)
	default:
		// 429, 500, 503, 504 and the like: the API server or etcd is overloaded or restarting.
		e.Msg = fmt.Sprintf("the API server answered %d %s: %s", e.Code, status.Status().Reason, server)
	}
	return e
}

// transportMessage describes an error that kept a request from getting an answer. client-go
// returns a *url.Error whose text repeats the method and the whole URL; the part worth reading
// is the cause (connection refused, no route to host, a certificate error).
func transportMessage(host string, err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Sprintf("cannot reach the Kubernetes API server at %s: %v", host, err)
}
