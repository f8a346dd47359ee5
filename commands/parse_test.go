package commands

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Command
	}{
		{"", Command{Verb: Help}},
		{"help", Command{Verb: Help, AuthDB: "admin"}},
		{"help grant-role", Command{Verb: Help, AuthDB: "admin", Topic: GrantRole}},
		{"HELP Drop-User", Command{Verb: Help, AuthDB: "admin", Topic: DropUser}},
		{"connectors --public", Command{Verb: Connectors, AuthDB: "admin", Public: true}},
		{"users prod", Command{Verb: Users, AuthDB: "admin", Connector: "prod"}},
		{"users prod shop", Command{Verb: Users, AuthDB: "admin", Connector: "prod", WithRoleOn: "shop"}},
		{"users prod --auth-db shop", Command{Verb: Users, AuthDB: "admin", Connector: "prod", WithAuthDB: "shop"}},
		{"users prod --auth-db=admin", Command{Verb: Users, AuthDB: "admin", Connector: "prod", WithAuthDB: "admin"}},
		{"users prod shop --auth-db admin --public", Command{Verb: Users, AuthDB: "admin", Connector: "prod", WithRoleOn: "shop", WithAuthDB: "admin", Public: true}},
		{"rotate-password prod-mongo app_user", Command{Verb: RotatePassword, Connector: "prod-mongo", User: "app_user", AuthDB: "admin"}},
		{"rotate-password prod app --db shop --kill-sessions --logout-all --reason 'ticket OPS-1'",
			Command{Verb: RotatePassword, Connector: "prod", User: "app", AuthDB: "shop", KillSessions: true, LogoutAll: true, Reason: "ticket OPS-1"}},
		{`rotate-password prod app --reason="leaked in a log"`,
			Command{Verb: RotatePassword, Connector: "prod", User: "app", AuthDB: "admin", Reason: "leaked in a log"}},
		{"rotate-password prod “user with spaces” --reason “smart quotes”",
			Command{Verb: RotatePassword, Connector: "prod", User: "user with spaces", AuthDB: "admin", Reason: "smart quotes"}},
		{"grant-role prod app readWrite", Command{Verb: GrantRole, Connector: "prod", User: "app", Role: "readWrite", RoleDB: "admin", AuthDB: "admin"}},
		{"grant-role prod app read@shop --for 4h", Command{Verb: GrantRole, Connector: "prod", User: "app", Role: "read", RoleDB: "shop", AuthDB: "admin", For: 4 * time.Hour}},
		{"grant-role prod app read@shop --for=2d --db=apps", Command{Verb: GrantRole, Connector: "prod", User: "app", Role: "read", RoleDB: "shop", AuthDB: "apps", For: 48 * time.Hour}},
		{"revoke-role prod app dbAdmin@shop", Command{Verb: RevokeRole, Connector: "prod", User: "app", Role: "dbAdmin", RoleDB: "shop", AuthDB: "admin"}},
		{"create-readonly-user prod reporter shop", Command{Verb: CreateReadOnlyUser, Connector: "prod", User: "reporter", DB: "shop", AuthDB: "admin"}},
		{"create-readonly-user prod reporter shop --db shop", Command{Verb: CreateReadOnlyUser, Connector: "prod", User: "reporter", DB: "shop", AuthDB: "shop"}},
		{"drop-user prod old --reason \"don't need it\"", Command{Verb: DropUser, Connector: "prod", User: "old", AuthDB: "admin", Reason: "don't need it"}},
		{"lock-user prod app --for 30m", Command{Verb: LockUser, Connector: "prod", User: "app", AuthDB: "admin", For: 30 * time.Minute}},
		{"unlock-user prod app", Command{Verb: UnlockUser, Connector: "prod", User: "app", AuthDB: "admin"}},
		{`schedule rotate-password prod app "0 3 * * 1"`, Command{Verb: Schedule, Action: RotatePassword, Connector: "prod", User: "app", Spec: "0 3 * * 1", AuthDB: "admin"}},
		{`schedule rotate-password prod app "CRON_TZ=Europe/Paris @daily" --db shop`, Command{Verb: Schedule, Action: RotatePassword, Connector: "prod", User: "app", Spec: "CRON_TZ=Europe/Paris @daily", AuthDB: "shop"}},
		{"schedules", Command{Verb: Schedules, AuthDB: "admin"}},
		{"unschedule 3", Command{Verb: Unschedule, ID: 3, AuthDB: "admin"}},
		{"requests", Command{Verb: Requests, AuthDB: "admin"}},
		{"cancel #17", Command{Verb: Cancel, ID: 17, AuthDB: "admin"}},
		{"history", Command{Verb: History, N: 10, AuthDB: "admin"}},
		{"history 25 --public", Command{Verb: History, N: 25, AuthDB: "admin", Public: true}},
		{"rollback 42 --reason oops", Command{Verb: Rollback, ID: 42, AuthDB: "admin", Reason: "oops"}},
		{"  rotate-password\tprod   app  ", Command{Verb: RotatePassword, Connector: "prod", User: "app", AuthDB: "admin"}},
		{"grant-role prod app &lt;odd&gt;@shop", Command{Verb: GrantRole, Connector: "prod", User: "app", Role: "<odd>", RoleDB: "shop", AuthDB: "admin"}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in, verb, says string
	}{
		{"frobnicate", "", `don't know the verb "frobnicate"`},
		{"rotate-password", RotatePassword, "needs <connector> <user>"},
		{"rotate-password prod", RotatePassword, "needs <user>"},
		{"rotate-password prod app extra", RotatePassword, `"extra" is one too many`},
		{"rotate-password prod app --for 4h", RotatePassword, "does not take `--for`"},
		{"rotate-password prod app --db", RotatePassword, "`--db` needs a value"},
		{"rotate-password prod app --kill-sessions=yes", RotatePassword, "takes no value"},
		{"rotate-password prod 'app", RotatePassword, "quote is not closed"},
		{"frobnicate 'app", "", "quote is not closed"},
		{"grant-role prod app read@", GrantRole, "is not a role"},
		{"grant-role prod app @shop", GrantRole, "is not a role"},
		{"grant-role prod app read --for 10s", GrantRole, "between 1m and 90d"},
		{"grant-role prod app read --for 91d", GrantRole, "between 1m and 90d"},
		{"grant-role prod app read --for soon", GrantRole, `"soon" is not a duration`},
		{"lock-user prod app --for -1h", LockUser, "between"},
		{"grant-role prod app read --for 0s", GrantRole, "A duration must be between 1m and 90d, not 0s."},
		{"grant-role prod app read --for 0", GrantRole, "A duration must be between 1m and 90d, not 0."},
		{"grant-role prod app read --for -2d", GrantRole, "A duration must be between 1m and 90d, not -2d."},
		{"grant-role prod app read --for 400d", GrantRole, "A duration must be between 1m and 90d, not 400d."},
		{"grant-role prod app read --for 59s", GrantRole, "A duration must be between 1m and 90d, not 59s."},
		{"grant-role prod app read --for --1h", GrantRole, `"--1h" is not a duration: write one from 1m to 90d, such as 30m, 4h or 2d.`},
		{"users prod '--x`y'", Users, "`users` does not take \"--x`y\"."},
		{"grant-role prod app read --for 213504d", GrantRole, "between 1m and 90d, not 213504d"},
		{"lock-user prod app --for 9223372037s", LockUser, "between 1m and 90d, not 9223372037s"},
		{`schedule drop-user prod app "@daily"`, Schedule, "Only `rotate-password` can be scheduled"},
		{"cancel abc", Cancel, "is not an id"},
		{"rollback 0", Rollback, "is not an id"},
		{"history 0", History, "is not a count"},
		{"history 500", History, "is not a count"},
		{"help nothing", "", `no verb "nothing"`},
		{"users prod --reason x", Users, "does not take `--reason`"},
		{"users prod --db shop", Users, "does not take `--db`"},
		{"users prod --auth-db", Users, "`--auth-db` needs a value"},
		{"users prod --auth-db ''", Users, "`--auth-db` needs a database name"},
		{"users prod --auth-db a --auth-db b", Users, "`--auth-db` is given twice"},
		{"users prod shop more", Users, `"more" is one too many`},
		{"drop-user prod app --public", DropUser, "does not take `--public`"},
		{`drop-user prod ""`, DropUser, "empty word"},
		{"drop-user prod app --reason " + strings.Repeat("x", MaxReason+1), DropUser, "reason is too long"},
		{strings.Repeat("x", MaxText+1), "", "too long"},
		{"drop-user prod \xff", "", "not valid text"},
		{"drop-user prod app --reason a --reason b", DropUser, "`--reason` is given twice"},
		{"drop-user prod app --reason=a --REASON b", DropUser, "`--reason` is given twice"},
		{"grant-role prod app read --for 1h --for=2h", GrantRole, "`--for` is given twice"},
		{"rotate-password prod app --db a --db a", RotatePassword, "`--db` is given twice"},
		{"rotate-password prod app --kill-sessions --kill-sessions", RotatePassword, "`--kill-sessions` is given twice"},
		{"history --public --public", History, "`--public` is given twice"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Parse(%.40q) = %v, want a *Error", tt.in, err)
			continue
		}
		if e.Verb != tt.verb || !strings.Contains(e.Msg, tt.says) {
			t.Errorf("Parse(%.40q) = verb %q %q, want verb %q saying %q", tt.in, e.Verb, e.Msg, tt.verb, tt.says)
		}
		if u := e.Usage("/mongo"); !strings.Contains(u, "/mongo") {
			t.Errorf("usage of %q does not show the command: %q", tt.in, u)
		}
	}
}

