package commands

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that any text gives a command or a usage error, never a panic, and that a
// parsed command is one of the verbs with what it needs. CI runs it briefly; run it longer
// with: go test ./commands -run '^$' -fuzz FuzzParse -fuzztime 5m
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "help", "help grant-role", "connectors --public", "users prod shop",
		"rotate-password prod-mongo app_user --kill-sessions --logout-all --reason 'ticket OPS-1'",
		`rotate-password prod app --reason="leaked in a log"`, "grant-role prod app read@shop --for 4h --db apps",
		"revoke-role prod app dbAdmin@shop", "create-readonly-user prod reporter shop --db shop",
		"drop-user prod old --reason \"don't need it\"", "lock-user prod app --for 30m", "unlock-user prod app",
		`schedule rotate-password prod app "CRON_TZ=Europe/Paris 0 3 * * 1"`, "schedules", "unschedule 3",
		"requests", "cancel #17", "history 25", "rollback 42", "“smart quotes” ‘x’", "grant-role p u &lt;r&gt;@d",
		"rotate-password prod 'app", "--db", "grant-role prod app @", "\x00\xff", "history -1",
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
		_ = c.Args()
	})
}
