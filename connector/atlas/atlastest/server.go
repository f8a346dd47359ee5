package atlastest

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"mongobot/connector/mongotest"
)

// The structure of Atlas's OpenAPI document for database users and custom roles: the
// official document's paths and components with every description, example and vendor
// extension removed (names, types, required fields, enums, media types).
//
//go:embed spec/atlas-admin-api-v2-database-users.structure.json
var spec []byte

// ProjectID is the stand-in's one project.
const ProjectID = "5f0c0ffee0ddba11de7ec7ed"

// Realm is the realm of Atlas's Digest challenge.
const Realm = "MMS Public API"

// Options configure a stand-in.
type Options struct {
	// ClientID and ClientSecret are the service account it accepts; PublicKey and PrivateKey
	// the API key. Empty: that scheme is refused.
	ClientID, ClientSecret string
	PublicKey, PrivateKey  string
	// TokenTTL is how long an access token lives (default 1h).
	TokenTTL time.Duration
	// Cluster, when set, is where accepted changes are applied, after ApplyDelay: Atlas
	// accepts a change, then its clusters apply it.
	Cluster    *mongotest.Server
	ApplyDelay time.Duration
	// ReadOnly makes the credentials those of a Project Read Only member: changes get 403.
	ReadOnly bool
}

// Server is the stand-in. Every request it receives and every response it sends is validated
// against the spec; a violation fails the test that made the server.
type Server struct {
	t      testing.TB
	o      Options
	http   *httptest.Server
	router routers.Router

	mu       sync.Mutex
	users    map[string]*stored // "db/name"
	custom   []string           // custom role names
	tokens   map[string]time.Time
	nonces   map[string]bool
	limited  int // how many next API calls answer 429
	fail     *failure
	calls    []string
	applying sync.WaitGroup
	applied  []string
}

type stored struct {
	raw  map[string]any // the user as Atlas returns it (no password, no groupId)
	pwd  string
	when time.Time
}

// New starts a stand-in; it stops with the test.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	if o.TokenTTL <= 0 {
		o.TokenTTL = time.Hour
	}
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		t.Fatalf("atlastest: load the spec: %v", err)
	}
	// OpenAPI requires every response to have a description, and the structure file has none
	// (they are prose, left out): a placeholder stands in for each before the document is
	// validated.
	removed := "(description removed)"
	for _, r := range doc.Components.Responses {
		if r.Value != nil && r.Value.Description == nil {
			r.Value.Description = &removed
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, r := range op.Responses.Map() {
				if r.Value != nil && r.Value.Description == nil {
					r.Value.Description = &removed
				}
			}
		}
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("atlastest: the spec does not validate: %v", err)
	}
	// The spec's roleName enum ends with the placeholder "<a custom role name>", and its
	// description allows any custom role's name: a real custom role would fail the enum.
	// The enum is dropped, and the handler checks role names itself.
	if r := doc.Components.Schemas["DatabaseUserRole"]; r != nil && r.Value.Properties["roleName"] != nil {
		r.Value.Properties["roleName"].Value.Enum = nil
	}
	s := &Server{t: t, o: o, users: map[string]*stored{}, tokens: map[string]time.Time{}, nonces: map[string]bool{}}
	s.http = httptest.NewServer(http.HandlerFunc(s.serve))
	doc.Servers = openapi3.Servers{{URL: s.http.URL}}
	if s.router, err = gorillamux.NewRouter(doc); err != nil {
		t.Fatalf("atlastest: router: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// URL is the base URL to give the client (BaseURL).
func (s *Server) URL() string { return s.http.URL }

// Close waits for pending applies and stops the server.
func (s *Server) Close() {
	s.applying.Wait()
	s.http.Close()
}

// failure is the next answer a method gets instead of its own.
type failure struct {
	method  string
	status  int
	applied bool
}

// FailNext makes the next call with method answer status (a 502, say); with applied, the
// change is made first, as when a gateway fails after Atlas applied it.
func (s *Server) FailNext(method string, status int, applied bool) {
	s.mu.Lock()
	s.fail = &failure{method: method, status: status, applied: applied}
	s.mu.Unlock()
}

// AddCustomRole gives the project a custom role, as made in Atlas's UI.
func (s *Server) AddCustomRole(name string) {
	s.mu.Lock()
	s.custom = append(s.custom, name)
	s.mu.Unlock()
}

// RateLimit makes the next n API calls answer 429 with Retry-After: 1.
func (s *Server) RateLimit(n int) {
	s.mu.Lock()
	s.limited = n
	s.mu.Unlock()
}

// Calls are the authenticated API calls served, "METHOD path", in order.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Applied are the changes applied to the cluster so far, "create|update|delete db/name".
func (s *Server) Applied() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.applied)
}

