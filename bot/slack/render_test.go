package slack

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"mongobot/bot"
)

// FuzzBlocks renders messages of any size as Block Kit and checks the result against Slack's
// limits: whatever the engine says, Slack is never sent what it would refuse.
func FuzzBlocks(f *testing.F) {
	f.Add("*Request #7*", "Reason", "OPS-42", "Approve", "approve", 3)
	f.Add(strings.Repeat("ü", 4000), strings.Repeat("l", 900), strings.Repeat("v", 2500), strings.Repeat("b", 200), strings.Repeat("x", 3000), 70)
	f.Fuzz(func(t *testing.T, text, label, value, button, arg string, n int) {
		n = min(max(n, 0), 40)
		var m bot.Message
		for i := 0; i < n; i++ {
			m.Blocks = append(m.Blocks, bot.Block{Text: text}, bot.Block{Context: text})
			var fs []bot.Field
			for j := 0; j < n%15; j++ {
				fs = append(fs, bot.Field{Label: label, Value: value})
			}
			m.Blocks = append(m.Blocks, bot.Block{Fields: fs}, bot.Block{Buttons: []bot.Button{{Text: button, Action: "a", Value: arg}}})
		}
		checkBlocks(t, blocks(m.Blocks))
	})
}

// checkBlocks checks rendered blocks against Slack's limits (reference: expectations.md).
func checkBlocks(t *testing.T, bs any) {
	t.Helper()
	raw, err := json.Marshal(bs)
	if err != nil {
		t.Fatal(err)
	}
	var decoded []map[string]any
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	if len(decoded) > maxBlocks {
		t.Fatalf("%d blocks", len(decoded))
	}
	n := func(v any) int {
		o, _ := v.(map[string]any)
		s, _ := o["text"].(string)
		return utf8.RuneCountInString(s)
	}
	for _, b := range decoded {
		switch b["type"] {
		case "section":
			if n(b["text"]) > 3000 {
				t.Fatalf("section text of %d characters", n(b["text"]))
			}
			fs, _ := b["fields"].([]any)
			if len(fs) > 10 {
				t.Fatalf("%d fields", len(fs))
			}
			for _, f := range fs {
				if n(f) > 2000 {
					t.Fatalf("field of %d characters", n(f))
				}
			}
		case "context":
			for _, e := range b["elements"].([]any) {
				if n(e) > 3000 {
					t.Fatalf("context over the limit")
				}
			}
		case "actions":
			els, _ := b["elements"].([]any)
			for _, e := range els {
				el := e.(map[string]any)
				v, _ := el["value"].(string)
				if n(el["text"]) > 75 || utf8.RuneCountInString(v) > 2000 {
					t.Fatalf("button %v over the limits", el)
				}
			}
		}
	}
}
