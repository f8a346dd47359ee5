package atlas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"mongobot/secret"
)

// MediaType is the only version the database-user operations have (every one of them lists
// only this key under its content).
const MediaType = "application/vnd.atlas.2023-01-01+json"

// DefaultBaseURL is Atlas's (Atlas for Government has its own).
const DefaultBaseURL = "https://cloud.mongodb.com"

// Config is what a client needs. Exactly one credential: ClientID and ClientSecret (a service
// account), or PublicKey and PrivateKey (an API key).
type Config struct {
	// BaseURL is the API's origin (default DefaultBaseURL), without /api/atlas/v2.
	BaseURL   string
	ProjectID string
	ClientID  string
	// ClientSecret and PrivateKey are secrets: never logged, never in an error.
	ClientSecret secret.String
	PublicKey    string
	PrivateKey   secret.String
	// Timeout bounds one call, retries included (default 30s).
	Timeout time.Duration
	// Retries is how many times a 429 or a 5xx answer is retried (default 4), backing off
	// from RetryBase (default 1s) doubling, or as Retry-After says.
	Retries   int
	RetryBase time.Duration
	// HTTPClient is the transport under the authentication (default http.DefaultTransport);
	// tests give one that trusts their server.
	Transport http.RoundTripper
}

// Client calls the Administration API for one project.
type Client struct {
	cfg  Config
	http *http.Client
}

var projectID = regexp.MustCompile(`^[a-f0-9]{24}$`)

// New makes a client; nothing is sent until a call.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if u, err := url.Parse(cfg.BaseURL); err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("atlas: base URL %q is not a URL like %s", cfg.BaseURL, DefaultBaseURL)
	}
	if !projectID.MatchString(cfg.ProjectID) {
		return nil, fmt.Errorf("atlas: project_id %q is not an Atlas project id (24 hexadecimal digits, from the project's settings)", cfg.ProjectID)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 4
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	hc, err := authenticated(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, http: hc}, nil
}

// Credential names the credential in use, for reports: the service account's client ID or the
// API key's public key, neither of which is a secret.
func (c *Client) Credential() string {
	if c.cfg.ClientID != "" {
		return "service account " + c.cfg.ClientID
	}
	return "API key " + c.cfg.PublicKey
}

// ProjectID is the project the client acts on.
func (c *Client) ProjectID() string { return c.cfg.ProjectID }

// call sends method path (under /api/atlas/v2) with body (nil for none) and decodes the answer
// into out (nil to drop it), retrying 429 and 5xx answers with backoff. want is the success
// status the operation defines.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body, out any, want int) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return fmt.Errorf("atlas: encode %s %s: %v", method, path, err)
		}
	}
	u := c.cfg.BaseURL + "/api/atlas/v2" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	op := method + " " + path
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, bytesOrNil(raw))
		if err != nil {
			return fmt.Errorf("atlas: %s: %v", op, err)
		}
		req.Header.Set("Accept", MediaType)
		if raw != nil {
			req.Header.Set("Content-Type", MediaType)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return c.transportError(op, err)
		}
		data, rerr := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		resp.Body.Close()
		if rerr != nil {
			return c.transportError(op, rerr)
		}
		if resp.StatusCode == want {
			if out != nil && len(data) > 0 {
				if err := json.Unmarshal(data, out); err != nil {
					return &Error{Op: op, Status: resp.StatusCode, Msg: fmt.Sprintf("Atlas answered %s with a body the bot cannot read (%v)", op, err)}
				}
			}
			return nil
		}
		e := apiError(op, resp.StatusCode, data)
		// A write that failed on Atlas's side (5xx, a gateway's 502 or 504 among them) may
		// have been applied before the failure: it is not sent again, and the caller is told
		// it may have taken effect, so the outcome is checked, not assumed. A 429 was not
		// processed and is retried for any method.
		write := method != http.MethodGet
		if write && resp.StatusCode >= 500 {
			e.MaybeApplied = true
			e.Msg += "; whether the change took effect is checked before anything is reported"
			return e
		}
		if !e.Retryable() || attempt >= c.cfg.Retries {
			return e
		}
		wait := c.cfg.RetryBase << attempt
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			wait = time.Duration(s) * time.Second
		}
		select {
		case <-ctx.Done():
			e.Msg += "; the bot stopped retrying at its deadline"
			return e
		case <-time.After(wait):
		}
	}
}

func bytesOrNil(b []byte) io.Reader {
	if b == nil {
		return nil
	}
	return bytes.NewReader(b)
}

// transportError is a call that got no HTTP answer, with the credentials scrubbed from it
// (an OAuth token endpoint's error may echo what it was sent).
func (c *Client) transportError(op string, err error) error {
	msg := err.Error()
	for _, s := range []string{c.cfg.ClientSecret.Reveal(), c.cfg.PrivateKey.Reveal()} {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	kind := ErrUnreachable
	if errors.Is(err, context.DeadlineExceeded) {
		kind = ErrTimeout
	}
	var re *retrieveError
	if errors.As(err, &re) {
		return re.err
	}
	return &Error{Op: op, Kind: kind, Msg: fmt.Sprintf("the Atlas Administration API at %s did not answer %s (%s)", c.cfg.BaseURL, op, msg)}
}
