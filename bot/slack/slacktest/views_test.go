package slacktest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// call posts a views.* method as slack-go does (JSON, bearer token) and returns Slack's answer.
func call(t *testing.T, s *Server, method string, body map[string]any) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.URL()+method, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", "Bearer "+s.BotToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func section(text string) map[string]any {
	return map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": text}}
}

func modalView(blocks []any, meta string) map[string]any {
	return map[string]any{"type": "modal", "title": map[string]any{"type": "plain_text", "text": "MongoDB request"},
		"callback_id": "cb", "private_metadata": meta, "blocks": blocks}
}

// The stand-in refuses what Slack refuses in a view: more than 100 blocks, private_metadata
// over 3,000 characters, a title over 24, more than 100 options, a trigger id used twice or
// more than 3 seconds old.
func TestViewLimits(t *testing.T) {
	s := New()
	defer s.Close()
	blocks := func(n int) []any {
		var out []any
		for i := 0; i < n; i++ {
			out = append(out, section("x"))
		}
		return out
	}
	options := func(n int) []any {
		var out []any
		for i := 0; i < n; i++ {
			out = append(out, map[string]any{"text": map[string]any{"type": "plain_text", "text": "o"}, "value": strings.Repeat("v", 1+i%3)})
		}
		return out
	}
	input := func(n int) map[string]any {
		return map[string]any{"type": "input", "block_id": "f", "label": map[string]any{"type": "plain_text", "text": "F"},
			"element": map[string]any{"type": "static_select", "action_id": "f", "options": options(n)}}
	}
	long := modalView(blocks(1), "")
	long["title"] = map[string]any{"type": "plain_text", "text": strings.Repeat("t", 25)}
	for _, c := range []struct {
		name string
		view map[string]any
		want string
	}{
		{"100 blocks", modalView(blocks(100), ""), ""},
		{"101 blocks", modalView(blocks(101), ""), "invalid_blocks"},
		{"metadata of 3000", modalView(blocks(1), strings.Repeat("m", 3000)), ""},
		{"metadata of 3001", modalView(blocks(1), strings.Repeat("m", 3001)), "invalid_arguments"},
		{"a title of 25", long, "invalid_arguments"},
		{"100 options", modalView([]any{input(100)}, ""), ""},
		{"101 options", modalView([]any{input(101)}, ""), "invalid_arguments"},
	} {
		out := call(t, s, "views.open", map[string]any{"trigger_id": s.newTrigger("U1"), "view": c.view})
		if got := str(out["error"]); got != c.want {
			t.Errorf("%s: answered %v, want error %q", c.name, out, c.want)
		}
	}
	tr := s.newTrigger("U1")
	if out := call(t, s, "views.open", map[string]any{"trigger_id": tr, "view": modalView(blocks(1), "")}); out["ok"] != true {
		t.Fatalf("first use of a trigger: %v", out)
	}
	if out := call(t, s, "views.open", map[string]any{"trigger_id": tr, "view": modalView(blocks(1), "")}); out["error"] != "expired_trigger_id" {
		t.Fatalf("second use of a trigger: %v", out)
	}
	old := s.newTrigger("U1")
	s.mu.Lock()
	x := s.triggers[old]
	x.issued = x.issued.Add(-triggerLife - time.Millisecond)
	s.triggers[old] = x
	s.mu.Unlock()
	if out := call(t, s, "views.open", map[string]any{"trigger_id": old, "view": modalView(blocks(1), "")}); out["error"] != "expired_trigger_id" {
		t.Fatalf("a trigger past 3 seconds: %v", out)
	}
	home := map[string]any{"type": "home", "blocks": blocks(101)}
	if out := call(t, s, "views.publish", map[string]any{"user_id": "U1", "view": home}); out["error"] != "invalid_blocks" {
		t.Fatalf("a home of 101 blocks: %v", out)
	}
	home["blocks"] = []any{input(3)}
	if out := call(t, s, "views.publish", map[string]any{"user_id": "U1", "view": home}); out["error"] != "invalid_arguments" {
		t.Fatalf("a home with an input: %v", out)
	}
}
