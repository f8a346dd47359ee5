package console

import (
	"strings"
	"testing"

	"mongobot/bot"
)

func TestRenderTerminal(t *testing.T) {
	names := map[string]string{"U0ALICE": "alice"}
	user := func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		return id
	}
	channel := func(id string) string {
		if id == "C0APPROVALS" {
			return "approvals"
		}
		return id
	}
	plain, tty, noColor := Style{}, Style{Bold: true, Color: true}, Style{Bold: true}
	tests := []struct {
		name  string
		style Style
		in    string
		want  string
	}{
		{"bold, plain", plain, "*Done*, journal #1", "Done, journal #1"},
		{"bold, tty", tty, "*Done*, journal #1", "\x1b[1mDone\x1b[22m, journal #1"},
		{"bold, NO_COLOR keeps bold", noColor, "*Done*", "\x1b[1mDone\x1b[22m"},
		{"emoji, plain", plain, ":white_check_mark: *Done*", "✓ Done"},
		{"emoji, tty is green", tty, ":white_check_mark: ok", "\x1b[32m✓\x1b[39m ok"},
		{"emoji, NO_COLOR has no colour", noColor, ":x: :warning: :key: :hourglass: :rotating_light:", "✗ ⚠ 🔑 ⏳ 🚨"},
		{"unknown shortcode stays", plain, ":shrug: 21:37 UTC: a:b:c", ":shrug: 21:37 UTC: a:b:c"},
		{"link with text", plain, "see <https://x.example/a?b=1&amp;c=2|the runbook>", "see the runbook (https://x.example/a?b=1&c=2)"},
		{"bare link", plain, "<https://x.example>", "https://x.example"},
		{"mailto", plain, "<mailto:a@b.c|a@b.c>", "a@b.c"},
		{"mention by name", plain, "by <@U0ALICE>", "by @alice"},
		{"mention by id when no name", plain, "by <@U0BOB>", "by @U0BOB"},
		{"mention label when no name", plain, "by <@U0BOB|bob>", "by @bob"},
		{"channel", plain, "in <#C0APPROVALS>", "in #approvals"},
		{"channel label", plain, "in <#C0X|ops>", "in #ops"},
		{"special mentions", plain, "<!here> <!subteam^S0DBAS|@dbas> <!subteam^S0X> <!date^1^{date}|2026-01-01>", "@here @dbas @subteam 2026-01-01"},
		{"entities undone", plain, "a &lt;b&gt; &amp;amp;", "a <b> &amp;"},
		{"escaped markup stays text", plain, "Reason: &lt;@U0ALICE&gt; &lt;!channel&gt; &lt;https://evil|runbook&gt;", "Reason: <@U0ALICE> <!channel> <https://evil|runbook>"},
		{"code span in colour on a terminal", tty, "`app_user@admin` *x*", "\x1b[36mapp_user@admin\x1b[39m \x1b[1mx\x1b[22m"},
		{"code span keeps its backticks in plain text", plain, "`app_user@admin` *x*", "`app_user@admin` x"},
		{"code span keeps markers", plain, "`*a* _b_ :key:`", "`*a* _b_ :key:`"},
		{"code block is its text", plain, "pw:\n```ab~c_d*e~f```", "pw:\nab~c_d*e~f"},
		{"code block, tty", tty, "```pw```", "\x1b[36mpw\x1b[39m"},
		{"snake_case and products stay", plain, "old_tmp_user 2*3*4 a * b * c", "old_tmp_user 2*3*4 a * b * c"},
		{"italic and strike", tty, "_maybe_ ~gone~", "\x1b[3mmaybe\x1b[23m \x1b[9mgone\x1b[29m"},
		{"bold holds a mention", tty, "*<@U0ALICE> approved*", "\x1b[1m@alice approved\x1b[22m"},
		{"no emphasis across lines", plain, "*a\nb*", "*a\nb*"},
		{"unclosed markup is text", plain, "a < b, `c, <d", "a < b, `c, <d"},
		// Injection: text a person typed arrives escaped, but bytes are bytes.
		{"ESC in text", tty, "Reason: \x1b[2J\x1b]0;pwned\x07", `Reason: \x1b[2J\x1b]0;pwned\x07`},
		{"CR cannot overwrite the line", plain, "ok\rFAKE", `ok\x0dFAKE`},
		{"C1 CSI", plain, "a\u009b31mb", `a\u009b31mb`},
		{"invalid UTF-8 byte", plain, "a\x9bb", `a\x9bb`},
		{"bidi override", plain, "a\u202edcba", `a\u202edcba`},
		{"DEL", plain, "a\x7fb", `a\x7fb`},
		{"ESC in a link", plain, "<https://x\x1b[31m|t\x1b>", `t\x1b (https://x\x1b[31m)`},
		{"ESC in a code block", plain, "```p\x1bw```", `p\x1bw`},
		{"ESC in bold", tty, "*a\x1bb*", "\x1b[1ma\\x1bb\x1b[22m"},
		{"entity cannot make ESC", plain, "&amp;#27;", "&#27;"},
		{"tab and newline stay", plain, "a\tb\nc", "a\tb\nc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := termRenderer{style: tc.style, user: user, channel: channel}
			if got := r.render(tc.in); got != tc.want {
				t.Errorf("render(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// Whatever comes in, a plain rendering holds no ESC, CR or C1 byte, and a styled one holds
// ESC only in the renderer's own sequences.
func TestRenderTerminalNeverPassesControls(t *testing.T) {
	ins := []string{"\x1b", "*\x1b*", "<\x1b|\x1b>", "<@\x1b>", "<#\x1b|\x1b>", "<!\x1b>", "`\x1b`", "```\x1b```", ":\x1b:", "&\x1b;", "\r\x07\x00\u0085\u009b"}
	for _, in := range ins {
		for _, st := range []Style{{}, {Bold: true, Color: true}} {
			r := termRenderer{style: st, user: func(s string) string { return s }, channel: func(s string) string { return s }}
			got := r.render(in)
			stripped := got
			for _, seq := range []string{sgrBold, sgrBoldOff, sgrItalic, sgrItalicOff, sgrStrike, sgrStrikeOff, sgrRed, sgrGreen, sgrYellow, sgrCyan, sgrColorOff} {
				stripped = strings.ReplaceAll(stripped, seq, "")
			}
			if strings.ContainsAny(stripped, "\x1b\r\x07\x00\u0085\u009b") {
				t.Errorf("render(%q) with %+v = %q: a control character got through", in, st, got)
			}
		}
	}
}

// The console itself: styled on a terminal, plain otherwise; messages numbered from 1 as
// printed, private ones without a number; a direct message repeating a shown one folded,
// and shown in full (with a number) once it is updated.
func TestConsoleRenderNumbering(t *testing.T) {
	ctx := t.Context()
	for _, st := range []Style{{}, {Bold: true}, {Bold: true, Color: true}} {
		var out strings.Builder
		c := New(&out, "/mongo", map[string]string{"U0DEV": "dev"}, map[string]string{"C0A": "approvals"})
		c.SetStyle(st)
		c.Ephemeral(ctx, "C0A", "U0DEV", bot.Message{Text: "private"})
		card, _ := c.Post(ctx, "C0A", bot.Message{Text: "*Request #1*", Blocks: []bot.Block{{Text: "*Request #1*"}, {Buttons: []bot.Button{{Text: bot.TextApprove, Action: "a"}}}}})
		res := bot.Message{Thread: card.TS, Blocks: []bot.Block{{Text: ":white_check_mark: *Done*"}, {Buttons: []bot.Button{{Text: bot.TextRollback, Action: "r"}}}}}
		c.Post(ctx, "C0A", res)
		res.Thread = ""
		dm, _ := c.DM(ctx, "U0DEV", res)
		c.Update(ctx, dm, bot.Message{Text: "rolled back"})
		// While a typed line is at work, updates wait and are printed once, as they
		// ended, with only the lines that changed.
		c.setBusy(true)
		c.Update(ctx, card, bot.Message{Blocks: []bot.Block{{Text: "*Request #1*"}, {Text: "Approved: running."}}})
		c.Update(ctx, card, bot.Message{Blocks: []bot.Block{{Text: "*Request #1*"}, {Text: "Done."}}})
		c.setBusy(false)
		got := out.String()
		plainGot := got
		for _, seq := range []string{sgrBold, sgrBoldOff, sgrGreen, sgrCyan, sgrColorOff} {
			plainGot = strings.ReplaceAll(plainGot, seq, "")
		}
		want := "── #approvals · private, only @dev sees this\n  │ private\n" +
			"── #approvals · message 1\n  │ Request #1\n  │   [1 Approve]\n" +
			"── #approvals, in the thread of message 1 · message 2\n  │ ✓ Done\n  │   [2 Roll back]\n" +
			"── direct message to @dev (private): the same as message 2 above\n" +
			"── direct message to @dev · message 3, updated\n  │ rolled back\n" +
			"── #approvals · message 1, updated\n  │ Done.\n"
		if plainGot != want {
			t.Errorf("%+v:\n%s\nwant\n%s", st, plainGot, want)
		}
		if hasBold := strings.Contains(got, sgrBold+"Request #1"+sgrBoldOff); hasBold != st.Bold {
			t.Errorf("%+v: bold shown %v", st, hasBold)
		}
		if hasColor := strings.Contains(got, sgrGreen+"✓"+sgrColorOff) && strings.Contains(got, sgrCyan+"── #approvals · message 1"); hasColor != st.Color {
			t.Errorf("%+v: colour shown %v", st, hasColor)
		}
		if !st.Bold && strings.Contains(got, "\x1b") {
			t.Errorf("plain output holds an escape: %q", got)
		}
		if _, err := c.find("1"); err == nil {
			t.Errorf("button 1 works after its card was updated without it")
		}
		if _, err := c.find("2"); err != nil {
			t.Errorf("button 2 does not work by its number: %v", err)
		}
		if _, err := c.find("3"); err == nil {
			t.Errorf("a folded copy added a button")
		}
	}
}

// On a terminal an updated card is redrawn where it stands, what followed it printed again
// below; once it has scrolled out of sight, only what changed is printed.
func TestConsoleRedrawsInPlace(t *testing.T) {
	ctx := t.Context()
	var out strings.Builder
	c := New(&out, "/mongo", map[string]string{"U0DEV": "dev"}, map[string]string{"C0A": "approvals"})
	c.SetScreen(40, 12)
	card, _ := c.Post(ctx, "C0A", bot.Message{Blocks: []bot.Block{{Text: "Request #1"}, {Buttons: []bot.Button{{Text: bot.TextApprove, Action: "a"}}}}})
	// 45 characters: two rows on a 40-column terminal.
	c.Ephemeral(ctx, "C0A", "U0DEV", bot.Message{Text: strings.Repeat("x", 45)})
	c.out.typed("@dev> press 1\n")
	out.Reset()
	c.setBusy(true)
	c.Update(ctx, card, bot.Message{Blocks: []bot.Block{{Text: "Request #1"}, {Text: "Done."}}})
	c.setBusy(false)
	// Up over the card (header, two lines), the private message (its header and its line
	// both wider than 40 columns: two rows each) and the typed line: 8 rows.
	want := "\r\x1b[8A\x1b[J── #approvals · message 1\n  │ Request #1\n  │ Done.\n" +
		"── #approvals · private, only @dev sees this\n  │ " + strings.Repeat("x", 45) + "\n" +
		"@dev> press 1\n"
	if out.String() != want {
		t.Errorf("redraw:\n%q\nwant\n%q", out.String(), want)
	}
	if _, err := c.find("1"); err == nil {
		t.Errorf("the redrawn card's old button still works")
	}
	// Scrolled out of sight: the changed lines below, as in a transcript.
	for range 12 {
		c.say("filler")
	}
	out.Reset()
	c.Update(ctx, card, bot.Message{Blocks: []bot.Block{{Text: "Request #1"}, {Text: "Rolled back."}}})
	if want := "── #approvals · message 1, updated\n  │ Rolled back.\n"; out.String() != want {
		t.Errorf("update out of sight:\n%q\nwant\n%q", out.String(), want)
	}
}
