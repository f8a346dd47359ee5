package atlastest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// catcher is a testing.TB that keeps what the stand-in reports as a violation.
type catcher struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (c *catcher) Errorf(format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, fmt.Sprintf(format, a...))
}

func (c *catcher) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.errs
	c.errs = nil
	return out
}

// The stand-in fails the test when a request breaks the spec: a wrong media type, a field
// of the wrong type, a missing required field, a page size over 500, a malformed project id.
func TestViolationsFailTheTest(t *testing.T) {
	c := &catcher{TB: t}
	s := New(c, Options{ClientID: "id", ClientSecret: "secret"})
	tok := token(t, s)
	send := func(method, path, ctype, body string) int {
		req, _ := http.NewRequest(method, s.URL()+"/api/atlas/v2"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", mediaType)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	users := "/groups/" + ProjectID + "/databaseUsers"
	good := `{"databaseName":"admin","groupId":"` + ProjectID + `","username":"app","password":"long-enough-1"}`
	if code := send("POST", users, mediaType, good); code != http.StatusCreated {
		t.Fatalf("a good create answered %d", code)
	}
	if errs := c.take(); len(errs) != 0 {
		t.Fatalf("a good create reported as a violation: %v", errs)
	}
	for _, bad := range []struct{ name, method, path, ctype, body string }{
		{"media type", "POST", users, "application/json", good},
		{"wrong type", "POST", users, mediaType, `{"databaseName":"admin","groupId":"` + ProjectID + `","username":7}`},
		{"missing groupId", "PATCH", users + "/admin/app", mediaType, `{"databaseName":"admin","username":"app"}`},
		{"bad enum", "POST", users, mediaType, `{"databaseName":"local","groupId":"` + ProjectID + `","username":"x"}`},
		{"page size", "GET", users + "?itemsPerPage=501", "", ""},
		{"project id", "GET", "/groups/not-hex/databaseUsers", "", ""},
	} {
		if code := send(bad.method, bad.path, bad.ctype, bad.body); code != http.StatusBadRequest && code != http.StatusNotFound {
			t.Errorf("%s: answered %d", bad.name, code)
		}
		if errs := c.take(); len(errs) == 0 || !strings.Contains(errs[0], "violates the spec") && !strings.Contains(errs[0], "not an operation") {
			t.Errorf("%s: not reported as a violation (%v)", bad.name, errs)
		}
	}
}

func token(t *testing.T, s *Server) string {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL()+"/api/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.SetBasicAuth("id", "secret")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("token: %v", err)
	}
	return body.AccessToken
}
