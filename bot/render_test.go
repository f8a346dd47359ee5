package bot

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"mongobot/approvals"
	"mongobot/connector"
	"mongobot/store"
)

// checkLimits checks m against the limits of the message model: as many blocks and fields
// as Slack takes (reference: expectations.md), and buttons that fit whole. Adapters cut texts
// that are too long, marking the cut (bot/slack tests that), but a card with blocks or
// fields cut off would lose its buttons or its facts, so the engine must not rely on that.
func checkLimits(t *testing.T, m Message) {
	t.Helper()
	if len(m.Blocks) > maxBlocks {
		t.Fatalf("%d blocks", len(m.Blocks))
	}
	for _, b := range m.Blocks {
		if len(b.Fields) > 10 {
			t.Fatalf("%d fields", len(b.Fields))
		}
		for _, bt := range b.Buttons {
			if utf8.RuneCountInString(bt.Text) > maxButton || len(bt.Value) > 2000 {
				t.Fatalf("button %v over the limits", bt)
			}
		}
	}
}

// FuzzRender renders cards and results from any names and lengths a user can type, and checks
// them against the message model's limits.
func FuzzRender(f *testing.F) {
	f.Add("app_user", "readWrite", "shop", "OPS-42: dashboard access", 3)
	f.Add(strings.Repeat("u", 500), strings.Repeat("r", 300), strings.Repeat("d", 60), strings.Repeat("why ", 125), 40)
	f.Add("ü\u200bé", "*_~`", "<@U1>", "```", 0)
	b := New(Config{Channel: "C1", Policy: approvals.Policy{Approvers: approvals.Group{Users: []string{"U1"}}}}, nil, nil, nil)
	f.Fuzz(func(t *testing.T, user, role, db, reason string, nRoles int) {
		nRoles = min(max(nRoles, 0), 200)
		st := connector.UserState{Exists: true}
		for i := 0; i < nRoles; i++ {
			st.Roles = append(st.Roles, connector.Role{Name: role, DB: db})
		}
		args := map[string]string{"user": user, "authdb": db, "role": role + "@" + db, "reason": reason}
		now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
		r := store.Request{ID: 7, Action: "grant-role", Connector: "prod", Args: args, Requester: "U2", Reason: reason,
			State: approvals.Pending, ExpiresAt: now, History: []store.Step{{State: approvals.Pending, At: now}},
			Preview: map[string]string{pvNow: st.Describe(), pvAfter: st.Describe(), pvRollback: "revoke " + role}}
		checkLimits(t, b.card(r, b.cfg.Policy.For("grant-role", "prod")))
		r.State, r.History = approvals.Denied, append(r.History, store.Step{State: approvals.Denied, At: now, By: "U1", Note: reason})
		checkLimits(t, b.card(r, b.cfg.Policy.For("grant-role", "prod")))
		ch := connector.Change{Before: st, After: st, Notes: []string{reason, reason}, Warnings: []string{reason},
			Undo: &connector.Undo{Describe: "revoke " + role + " from " + user}}
		checkLimits(t, b.result(store.Entry{ID: 9, Action: "grant-role", Connector: "prod", Args: args}, ch, nil))
		var lines []string
		for i := 0; i < nRoles*5; i++ {
			lines = append(lines, "• `"+user+"`: "+role)
		}
		checkLimits(t, paged("*Users*", lines))
	})
}
