package kubetest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// StatusError is a request the API server answered with an error status.
type StatusError struct {
	Code    int    // the HTTP status
	Reason  string // the Status object's reason, e.g. "AlreadyExists", "Conflict", "Forbidden"
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("kubetest: %d %s: %s", e.Code, e.Reason, e.Message)
}

// IsReason reports whether err is a *StatusError with that reason.
func IsReason(err error, reason string) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Reason == reason
}

// Do sends a request as the admin: in (if not nil) as the JSON body, and the JSON answer decoded
// into out (if not nil). An error status comes back as a *StatusError.
func (s *Server) Do(method, path string, in, out any) error {
	return s.do(s.adminToken, method, path, in, out)
}

func (s *Server) do(token, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	b, code, err := s.raw(token, method, path, body)
	if err != nil {
		return err
	}
	if code < 200 || code > 299 {
		var st struct{ Reason, Message string }
		if json.Unmarshal(b, &st) != nil || st.Message == "" {
			st.Message = string(b)
		}
		return &StatusError{Code: code, Reason: st.Reason, Message: st.Message}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("kubetest: %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

func (s *Server) raw(token, method, path string, body []byte) ([]byte, int, error) {
	req, err := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("kubetest: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

// object is the part of a Kubernetes object the helpers need to write.
type object map[string]any

// Namespace creates a namespace; one that exists already is fine.
func (s *Server) Namespace(name string) error {
	err := s.Do(http.MethodPost, "/api/v1/namespaces", object{
		"apiVersion": "v1", "kind": "Namespace", "metadata": object{"name": name},
	}, nil)
	if IsReason(err, "AlreadyExists") {
		return nil
	}
	return err
}

// Secret reads a Secret as the admin: its data, decoded, and its resourceVersion.
func (s *Server) Secret(ns, name string) (data map[string]string, resourceVersion string, err error) {
	var sec struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Data map[string]string `json:"data"`
	}
	if err := s.Do(http.MethodGet, secretPath(ns, name), nil, &sec); err != nil {
		return nil, "", err
	}
	data = map[string]string{}
	for k, v := range sec.Data {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, "", fmt.Errorf("kubetest: Secret %s/%s key %s: %w", ns, name, k, err)
		}
		data[k] = string(b)
	}
	return data, sec.Metadata.ResourceVersion, nil
}

// PutSecret edits a Secret the way an application team would (kubectl edit): it sets the keys
// in data, keeps every other key and field as it was, and writes with the resourceVersion it
// read. A Secret that does not exist is created, type Opaque.
func (s *Server) PutSecret(ns, name string, data map[string]string) error {
	var sec object
	err := s.Do(http.MethodGet, secretPath(ns, name), nil, &sec)
	if IsReason(err, "NotFound") {
		return s.Do(http.MethodPost, "/api/v1/namespaces/"+ns+"/secrets", object{
			"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
			"metadata": object{"name": name}, "data": encode(data, nil),
		}, nil)
	}
	if err != nil {
		return err
	}
	old, _ := sec["data"].(map[string]any)
	sec["data"] = encode(data, old)
	return s.Do(http.MethodPut, secretPath(ns, name), sec, nil)
}

func encode(data map[string]string, into map[string]any) map[string]any {
	if into == nil {
		into = map[string]any{}
	}
	for k, v := range data {
		into[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	return into
}

func secretPath(ns, name string) string { return "/api/v1/namespaces/" + ns + "/secrets/" + name }

// ServiceAccountToken returns a token for service account sa in namespace ns, issued by the
// TokenRequest API (an hour long, for the API server's own audience), creating the account if
// it does not exist. The API server accepts it as user system:serviceaccount:<ns>:<sa>, and
// answers a TokenReview of it (as Vault's Kubernetes auth method sends) with that user.
func (s *Server) ServiceAccountToken(ns, sa string) (string, error) {
	err := s.Do(http.MethodPost, "/api/v1/namespaces/"+ns+"/serviceaccounts", object{
		"apiVersion": "v1", "kind": "ServiceAccount", "metadata": object{"name": sa},
	}, nil)
	if err != nil && !IsReason(err, "AlreadyExists") {
		return "", err
	}
	var tr struct {
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	err = s.Do(http.MethodPost, "/api/v1/namespaces/"+ns+"/serviceaccounts/"+sa+"/token", object{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"spec": object{"expirationSeconds": 3600},
	}, &tr)
	if err != nil {
		return "", err
	}
	if tr.Status.Token == "" {
		return "", fmt.Errorf("kubetest: TokenRequest for %s/%s returned no token", ns, sa)
	}
	return tr.Status.Token, nil
}

// TokenReview asks the API server, as the admin, whose token this is (the call Vault's
// Kubernetes auth method makes to check a login).
func (s *Server) TokenReview(token string) (authenticated bool, user string, err error) {
	var tr struct {
		Status struct {
			Authenticated bool `json:"authenticated"`
			User          struct {
				Username string `json:"username"`
			} `json:"user"`
			Error string `json:"error"`
		} `json:"status"`
	}
	err = s.Do(http.MethodPost, "/apis/authentication.k8s.io/v1/tokenreviews", object{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": object{"token": token},
	}, &tr)
	if err != nil {
		return false, "", err
	}
	return tr.Status.Authenticated, tr.Status.User.Username, nil
}

// UserKubeconfig writes a kubeconfig for an identity that may do only verbs on Secrets in ns:
// service account user in ns, bound by a Role and RoleBinding named "kubetest-<user>" (replaced
// if they exist; none for no verbs), with a token from ServiceAccountToken. Like every
// authenticated identity, it may also review its own access (SelfSubjectAccessReview). It returns once the API server's
// authorizer grants the verbs, since RBAC reaches it through a watch, a moment after the write.
func (s *Server) UserKubeconfig(user, ns string, verbs []string) (path string, err error) {
	token, err := s.ServiceAccountToken(ns, user)
	if err != nil {
		return "", err
	}
	rbac := "/apis/rbac.authorization.k8s.io/v1/namespaces/" + ns
	name := "kubetest-" + user
	if len(verbs) == 0 {
		// A Role must grant something: an identity with no rights has no Role at all.
		for _, kind := range []string{"/rolebindings/", "/roles/"} {
			if err := s.Do(http.MethodDelete, rbac+kind+name, nil, nil); err != nil && !IsReason(err, "NotFound") {
				return "", err
			}
		}
		return s.userKubeconfig(user, ns, token)
	}
	err = s.replace(rbac+"/roles", name, object{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": object{"name": name},
		"rules": []object{{"apiGroups": []string{""}, "resources": []string{"secrets"}, "verbs": verbs}},
	})
	if err != nil {
		return "", err
	}
	err = s.replace(rbac+"/rolebindings", name, object{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": object{"name": name},
		"roleRef":  object{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
		"subjects": []object{{"kind": "ServiceAccount", "name": user, "namespace": ns}},
	})
	if err != nil {
		return "", err
	}
	if err := s.waitAllowed(token, ns, verbs); err != nil {
		return "", err
	}
	return s.userKubeconfig(user, ns, token)
}

func (s *Server) userKubeconfig(user, ns, token string) (path string, err error) {
	s.mu.Lock()
	s.sequence++
	path = filepath.Join(s.Dir, fmt.Sprintf("user%d-%s-%s.kubeconfig", s.sequence, ns, user))
	s.mu.Unlock()
	if err := s.writeKubeconfig(path, "kubetest-"+user, user, token, ns); err != nil {
		return "", err
	}
	return path, nil
}

// replace creates an object, or replaces the one of that name.
func (s *Server) replace(collection, name string, obj object) error {
	err := s.Do(http.MethodPost, collection, obj, nil)
	if !IsReason(err, "AlreadyExists") {
		return err
	}
	var cur struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := s.Do(http.MethodGet, collection+"/"+name, nil, &cur); err != nil {
		return err
	}
	obj["metadata"].(object)["resourceVersion"] = cur.Metadata.ResourceVersion
	return s.Do(http.MethodPut, collection+"/"+name, obj, nil)
}

// waitAllowed asks, as the token's owner, until the API server says it may do every verb on
// Secrets in ns (and nothing else is checked: a test may have granted an empty list).
func (s *Server) waitAllowed(token, ns string, verbs []string) error {
	deadline := time.Now().Add(10 * time.Second)
	for _, verb := range slices.Compact(slices.Sorted(slices.Values(verbs))) {
		for {
			var r struct {
				Status struct {
					Allowed bool `json:"allowed"`
				} `json:"status"`
			}
			err := s.do(token, http.MethodPost, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", object{
				"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
				"spec": object{"resourceAttributes": object{"namespace": ns, "verb": verb, "version": "v1", "resource": "secrets"}},
			}, &r)
			if err != nil && !IsReason(err, "Unauthorized") { // the token's account may not be seen yet
				return err
			}
			if err == nil && r.Status.Allowed {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("kubetest: RBAC still does not allow %s on secrets in %s after 10s", verb, ns)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// writeKubeconfig writes a kubeconfig with one cluster (this server, verified against CAFile),
// one user (a bearer token) and one context, the current one. JSON is valid YAML, and
// encoding/json needs no dependency.
func (s *Server) writeKubeconfig(path, context, user, token, ns string) error {
	cfg := object{
		"apiVersion": "v1", "kind": "Config",
		"clusters":        []object{{"name": "kubetest", "cluster": object{"server": s.URL, "certificate-authority": s.CAFile}}},
		"users":           []object{{"name": user, "user": object{"token": token}}},
		"contexts":        []object{{"name": context, "context": object{"cluster": "kubetest", "user": user, "namespace": ns}}},
		"current-context": context,
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
