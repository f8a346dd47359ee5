package kubesecret

import (
	"context"
	"crypto/subtle"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mongobot/delivery"
)

const versionPrefix = "resourceVersion "

// Deliver writes c's user name and password into the Secret's two keys and returns the
// resourceVersion the API server gave the write, as "resourceVersion N".
//
// An existing Secret keeps every other key, label and annotation; the write carries the
// resourceVersion that was read, so an edit in between makes it fail with delivery.ErrConflict
// instead of being overwritten. A missing Secret is created (type Opaque, labelled as managed by
// mongobot). Either way the annotation AnnotationEntry records c.Entry.
func (t *Target) Deliver(ctx context.Context, c delivery.Credential) (version string, err error) {
	if c.User == "" || c.Password.Empty() {
		return "", &Error{Op: "deliver to Secret " + t.ref(), Msg: "the credential has no user name or no password", Kind: delivery.ErrRejected}
	}
	s, err := t.get(ctx)
	missing := apierrors.IsNotFound(err)
	if err != nil && !missing {
		return "", t.fail("get Secret "+t.ref(), "get", err, c.Password)
	}
	if !missing && s.Immutable != nil && *s.Immutable {
		return "", &Error{Op: "update Secret " + t.ref(), Kind: delivery.ErrRejected,
			Msg: "the Secret is immutable; the API server refuses any change to its data until someone deletes it"}
	}
	if t.beforeWrite != nil {
		t.beforeWrite()
	}
	entry := strconv.FormatUint(c.Entry, 10)
	if missing {
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name:        t.cfg.Name,
				Namespace:   t.cfg.Namespace,
				Labels:      map[string]string{LabelManagedBy: "mongobot"},
				Annotations: map[string]string{AnnotationEntry: entry},
			},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{
				t.cfg.UsernameKey: []byte(c.User),
				t.cfg.PasswordKey: []byte(c.Password.Reveal()),
			},
		}
		cctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
		defer cancel()
		created, err := t.core.Secrets(t.cfg.Namespace).Create(cctx, s, metav1.CreateOptions{FieldManager: FieldManager})
		if err != nil {
			return "", t.fail("create Secret "+t.ref(), "create", err, c.Password)
		}
		return versionPrefix + created.ResourceVersion, nil
	}
	// s is this call's own copy, decoded from the response: changing it in place is safe.
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	s.Data[t.cfg.UsernameKey] = []byte(c.User)
	s.Data[t.cfg.PasswordKey] = []byte(c.Password.Reveal())
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[AnnotationEntry] = entry
	read := s.ResourceVersion
	uctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	updated, err := t.core.Secrets(t.cfg.Namespace).Update(uctx, s, metav1.UpdateOptions{FieldManager: FieldManager})
	if err != nil {
		e := t.fail("update Secret "+t.ref(), "update", err, c.Password)
		if apierrors.IsConflict(err) {
			e.Msg = fmt.Sprintf("someone else changed the Secret after the bot read it at resourceVersion %s; nothing of theirs was overwritten", read)
		}
		return "", e
	}
	return versionPrefix + updated.ResourceVersion, nil
}

// Verify reads the Secret back and compares its two keys with c. how says which resourceVersion
// was read and whether it is still the one Deliver wrote (version); a later write that left the
// two keys alone (someone adding a key, say) is reported, not counted as a mismatch.
func (t *Target) Verify(ctx context.Context, c delivery.Credential, version string) (how string, err error) {
	written, _ := strings.CutPrefix(version, versionPrefix)
	s, err := t.get(ctx)
	if apierrors.IsNotFound(err) {
		return "", &Error{Op: "read back Secret " + t.ref(), Kind: delivery.ErrMismatch,
			Msg: "the Secret is gone (deleted since it was written)"}
	}
	if err != nil {
		return "", t.fail("read back Secret "+t.ref(), "get", err, c.Password)
	}
	read := "read back resourceVersion " + s.ResourceVersion
	switch {
	case written == "":
		read += " (the version written is not known)"
	case s.ResourceVersion != written:
		read += fmt.Sprintf(" (written at %s, changed since)", written)
	}
	var differ []string
	if string(s.Data[t.cfg.UsernameKey]) != c.User {
		differ = append(differ, fmt.Sprintf("the user name (key %s)", t.cfg.UsernameKey))
	}
	if subtle.ConstantTimeCompare(s.Data[t.cfg.PasswordKey], []byte(c.Password.Reveal())) != 1 {
		differ = append(differ, fmt.Sprintf("the password (key %s)", t.cfg.PasswordKey))
	}
	if len(differ) > 0 {
		return "", &Error{Op: "read back Secret " + t.ref(), Kind: delivery.ErrMismatch,
			Msg: read + ": " + strings.Join(differ, " and ") + " differ from what was written"}
	}
	return read + ": user and password match", nil
}

func (t *Target) get(ctx context.Context) (*corev1.Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	return t.core.Secrets(t.cfg.Namespace).Get(ctx, t.cfg.Name, metav1.GetOptions{})
}