// TestErrorShape checks that every usage error reads the same way: one sentence on one line,
// ending with a period (the bot adds nothing after it), then a blank line and the usage of the
// verb (or the list of verbs when there is no verb to speak of).
func TestErrorShape(t *testing.T) {
	for _, in := range []string{
		"frobnicate", "help nothing", "rotate-password", "rotate-password prod app extra",
		"rotate-password prod app --for 4h", "rotate-password prod app --db", "rotate-password prod app --kill-sessions=yes",
		"rotate-password prod 'app", "grant-role prod app @shop", "grant-role prod app read --for 0s",
		"grant-role prod app read --for soon", "grant-role prod app read --for -1h", "lock-user prod app --for 91d",
		"lock-user prod app --for 9223372037s", "drop-user prod app --reason a --reason b", `drop-user prod ""`,
		"drop-user prod app --reason " + strings.Repeat("x", MaxReason+1), `schedule drop-user prod app "@daily"`,
		"cancel abc", "history 0", "users prod --reason x", "users prod --auth-db", "users prod --auth-db ''",
		"users prod --auth-db a --auth-db b", "users prod '--a\nb'", strings.Repeat("x", MaxText+1),
	} {
		_, err := Parse(in)
		e, ok := err.(*Error)
		if !ok {
			t.Errorf("Parse(%.40q) = %v, want a *Error", in, err)
			continue
		}
		if strings.ContainsAny(e.Msg, "\n") || !strings.HasSuffix(e.Msg, ".") || strings.Contains(e.Msg, ". ") ||
			strings.Contains(e.Msg, "Nothing was requested") {
			t.Errorf("Parse(%.40q): %q is not one sentence ending with a period", in, e.Msg)
		}
		if r := []rune(e.Msg)[0]; unicode.IsLower(r) {
			t.Errorf("Parse(%.40q): %q does not start with a capital", in, e.Msg)
		}
		u := e.Usage("/mongo")
		rest, ok := strings.CutPrefix(u, e.Msg+"\n\n")
		if !ok {
			t.Errorf("Parse(%.40q): usage %q does not start with the message and a blank line", in, u)
			continue
		}
		want := "Manage MongoDB users"
		if e.Verb != "" {
			want = "Usage: `/mongo " + e.Verb
		}
		if !strings.HasPrefix(rest, want) {
			t.Errorf("Parse(%.40q): after the message %q, want %q", in, rest, want)
		}
	}
}

