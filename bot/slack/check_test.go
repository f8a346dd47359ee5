package slack

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSlackCheckSaysWhatFailed: auth.test failures that are not the token's are not blamed
// on it, and no message carries the token, even when the failure quotes it back.
func TestSlackCheckSaysWhatFailed(t *testing.T) {
	const token = "xoxb-secret-1234"
	// A listener that accepts and never answers: the API is there but silent.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 16)
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	defer func() {
		silent.Close()
		<-accepting
		close(held)
		for c := range held {
			c.Close()
		}
	}()
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":false,"error":"unexpected ` + r.Form.Get("token") + `"}`))
	}))
	defer echo.Close()
	refused := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":false,"error":"token_revoked"}`))
	}))
	defer refused.Close()
	for _, tc := range []struct {
		url, says string
	}{
		{refused.URL, "SLACK_BOT_TOKEN is not accepted by Slack (auth.test: token_revoked)"},
		{"http://" + silent.Addr().String(), "did not answer in time"},
		{notFound.URL, "answered auth.test with HTTP 404; check SLACK_API_URL"},
		{echo.URL, "Slack's auth.test failed (unexpected [SLACK_BOT_TOKEN])"},
	} {
		s := New(Config{AppToken: "xapp-1", BotToken: token, APIURL: tc.url})
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := s.Check(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), token) {
			t.Errorf("%s: %v; want it to say %q, without the token", tc.url, err, tc.says)
		}
		if tc.url != refused.URL && err != nil && strings.Contains(err.Error(), "not accepted") {
			t.Errorf("%s: blames the token: %v", tc.url, err)
		}
	}
}