// WaitApplied waits for every accepted change to reach the cluster.
func (s *Server) WaitApplied() { s.applying.Wait() }

// Expire deletes the users whose deleteAfterDate is at or before now, as Atlas does by itself.
func (s *Server) Expire(now time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone []string
	for k, u := range s.users {
		if d, ok := u.raw["deleteAfterDate"].(string); ok {
			if at, err := time.Parse(time.RFC3339, d); err == nil && !at.After(now) {
				delete(s.users, k)
				gone = append(gone, k)
				s.apply("delete", u, "")
			}
		}
	}
	return gone
}

// recorder keeps a response so that it can be validated before it is sent.
type recorder struct {
	status int
	header http.Header
	body   bytes.Buffer
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/api/oauth/token" {
		// Not in the spec (it names the token URL only): answered as OAuth 2.0 says.
		s.token(w, r)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(raw))
	route, params, err := s.router.FindRoute(r)
	if err != nil {
		s.t.Errorf("atlastest: %s %s is not an operation of the spec: %v", r.Method, r.URL.Path, err)
		writeError(w, http.StatusNotFound, "RESOURCE_NOT_FOUND", "no such operation")
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if !s.authorized(w, r) {
		return
	}
	s.mu.Lock()
	s.calls = append(s.calls, r.Method+" "+r.URL.Path)
	limited := s.limited > 0
	if limited {
		s.limited--
	}
	s.mu.Unlock()
	if limited {
		// No database-user operation lists a 429 (the spec is silent); Atlas's documentation
		// says rate-limited calls answer 429 RATE_LIMITED, with Retry-After. Not validated.
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "RATE_LIMITED", "rate limited")
		return
	}
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
		s.t.Errorf("atlastest: %s %s violates the spec: %v", r.Method, r.URL.Path, err)
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "the request does not match the API's schema")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	rec := &recorder{header: http.Header{}}
	s.mu.Lock()
	f := s.fail
	if f != nil && f.method == r.Method {
		s.fail = nil
	} else {
		f = nil
	}
	s.mu.Unlock()
	if f == nil || f.applied {
		s.handle(rec, r, params, raw)
	}
	if f != nil {
		// Every database-user operation lists 500 with ApiError: validated like the rest.
		rec = &recorder{header: http.Header{}}
		rec.fail(f.status, "UNEXPECTED_ERROR", "the stand-in failed on purpose")
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.status, Header: rec.header,
		Options: &openapi3filter.Options{ExcludeWriteOnlyValidations: true, IncludeResponseStatus: true}}
	out.SetBodyBytes(rec.body.Bytes())
	// A 502 or 504 comes from a gateway in front of Atlas, not from the API: not the spec's.
	gateway := f != nil && (f.status == http.StatusBadGateway || f.status == http.StatusGatewayTimeout)
	if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil && !gateway {
		s.t.Errorf("atlastest: the stand-in's answer to %s %s violates the spec: %v", r.Method, r.URL.Path, err)
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

const mediaType = "application/vnd.atlas.2023-01-01+json"

func (rec *recorder) json(status int, v any) {
	rec.status = status
	rec.header.Set("Content-Type", mediaType)
	_ = json.NewEncoder(&rec.body).Encode(v)
}

func (rec *recorder) fail(status int, code, detail string) {
	rec.status = status
	rec.header.Set("Content-Type", "application/json")
	_ = json.NewEncoder(&rec.body).Encode(apiError(status, code, detail))
}

func apiError(status int, code, detail string) map[string]any {
	return map[string]any{"error": status, "errorCode": code, "detail": detail, "reason": http.StatusText(status)}
}

func writeError(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(apiError(status, code, detail))
}

// handle answers a validated request.
func (s *Server) handle(rec *recorder, r *http.Request, params map[string]string, raw []byte) {
	if params["groupId"] != ProjectID {
		rec.fail(http.StatusNotFound, "GROUP_NOT_FOUND", "no project "+params["groupId"])
		return
	}
	key := params["databaseName"] + "/" + params["username"]
	if s.o.ReadOnly && r.Method != http.MethodGet {
		rec.fail(http.StatusForbidden, "USER_CANNOT_ACCESS_RESOURCE", "the credential lacks the permission for "+r.Method+" "+r.URL.Path)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.HasSuffix(r.URL.Path, "/customDBRoles/roles") && r.Method == http.MethodGet {
		roles := []any{}
		for _, n := range s.custom {
			roles = append(roles, map[string]any{"roleName": n, "actions": []any{}, "inheritedRoles": []any{}})
		}
		rec.json(http.StatusOK, roles)
		return
	}
	st, exists := s.users[key]
	if params["username"] != "" && !exists {
		rec.fail(http.StatusNotFound, "USERNAME_NOT_FOUND", "no user "+params["username"]+" in "+params["databaseName"])
		return
	}
	switch {
	case r.Method == http.MethodGet && params["username"] == "":
		s.list(rec, r)
	case r.Method == http.MethodPost:
		var u map[string]any
		_ = json.Unmarshal(raw, &u)
		k := str(u["databaseName"]) + "/" + str(u["username"])
		if _, ok := s.users[k]; ok {
			rec.fail(http.StatusConflict, "USER_ALREADY_EXISTS", "the user "+str(u["username"])+" already exists")
			return
		}
		if msg := checkUser(u, time.Now(), s.custom); msg != "" {
			rec.fail(http.StatusBadRequest, "INVALID_ATTRIBUTE", msg)
			return
		}
		nu := &stored{pwd: str(u["password"]), when: time.Now(), raw: public(u)}
		s.users[k] = nu
		s.apply("create", nu, nu.pwd)
		rec.json(http.StatusCreated, nu.raw)
	case r.Method == http.MethodGet:
		rec.json(http.StatusOK, st.raw)
	case r.Method == http.MethodPatch:
		var u map[string]any
		_ = json.Unmarshal(raw, &u)
		if msg := checkUser(u, time.Now(), s.custom); msg != "" {
			rec.fail(http.StatusBadRequest, "INVALID_ATTRIBUTE", msg)
			return
		}
		// Fields given replace the stored ones whole (lists included); fields left out stay.
		for k, v := range public(u) {
			st.raw[k] = v
		}
		pwd := str(u["password"])
		if pwd != "" {
			st.pwd = pwd
		}
		s.apply("update", st, pwd)
		rec.json(http.StatusOK, st.raw)
	case r.Method == http.MethodDelete:
		delete(s.users, key)
		s.apply("delete", st, "")
		// The spec gives the 204 the versioned media type as its content (and no schema):
		// the header is sent with an empty body.
		rec.status = http.StatusNoContent
		rec.header.Set("Content-Type", mediaType)
	default:
		rec.fail(http.StatusMethodNotAllowed, "UNEXPECTED_ERROR", "not served by the stand-in")
	}
}

// builtinRoles are Atlas's built-in role names (the spec's enum without its placeholder).
var builtinRoles = []string{"atlasAdmin", "backup", "clusterMonitor", "dbAdmin", "dbAdminAnyDatabase", "enableSharding",
	"read", "readAnyDatabase", "readWrite", "readWriteAnyDatabase"}

// checkUser checks what the schema cannot: role names, and deleteAfterDate in the future and
// at most a week away (CloudDatabaseUser.deleteAfterDate's description).
func checkUser(u map[string]any, now time.Time, custom []string) string {
	roles, _ := u["roles"].([]any)
	for _, x := range roles {
		r, _ := x.(map[string]any)
		if !slices.Contains(builtinRoles, str(r["roleName"])) && !slices.Contains(custom, str(r["roleName"])) {
			return "no role " + str(r["roleName"]) + " in the project"
		}
	}
	if d := str(u["deleteAfterDate"]); d != "" {
		at, err := time.Parse(time.RFC3339, d)
		if err != nil || !at.After(now) || at.After(now.Add(7*24*time.Hour)) {
			return "deleteAfterDate must be in the future and at most a week away"
		}
	}
	return ""
}

// public is u as Atlas returns it: without its writeOnly fields.
func public(u map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range u {
		if k != "password" && k != "groupId" {
			out[k] = v
		}
	}
	return out
}

func (s *Server) list(rec *recorder, r *http.Request) {
	per, page := 100, 1
	if v, err := strconv.Atoi(r.URL.Query().Get("itemsPerPage")); err == nil {
		per = v
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("pageNum")); err == nil {
		page = v
	}
	keys := make([]string, 0, len(s.users))
	for k := range s.users {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	results := []any{}
	for i := (page - 1) * per; i < len(keys) && i < page*per; i++ {
		results = append(results, s.users[keys[i]].raw)
	}
	body := map[string]any{"results": results, "links": []any{}}
	if r.URL.Query().Get("includeCount") != "false" {
		body["totalCount"] = len(keys)
	}
	rec.json(http.StatusOK, body)
}

// apply schedules the change to reach the cluster after ApplyDelay. Call it with s.mu held.
func (s *Server) apply(kind string, st *stored, pwd string) {
	if s.o.Cluster == nil {
		return
	}
	name, db := str(st.raw["username"]), str(st.raw["databaseName"])
	var roles []mongotest.Role
	if rs, ok := st.raw["roles"].([]any); ok {
		for _, x := range rs {
			r, _ := x.(map[string]any)
			roles = append(roles, mongotest.Role{Role: str(r["roleName"]), DB: str(r["databaseName"])})
		}
	}
	s.applying.Add(1)
	time.AfterFunc(s.o.ApplyDelay, func() {
		defer s.applying.Done()
		var err error
		switch kind {
		case "create":
			err = s.o.Cluster.CreateUser(name, pwd, db, roles)
		case "update":
			if roles == nil {
				roles = []mongotest.Role{}
			}
			err = s.o.Cluster.UpdateUser(name, db, pwd, roles)
		case "delete":
			err = s.o.Cluster.RemoveUser(name, db)
		}
		if err != nil {
			s.t.Logf("atlastest: applying %s %s/%s to the cluster: %v", kind, db, name, err)
			return
		}
		s.mu.Lock()
		s.applied = append(s.applied, kind+" "+db+"/"+name)
		s.mu.Unlock()
	})
}

func str(v any) string { s, _ := v.(string); return s }

// authorized checks the request's credential the way Atlas does: a bearer token from the
// token endpoint, or HTTP Digest (a 401 with a fresh nonce first). It answers 401 itself.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(h, "Bearer ") && s.o.ClientID != "":
		s.mu.Lock()
		exp, ok := s.tokens[strings.TrimPrefix(h, "Bearer ")]
		s.mu.Unlock()
		if ok && time.Now().Before(exp) {
			return true
		}
		writeError(w, http.StatusUnauthorized, "NOT_ORG_GROUP_CREATOR", "the access token is not valid or has expired")
		return false
	case strings.HasPrefix(h, "Digest ") && s.o.PublicKey != "":
		if s.digestOK(r, h) {
			return true
		}
	}
	nonce := random()
	s.mu.Lock()
	s.nonces[nonce] = true
	s.mu.Unlock()
	// The format mongodb-forks/digest parses: fields separated by ", ".
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Digest realm="%s", domain="", nonce="%s", algorithm=MD5, qop="auth", stale=false`, Realm, nonce))
	writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "you are not authorized for this resource")
	return false
}

// digestOK checks an RFC 2617 qop=auth response: MD5(HA1:nonce:nc:cnonce:qop:HA2) with
// HA1 = MD5(user:realm:password) and HA2 = MD5(method:uri), on a nonce the server gave.
func (s *Server) digestOK(r *http.Request, h string) bool {
	f := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(h, "Digest "), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			f[k] = strings.Trim(v, `"`)
		}
	}
	s.mu.Lock()
	known := s.nonces[f["nonce"]]
	s.mu.Unlock()
	if !known || f["username"] != s.o.PublicKey || f["realm"] != Realm || f["qop"] != "auth" || f["uri"] != r.URL.RequestURI() {
		return false
	}
	md := func(x string) string { sum := md5.Sum([]byte(x)); return hex.EncodeToString(sum[:]) }
	ha1 := md(f["username"] + ":" + Realm + ":" + s.o.PrivateKey)
	ha2 := md(r.Method + ":" + f["uri"])
	return f["response"] == md(ha1+":"+f["nonce"]+":"+f["nc"]+":"+f["cnonce"]+":auth:"+ha2)
}

// token is the OAuth 2.0 token endpoint: client credentials in Basic auth (or the form), a
// bearer token with an expiry.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	id, sec, ok := r.BasicAuth()
	if !ok {
		id, sec = r.FormValue("client_id"), r.FormValue("client_secret")
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost || r.FormValue("grant_type") != "client_credentials" {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "unsupported_grant_type"})
		return
	}
	if s.o.ClientID == "" || id != s.o.ClientID || sec != s.o.ClientSecret {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client"})
		return
	}
	tok := random()
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(s.o.TokenTTL)
	s.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(s.o.TokenTTL.Seconds())})
}

func random() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