func TestUsageShowsTheVerb(t *testing.T) {
	_, err := Parse("grant-role prod")
	u := err.(*Error).Usage("/db")
	if !strings.Contains(u, "Usage: `/db grant-role <connector> <user> <role>[@<db>]") || !strings.Contains(u, "--reason") {
		t.Fatalf("usage: %s", u)
	}
}

func TestHelpListsEveryVerb(t *testing.T) {
	h := HelpText("/mongo", "")
	for _, v := range verbs {
		if !strings.Contains(h, "`"+v.name) {
			t.Errorf("help does not list %s", v.name)
		}
		if d := HelpText("/mongo", v.name); !strings.HasPrefix(d, "Usage: `/mongo "+v.name) {
			t.Errorf("help %s: %q", v.name, d)
		}
	}
}

func TestArgs(t *testing.T) {
	c, err := Parse("grant-role prod app read@shop --for 4h --db apps")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"user": "app", "authdb": "apps", "role": "read@shop", "for": "4h"}
	if got := c.Args(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Args = %v, want %v", got, want)
	}
	if !c.Mutating() {
		t.Fatal("grant-role is mutating")
	}
	if Mutating(Users) || Mutating(History) {
		t.Fatal("read-only verbs are not mutating")
	}
}

// TestUsersFilters checks that users' two filters are told apart in its help and in Args: the
// word is a database the users hold a role on, --auth-db their authentication database.
func TestUsersFilters(t *testing.T) {
	h := HelpText("/mongo", Users)
	for _, says := range []string{"[db] [--auth-db <authdb>]", "`users prod shop` lists the users holding a role on shop",
		"`users prod --auth-db shop` lists the users whose authentication database is shop", "`users prod` lists every user"} {
		if !strings.Contains(h, says) {
			t.Errorf("help users does not say %q:\n%s", says, h)
		}
	}
	c, err := Parse("users prod shop --auth-db apps")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Args(); got["with_role_on"] != "shop" || got["with_authdb"] != "apps" {
		t.Fatalf("Args = %v", got)
	}
	if c, _ := Parse("users prod"); c.WithRoleOn != "" || c.WithAuthDB != "" || c.DB != "" {
		t.Fatalf("users prod filters: %+v", c)
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{"30m": 30 * time.Minute, "4h": 4 * time.Hour, "2d": 48 * time.Hour, "1h30m": 90 * time.Minute, "90d": MaxFor} {
		d, err := ParseDuration(in)
		if err != nil || d != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, d, err)
		}
		if f := FormatDuration(d); f != in {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, f, in)
		}
	}
}

