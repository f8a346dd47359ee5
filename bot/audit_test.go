package bot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"mongobot/approvals"
	"mongobot/bot"
	"mongobot/connector"
	"mongobot/store"
)

// auditLine is one line of the export, as a reader decodes it.
type auditLine struct {
	Schema    int    `json:"schema"`
	Cursor    uint64 `json:"cursor"`
	Kind      string `json:"kind"`
	By        string `json:"by"`
	RequestID uint64 `json:"request_id"`
	ID        uint64 `json:"id"` // an entry line's entry
	EntryID   uint64 `json:"entry_id"`
	State     string `json:"state"`
	Approve   *bool  `json:"approve"`
	Policy    string `json:"policy"`
	Refusal   string `json:"refusal"`
	Button    string `json:"button"`
	User      string `json:"user"`
	raw       string
}

// export is the audit trail as journal export writes it, chosen by o.
func (e *env) export(o store.ExportOptions) (string, []auditLine) {
	e.t.Helper()
	var buf bytes.Buffer
	if _, err := e.st.ExportAudit(&buf, o); err != nil {
		e.t.Fatal(err)
	}
	var out []auditLine
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var a auditLine
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			e.t.Fatalf("export line is not JSON: %v\n%s", err, l)
		}
		a.raw = l
		out = append(out, a)
	}
	return buf.String(), out
}

