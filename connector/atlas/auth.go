package atlas

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/mongodb-forks/digest"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// authenticated is the HTTP client that signs every call with the configured credential:
// a bearer token from the service account's client credentials (fetched, cached and renewed
// by x/oauth2 at BaseURL/api/oauth/token, the spec's tokenUrl), or HTTP Digest with the API
// key's public key as the user name and its private key as the password (the spec's
// #/info/description).
func authenticated(cfg Config) (*http.Client, error) {
	service := cfg.ClientID != "" || cfg.ClientSecret.Reveal() != ""
	apiKey := cfg.PublicKey != "" || cfg.PrivateKey.Reveal() != ""
	switch {
	case service && apiKey:
		return nil, errors.New("atlas: give either client_id/client_secret (a service account) or public_key/private_key (an API key), not both")
	case service:
		if cfg.ClientID == "" || cfg.ClientSecret.Reveal() == "" {
			return nil, errors.New("atlas: a service account needs both client_id and client_secret")
		}
		cc := clientcredentials.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret.Reveal(),
			TokenURL: cfg.BaseURL + "/api/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}
		// x/oauth2 fetches a token without the request's context: its own client's timeout
		// bounds a token endpoint that does not answer.
		base := &http.Client{Transport: cfg.Transport, Timeout: cfg.Timeout}
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, base)
		return &http.Client{Transport: &tokenErrors{next: cc.Client(ctx).Transport}}, nil
	case apiKey:
		if cfg.PublicKey == "" || cfg.PrivateKey.Reveal() == "" {
			return nil, errors.New("atlas: an API key needs both public_key and private_key")
		}
		return &http.Client{Transport: digest.NewTransportWithHTTPRoundTripper(cfg.PublicKey, cfg.PrivateKey.Reveal(), cfg.Transport)}, nil
	}
	return nil, errors.New("atlas: no credential: give client_id and client_secret (a service account) or public_key and private_key (an API key)")
}

// tokenErrors turns a failure to get a token into the sentence of a refused credential,
// without the token endpoint's body (which is Atlas's, and may say more than a person needs).
type tokenErrors struct{ next http.RoundTripper }

func (t *tokenErrors) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		e := &Error{Op: "POST /api/oauth/token", Status: status, Kind: ErrUnauthorized, Code: re.ErrorCode,
			Msg: fmt.Sprintf("Atlas did not give the service account a token (HTTP %d %s): check client_id and client_secret, that the secret is not expired, and that this machine's address is on the service account's access list", status, re.ErrorCode)}
		switch {
		case status == http.StatusTooManyRequests:
			e.Kind, e.Msg = ErrRateLimited, "Atlas is rate-limiting the service account's token requests; try again in a minute"
		case status >= 500:
			e.Kind, e.Msg = ErrServer, fmt.Sprintf("Atlas's token endpoint failed with HTTP %d; nothing was sent; try again later", status)
		}
		return nil, &retrieveError{err: e}
	}
	return resp, err
}

// retrieveError carries a token failure through net/http's *url.Error to Client.call.
type retrieveError struct{ err *Error }

func (e *retrieveError) Error() string { return e.err.Msg }