// TestDurationRoundTrip checks that a --for survives FormatDuration and ParseDuration: the bot
// journals it as text and reads it back to schedule the undo, and 100s used to be journaled as
// "1m4", which read back as no duration at all, so the temporary lock was never undone.
func TestDurationRoundTrip(t *testing.T) {
	for in, want := range map[string]string{"100s": "1m40s", "2m30s": "2m30s", "3610s": "1h0m10s", "1h0m10s": "1h0m10s",
		"90s": "1m30s", "60m": "1h", "1h10m": "1h10m", "1h0m20.5s": "1h0m20.5s", "48h": "2d", "49h": "49h"} {
		d, err := ParseDuration(in)
		if err != nil {
			t.Fatalf("ParseDuration(%q): %v", in, err)
		}
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for d := MinFor; d <= MaxFor; d = d*7/5 + 997*time.Millisecond + 10*time.Second {
		if back, err := ParseDuration(FormatDuration(d)); err != nil || back != d {
			t.Errorf("%v is written %q and read back as %v, %v", d, FormatDuration(d), back, err)
		}
	}
}

// TestSpanBounds checks that a span longer than MaxSpan is refused as too long, including one
// whose days, hours or seconds overflow time.Duration (213504d used to wrap around to 25m26s).
func TestSpanBounds(t *testing.T) {
	const day = 24 * time.Hour
	ok := []struct {
		in   string
		want time.Duration
	}{
		{"1s", time.Second}, {"90s", 90 * time.Second}, {"1d", day}, {"+2d", 2 * day}, {"007d", 7 * day},
		{"365d", MaxSpan}, {"8760h", MaxSpan}, {"525600m", MaxSpan}, {"31536000s", MaxSpan},
		{"8759h59m59.999999999s", MaxSpan - 1}, {"1.000000000000000000001h", time.Hour},
	}
	for _, tt := range ok {
		if d, err := ParseSpan(tt.in); err != nil || d != tt.want {
			t.Errorf("ParseSpan(%q) = %v, %v; want %v", tt.in, d, err, tt.want)
		}
	}
	tooLong := []string{
		"366d", "8761h", "8760h1ns", "31536001s",
		"106751d",     // fits in a time.Duration, but longer than a year
		"106752d",     // overflows to a negative duration
		"213504d",     // overflows around to 25m26s
		"9223372036s", // fits
		"9223372037s", // overflows
		"2562047h",    // fits
		"2562048h",    // overflows
		"153722867m",  // fits
		"153722868m",  // overflows
		"9223372036854775807ns", "9223372036854775808ns", "9223372036854775807d", "9223372036854775808d",
		"99999999999999999999999999999999999999d", "99999999999999999999999999999999999999h",
		"1h99999999999999999999s", "+213504d", ".5h9999999999h", "5000000000000000µs5000000000000000μs", // each fits, the sum overflows
	}
	for _, in := range tooLong {
		d, err := ParseSpan(in)
		if !errors.Is(err, ErrSpanTooLong) {
			t.Errorf("ParseSpan(%q) = %v, %v; want too long", in, d, err)
			continue
		}
		if want := `"` + in + `" is too long: the longest is 365d`; err.Error() != want {
			t.Errorf("ParseSpan(%q): %q, want %q", in, err, want)
		}
	}
	notSpan := []string{
		"", "d", "0", "0d", "0s", "-1d", "-1h", "-106752d", "-213504d", "-9223372037s", "-99999999999999999999d",
		"-99999999999999999999h", "1.5d", "1e3d", "0x10d", "1d12h", "365d1h", "soon", "1x", "99999999999999999999x", "h",
		"1 h", " 1h", "1h ", "--1h",
	}
	for _, in := range notSpan {
		d, err := ParseSpan(in)
		if err == nil || errors.Is(err, ErrSpanTooLong) || !strings.Contains(err.Error(), "is not a duration: write 30m, 4h or 2d") {
			t.Errorf("ParseSpan(%q) = %v, %v; want not a duration", in, d, err)
		}
	}
	long := strings.Repeat("9", 200) + "d"
	if _, err := ParseSpan(long); !errors.Is(err, ErrSpanTooLong) || len(err.Error()) > 120 {
		t.Errorf("ParseSpan(200 nines) = %v; want a short too-long error", err)
	}
}
