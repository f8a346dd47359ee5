package vaulttest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ErrNotFound is returned by Read when the secret does not exist, or its latest version was
// deleted.
var ErrNotFound = errors.New("vaulttest: no such secret")

// StatusError is Vault's answer when it is not a success.
type StatusError struct {
	Method, Path string
	Status       int
	Errors       []string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("vaulttest: %s /v1/%s: %d %s", e.Method, e.Path, e.Status, strings.Join(e.Errors, "; "))
}

// Call sends one request to /v1/path as root and returns Vault's whole answer, decoded
// (nil when there is no body; numbers as json.Number). It is for the odd call a test needs
// that has no helper.
func (s *Server) Call(method, path string, body any) (map[string]any, error) {
	return s.CallAs(s.RootToken, method, path, body)
}

// CallAs is Call with another token ("" for none).
func (s *Server) CallAs(token, method, path string, body any) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.Addr+"/v1/"+path, rd)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	var errs []string
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&out); err != nil {
			errs = []string{strings.TrimSpace(string(raw))}
		}
	}
	if resp.StatusCode >= 300 {
		if list, ok := out["errors"].([]any); ok {
			for _, e := range list {
				errs = append(errs, fmt.Sprint(e))
			}
		}
		return out, &StatusError{Method: method, Path: path, Status: resp.StatusCode, Errors: errs}
	}
	return out, nil
}

// data is the "data" (or, for logins and token creation, "auth") object of an answer.
func dataOf(out map[string]any) map[string]any {
	if d, ok := out["data"].(map[string]any); ok {
		return d
	}
	d, _ := out["auth"].(map[string]any)
	return d
}

// Write writes data as a new version of secret/<path> on the default KV v2 mount, without
// check-and-set, as an application team's script would, and returns the version it made.
func (s *Server) Write(path string, data map[string]string) (int, error) {
	out, err := s.Call(http.MethodPost, "secret/data/"+path, map[string]any{"data": data})
	if err != nil {
		return 0, err
	}
	return number(dataOf(out)["version"])
}

// Read reads the latest version of secret/<path> as an application would, with every value
// as a string (as JSON numbers and objects print). It returns ErrNotFound when there is none.
func (s *Server) Read(path string) (map[string]string, int, error) {
	out, err := s.Call(http.MethodGet, "secret/data/"+path, nil)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	out = dataOf(out)
	meta, _ := out["metadata"].(map[string]any)
	version, err := number(meta["version"])
	if err != nil {
		return nil, 0, err
	}
	raw, _ := out["data"].(map[string]any)
	if raw == nil {
		return nil, version, ErrNotFound
	}
	data := make(map[string]string, len(raw))
	for k, v := range raw {
		if str, ok := v.(string); ok {
			data[k] = str
		} else {
			b, _ := json.Marshal(v)
			data[k] = string(b)
		}
	}
	return data, version, nil
}

// Policy writes the ACL policy name.
func (s *Server) Policy(name, hcl string) error {
	_, err := s.Call(http.MethodPut, "sys/policies/acl/"+name, map[string]any{"policy": hcl})
	return err
}

// AppRole enables the approle auth method at auth/approle (once), writes policy as the ACL
// policy name, makes a role name whose tokens carry it, and returns the role's ID and a new
// secret ID.
func (s *Server) AppRole(name, policy string) (roleID, secretID string, err error) {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	s.mu.Lock()
	enabled := s.approle
	s.mu.Unlock()
	if !enabled {
		if _, err := s.Call(http.MethodPost, "sys/auth/approle", map[string]any{"type": "approle"}); err != nil {
			return "", "", err
		}
		s.mu.Lock()
		s.approle = true
		s.mu.Unlock()
	}
	if err := s.Policy(name, policy); err != nil {
		return "", "", err
	}
	if _, err := s.Call(http.MethodPost, "auth/approle/role/"+name, map[string]any{"token_policies": []string{name}}); err != nil {
		return "", "", err
	}
	out, err := s.Call(http.MethodGet, "auth/approle/role/"+name+"/role-id", nil)
	if err != nil {
		return "", "", err
	}
	roleID, _ = dataOf(out)["role_id"].(string)
	out, err = s.Call(http.MethodPost, "auth/approle/role/"+name+"/secret-id", nil)
	if err != nil {
		return "", "", err
	}
	secretID, _ = dataOf(out)["secret_id"].(string)
	if roleID == "" || secretID == "" {
		return "", "", errors.New("vaulttest: approle gave no role_id or secret_id")
	}
	return roleID, secretID, nil
}

// Token creates a child token of the root token with these policies (and "default").
func (s *Server) Token(policies ...string) (string, error) {
	out, err := s.Call(http.MethodPost, "auth/token/create", map[string]any{"policies": policies})
	if err != nil {
		return "", err
	}
	tok, _ := dataOf(out)["client_token"].(string)
	if tok == "" {
		return "", errors.New("vaulttest: auth/token/create gave no token")
	}
	return tok, nil
}

// RevokeLogins revokes every token made by a login at auth/<mount>, the way an operator
// cuts off a compromised role; to its holder it looks like a token that expired.
func (s *Server) RevokeLogins(mount string) error {
	_, err := s.Call(http.MethodPut, "sys/leases/revoke-prefix/auth/"+mount+"/login", nil)
	return err
}

// RevokeToken revokes one token (and its children).
func (s *Server) RevokeToken(token string) error {
	_, err := s.Call(http.MethodPost, "auth/token/revoke", map[string]any{"token": token})
	return err
}

// EnableKV mounts a KV secrets engine of the given version (1 or 2) at path.
func (s *Server) EnableKV(path string, version int) error {
	_, err := s.Call(http.MethodPost, "sys/mounts/"+path, map[string]any{
		"type": "kv", "options": map[string]string{"version": fmt.Sprint(version)},
	})
	return err
}

func number(v any) (int, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("vaulttest: %v is not a number", v)
	}
	i, err := n.Int64()
	return int(i), err
}
