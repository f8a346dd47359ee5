package observe

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	m := New()
	m.Command("help")
	m.Decision("approved")
	m.Action("prod", "grant-role", "done", 120*time.Millisecond)
	m.GaugeFunc("mongobot_pending_requests", "pending", func() float64 { return 3 })
	ready := errors.New("the Slack socket is not connected")
	srv := httptest.NewServer(m.Handler(func() error { return ready }))
	defer srv.Close()
	get := func(p string) (int, string) {
		r, err := srv.Client().Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	if c, b := get("/readyz"); c != 503 || !strings.Contains(b, "not connected") {
		t.Fatalf("/readyz: %d %q", c, b)
	}
	ready = nil
	if c, _ := get("/readyz"); c != 200 {
		t.Fatalf("/readyz when ready: %d", c)
	}
	_, b := get("/metrics")
	for _, want := range []string{
		`mongobot_commands_total{verb="help"} 1`,
		`mongobot_approvals_total{outcome="approved"} 1`,
		`mongobot_actions_total{action="grant-role",connector="prod",result="done"} 1`,
		`mongobot_action_duration_seconds_count{action="grant-role",connector="prod"} 1`,
		`mongobot_pending_requests 3`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestAddress(t *testing.T) {
	for in, want := range map[string]string{"9090": "127.0.0.1:9090", ":9090": "127.0.0.1:9090", "0.0.0.0:9090": "0.0.0.0:9090", "[::1]:1": "[::1]:1"} {
		if got := Address(in); got != want {
			t.Errorf("Address(%q) = %q, want %q", in, got, want)
		}
	}
}
