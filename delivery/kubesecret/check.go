package kubesecret

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mongobot/delivery"
	"mongobot/secret"
)

// Check asks the API server (SelfSubjectAccessReview, which every authenticated identity may
// create) whether the bot's identity may get and update the Secret, and create it if it does
// not exist yet. It writes nothing. A refusal wraps delivery.ErrRejected and names the verbs.
func (t *Target) Check(ctx context.Context) error {
	op := "check access to Secret " + t.ref()
	allowed := map[string]bool{}
	var notes []string
	for _, verb := range []string{"get", "update", "create"} {
		attrs := &authorizationv1.ResourceAttributes{
			Namespace: t.cfg.Namespace, Verb: verb, Version: "v1", Resource: "secrets", Name: t.cfg.Name,
		}
		if verb == "create" {
			// A create request has no name yet when it is authorized, so RBAC rules limited
			// by resourceNames never allow it; asking with the name would say they do.
			attrs.Name = ""
		}
		review := &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs},
		}
		cctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
		r, err := t.authz.SelfSubjectAccessReviews().Create(cctx, review, metav1.CreateOptions{})
		cancel()
		if err != nil {
			return t.fail(op, "review its own access to", err, secret.String{})
		}
		allowed[verb] = r.Status.Allowed
		if r.Status.EvaluationError != "" {
			notes = append(notes, fmt.Sprintf("%s: %s", verb, r.Status.EvaluationError))
		}
	}
	var refused []string
	for _, verb := range []string{"get", "update"} {
		if !allowed[verb] {
			refused = append(refused, verb)
		}
	}
	if !allowed["create"] {
		// Creating matters only for a Secret that is not there yet, which only a get can tell.
		if !allowed["get"] {
			refused = append(refused, "create (needed only if the Secret does not exist yet)")
		} else if _, err := t.get(ctx); apierrors.IsNotFound(err) {
			refused = append(refused, "create (the Secret does not exist yet)")
		} else if err != nil {
			return t.fail(op, "get", err, secret.String{})
		}
	}
	if len(refused) == 0 {
		return nil
	}
	msg := fmt.Sprintf("Kubernetes does not allow the bot to %s Secret %s in namespace %s", strings.Join(refused, ", "), t.cfg.Name, t.cfg.Namespace)
	if len(notes) > 0 {
		msg += " (" + strings.Join(notes, "; ") + ")"
	}
	return &Error{Op: op, Kind: delivery.ErrRejected, Msg: secret.Scrub(msg, t.secrets(secret.String{})...)}
}
