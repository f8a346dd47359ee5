package commands

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParse checks that any text gives a command or a usage error (one line, one sentence),
// never a panic, and that a parsed command is one of the verbs with what it needs and a --for
// that reads back the same from its journaled words. CI runs it briefly; run it longer
// with: go test ./commands -run '^$' -fuzz FuzzParse -fuzztime 5m
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "help", "help grant-role", "connectors --public", "users prod shop",
		"users prod --auth-db=admin shop", "drop-user prod app --reason a --reason=b",
		"rotate-password prod-mongo app_user --kill-sessions --logout-all --reason 'ticket OPS-1'",
		`rotate-password prod app --reason="leaked in a log"`, "grant-role prod app read@shop --for 4h --db apps",
		"revoke-role prod app dbAdmin@shop", "create-readonly-user prod reporter shop --db shop",
		"drop-user prod old --reason \"don't need it\"", "lock-user prod app --for 30m", "unlock-user prod app",
		`schedule rotate-password prod app "CRON_TZ=Europe/Paris 0 3 * * 1"`, "schedules", "unschedule 3",
		"requests", "cancel #17", "history 25", "rollback 42", "“smart quotes” ‘x’", "grant-role p u &lt;r&gt;@d",
		"rotate-password prod 'app", "--db", "grant-role prod app @", "\x00\xff", "history -1",
		"grant-role prod app read --for 213504d", "lock-user prod app --for 9223372037s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := Parse(text)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Msg == "" {
				t.Fatalf("Parse(%q): error %v is not a usage error", text, err)
			}
			if u := e.Usage("/mongo"); !strings.Contains(u, "/mongo") {
				t.Fatalf("usage without the command: %q", u)
			}
			// The message is the first line of a private reply, before the usage: whatever
			// was typed, it stays one line ending like a sentence.
			if strings.Contains(e.Msg, "\n") || !strings.HasSuffix(e.Msg, ".") {
				t.Fatalf("Parse(%q): %q is not one sentence on one line", text, e.Msg)
			}
			return
		}
		v, ok := lookup(c.Verb)
		if !ok {
			t.Fatalf("Parse(%q) gave the unknown verb %q", text, c.Verb)
		}
		for _, need := range v.args {
			switch need {
			case "connector":
				if c.Connector == "" {
					t.Fatalf("Parse(%q): no connector", text)
				}
			case "user":
				if c.User == "" {
					t.Fatalf("Parse(%q): no user", text)
				}
			}
		}
		if c.For != 0 && (c.For < MinFor || c.For > MaxFor) {
			t.Fatalf("Parse(%q): --for %v out of bounds", text, c.For)
		}
		// The bot reads a temporary action's end back from the journal's words: a --for that
		// does not survive Args and ParseDuration is an undo that never comes.
		if c.For != 0 {
			if d, err := ParseDuration(c.Args()["for"]); err != nil || d != c.For {
				t.Fatalf("Parse(%q): --for %v is journaled as %q, read back as %v, %v", text, c.For, c.Args()["for"], d, err)
			}
		}
	})
}

// FuzzParseSpan checks that a span ParseSpan accepts is positive and at most MaxSpan, and that
// a number of days is read exactly: never wrapped around by an overflow.
func FuzzParseSpan(f *testing.F) {
	for _, s := range []string{"30m", "4h", "2d", "1h30m", "365d", "366d", "106751d", "213504d",
		"9223372036s", "9223372037s", "2562048h", "-1d", "+2d", "99999999999999999999d", "1.5h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseSpan(s)
		if err != nil {
			if d != 0 || err.Error() == "" {
				t.Fatalf("ParseSpan(%q) = %v, %v", s, d, err)
			}
			return
		}
		if d <= 0 || d > MaxSpan {
			t.Fatalf("ParseSpan(%q) = %v, outside (0, %v]", s, d, MaxSpan)
		}
		if days, ok := strings.CutSuffix(s, "d"); ok {
			if n, err := strconv.Atoi(days); err != nil || time.Duration(n)*24*time.Hour != d {
				t.Fatalf("ParseSpan(%q) = %v, not %s days", s, d, days)
			}
		}
	})
}
