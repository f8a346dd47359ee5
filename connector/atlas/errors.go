package atlas

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Kinds of errors, for callers that act on them.
const (
	ErrUnauthorized = "unauthorized" // 401: the credential is not accepted
	ErrForbidden    = "forbidden"    // 403: accepted, but lacks the permission
	ErrNotFound     = "not found"    // 404
	ErrConflict     = "conflict"     // 409: exists already, or changed meanwhile
	ErrRateLimited  = "rate limited" // 429, after the retries
	ErrServer       = "server error" // 5xx, after the retries
	ErrInvalid      = "invalid"      // 400
	ErrUnreachable  = "unreachable"  // no HTTP answer
	ErrTimeout      = "timeout"      // no answer in time
	ErrUnexpected   = "unexpected"   // any other status
)

// Error is a failed call, in words: Msg is a sentence for a person; Code is Atlas's errorCode.
type Error struct {
	Op     string
	Status int
	Kind   string
	Code   string
	Msg    string
	// MaybeApplied is set on a write Atlas failed (5xx) after receiving it.
	MaybeApplied bool
}

func (e *Error) Error() string { return e.Msg }

// Is matches an *Error of the same Kind: errors.Is(err, &atlas.Error{Kind: atlas.ErrNotFound}).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind
}

// Retryable reports whether the same call may work if sent again: rate limits and Atlas's own
// failures.
func (e *Error) Retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// apiBody is ApiError (#/components/schemas/ApiError): error and errorCode required.
type apiBody struct {
	Error            int    `json:"error"`
	ErrorCode        string `json:"errorCode"`
	Reason           string `json:"reason"`
	Detail           string `json:"detail"`
	BadRequestDetail *struct {
		Fields []struct {
			Field       string `json:"field"`
			Description string `json:"description"`
		} `json:"fields"`
	} `json:"badRequestDetail"`
}

// apiError turns an error answer into a sentence that says what to do.
func apiError(op string, status int, body []byte) *Error {
	var b apiBody
	_ = json.Unmarshal(body, &b)
	detail := b.Detail
	if detail == "" {
		detail = b.Reason
	}
	if b.BadRequestDetail != nil {
		for _, f := range b.BadRequestDetail.Fields {
			detail += fmt.Sprintf("; %s: %s", f.Field, f.Description)
		}
	}
	said := ""
	if b.ErrorCode != "" || detail != "" {
		said = fmt.Sprintf(" (%s: %s)", b.ErrorCode, detail)
	}
	e := &Error{Op: op, Status: status, Code: b.ErrorCode}
	switch {
	case status == http.StatusUnauthorized:
		e.Kind = ErrUnauthorized
		e.Msg = "Atlas does not accept the connector's credential" + said + ": check the service account's client id and secret (or the API key pair), that it is not expired or revoked, and that this machine's address is on its access list"
	case status == http.StatusForbidden:
		e.Kind = ErrForbidden
		e.Msg = "the connector's credential lacks the permission for " + op + said + ": give the service account (or API key) the Project Owner role on the project, or a custom role with Project Database Access Admin"
	case status == http.StatusNotFound:
		e.Kind = ErrNotFound
		e.Msg = "Atlas has no such thing" + said
	case status == http.StatusConflict:
		e.Kind = ErrConflict
		e.Msg = "Atlas refused it as a conflict" + said
	case status == http.StatusTooManyRequests:
		e.Kind = ErrRateLimited
		e.Msg = "Atlas is rate-limiting the connector's credential" + said + ", and kept doing so through the bot's retries; try again in a minute"
	case status >= 500:
		e.Kind = ErrServer
		e.Msg = fmt.Sprintf("Atlas failed with HTTP %d%s, and again on the bot's retries; see status.mongodb.com and try again later", status, said)
	case status == http.StatusBadRequest:
		e.Kind = ErrInvalid
		e.Msg = "Atlas refused the request as invalid" + said
	default:
		e.Kind = ErrUnexpected
		e.Msg = fmt.Sprintf("Atlas answered %s with HTTP %d%s", op, status, said)
	}
	return e
}