// A day of requests, votes, a denial, a cancellation, an expiry, an auto-approval, refused
// clicks (not an approver, self-approval, a forged token, someone else's Reveal) and
// reveals, on the emulator through the Slack stand-in: the audit trail holds each
// decision once, in the order it happened, with increasing cursors; an export after a cursor
// holds only what came later; no password and no button token appears in it.
func TestAuditTrailOfADay(t *testing.T) {
	p := testPolicy()
	j := p.JIT["prod"]
	j.AutoApprove = []approvals.JITAuto{{Roles: []string{"read@*"}, Who: approvals.Group{Users: []string{dev}}}}
	p.JIT["prod"] = j
	e := newEnv(t, envOptions{policy: &p})
	e.createUser("app", connector.Role{Name: "readWrite", DB: "shop"})

	// #1: refused clicks (not an approver, self-approval, a forged token), then approved,
	// run, revealed; a click on the Reveal by someone else is refused.
	e.command(dev, "rotate-password prod app --reason OPS-1")
	c1 := e.card("Request #1")
	e.click(eve, c1, bot.TextApprove)
	e.private(eve, "not an approver")
	e.click(dev, c1, bot.TextApprove)
	e.private(dev, "not an approver")
	forged, _ := c1.Find(bot.TextApprove)
	forged.Value = "1.<!channel>\u202eforged"
	if _, err := e.slack.Click(bob, c1, forged); err != nil {
		t.Fatal(err)
	}
	e.private(bob, "stale or forged card")
	e.click(alice, c1, bot.TextApprove)
	e.result(c1, "*Done*, journal #1")
	offer := e.offer(dev, "app")
	e.click(bob, offer, bot.TextReveal)
	e.private(bob, "not for you")
	pw := e.reveal(dev, "app")
	e.secrets = append(e.secrets, pw)
	var mid []auditLine
	for deadline := time.Now().Add(wait); ; {
		if _, mid = e.export(store.ExportOptions{}); strings.HasPrefix(describe(mid[len(mid)-1]), "reveal entry 1") || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	// #2 denied, #3 cancelled, #4 expired, #5 approved by the JIT policy.
	e.command(bob, "grant-role prod app read@shop")
	c2 := e.card("Request #2")
	e.click(bob, c2, bot.TextApprove)
	e.private(bob, "cannot approve your own request")
	e.click(alice, c2, bot.TextDeny)
	e.cardSays(c2, "*Denied*")
	e.command(dev, "grant-role prod app read@other")
	e.card("Request #3")
	e.command(dev, "cancel 3")
	e.private(dev, "Request #3 is cancelled")
	e.command(dev, "lock-user prod app")
	c4 := e.card("Request #4")
	e.clock.Add(2 * time.Hour)
	e.bot.ExpireDue(context.Background())
	e.cardSays(c4, "*Expired*")
	e.command(dev, "access prod read@shop --for 1h")
	rule := "connectors[prod].jit.auto_approve[0] (roles read@*, for the people it lists)"
	c5 := e.card("Request #5", "Approved by policy: `"+rule+"`")
	e.result(c5, "*Done*", "policy: `"+rule+"`")
	e.private(dev, "just-in-time policy (`"+rule+"`)")
	if ent := e.accessEntry(5); ent.AutoApproved != rule {
		t.Fatalf("the access's entry names %q as its approval, want %q", ent.AutoApproved, rule)
	}
	e.secrets = append(e.secrets, e.reveal(dev, e.accessEntry(5).Args["user"]))

	// The reveal is recorded once the password was shown: wait for it.
	var text string
	var lines []auditLine
	for deadline := time.Now().Add(wait); ; {
		text, lines = e.export(store.ExportOptions{})
		if strings.HasPrefix(describe(lines[len(lines)-1]), "reveal entry 2 by U0DEV") || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// In order, once each: the decisions of the day.
	want := []string{
		"request #1 by U0DEV",
		"refused #1 by U0EVE not_approver approve",
		"refused #1 by U0DEV not_approver approve",
		"refused #1 by U0BOB forged_or_stale approve",
		"vote #1 by U0ALICE approve",
		"approved #1 by U0ALICE",
		"request_state #1 executing",
		"entry 1 executing",
		"entry 1 done",
		"request_state #1 done",
		"refused by U0BOB not_owner reveal",
		"reveal entry 1 by U0DEV prod/app@admin",
		"request #2 by U0BOB",
		"refused #2 by U0BOB self_approval approve",
		"vote #2 by U0ALICE deny",
		"denied #2 by U0ALICE",
		"request #3 by U0DEV",
		"cancelled #3 by U0DEV",
		"request #4 by U0DEV",
		"expired #4 by bot",
		"request #5 by U0DEV",
		"approved #5 by U0DEV policy " + rule,
		"entry 2 executing",
		"entry 2 done",
		"reveal entry 2 by U0DEV",
	}
	var got []string
	var last uint64
	for _, l := range lines {
		if l.Schema != store.AuditSchema || l.Cursor <= last {
			t.Fatalf("line without its schema, or out of cursor order (after %d):\n%s", last, l.raw)
		}
		last = l.Cursor
		got = append(got, describe(l))
	}
	at := 0
	for _, w := range want {
		n := 0
		for i, g := range got {
			if strings.HasPrefix(g, w) {
				n++
				if i < at {
					t.Errorf("%q is out of order", w)
				}
				at = i
			}
		}
		if n != 1 {
			t.Errorf("%q appears %d times in the trail, want once:\n%s", w, n, strings.Join(got, "\n"))
		}
	}
	// The forged value, an attacker's text, is not in the trail; nor are tokens.
	for _, bad := range []string{"<!channel>", "\u202e", "forged\"", `"token"`} {
		if strings.Contains(text, bad) {
			t.Errorf("the trail carries %q:\n%s", bad, text)
		}
	}
	rs, _, _ := e.st.Requests(0, 100)
	for _, r := range rs {
		if strings.Contains(text, r.Token) {
			t.Errorf("the trail carries request #%d's button token", r.ID)
		}
	}
	for _, s := range e.secrets {
		if strings.Contains(text, s) {
			t.Error("the trail carries a password")
		}
	}

	// A reader that kept the trail up to the morning's last line gets only what came later.
	after := mid[len(mid)-1].Cursor
	_, later := e.export(store.ExportOptions{After: after, ByCursor: true})
	if len(later) != len(lines)-len(mid) || later[0].Cursor != after+1 || later[0].raw != lines[len(mid)].raw {
		t.Fatalf("export after cursor %d: %d lines, want the %d after it:\n%s", after, len(later), len(lines)-len(mid), strings.Join(got, "\n"))
	}
	e.checkNoSecrets()
}

// describe is a line in words the test can match.
func describe(l auditLine) string {
	switch l.Kind {
	case store.EventEntry:
		return fmt.Sprintf("entry %d %s", l.ID, l.State)
	case store.EventRefused:
		if l.RequestID == 0 {
			return fmt.Sprintf("refused by %s %s %s", l.By, l.Refusal, l.Button)
		}
		return fmt.Sprintf("refused #%d by %s %s %s", l.RequestID, l.By, l.Refusal, l.Button)
	case store.EventReveal:
		return fmt.Sprintf("reveal entry %d by %s %s", l.EntryID, l.By, l.User)
	case store.EventVote:
		return fmt.Sprintf("vote #%d by %s %s", l.RequestID, l.By, map[bool]string{true: "approve", false: "deny"}[*l.Approve])
	case store.EventRequestState:
		return fmt.Sprintf("request_state #%d %s", l.RequestID, l.State)
	case store.EventApproved:
		if l.Policy != "" {
			return fmt.Sprintf("approved #%d by %s policy %s", l.RequestID, l.By, l.Policy)
		}
	}
	return fmt.Sprintf("%s #%d by %s", l.Kind, l.RequestID, l.By)
}
