package approvals

import (
	"strings"
	"testing"
	"time"
)

func TestJIT(t *testing.T) {
	p := Policy{Approvers: Group{Users: []string{"U1"}}, JIT: map[string]JIT{"prod": {
		Roles:       []string{"read@*", "readWrite@reports", "*@analytics", "clusterMonitor"},
		AutoApprove: []JITAuto{{Roles: []string{"read@*"}, Who: Group{Usergroups: []string{"S0ONCALL"}}}},
	}}}
	j, ok := p.JITFor("prod")
	if !ok || j.MaxFor != DefaultJITMaxFor || j.UserTemplate != DefaultJITTemplate {
		t.Fatalf("defaults: %+v", j)
	}
	if _, ok := p.JITFor("stage"); ok {
		t.Fatal("a connector without jit offers it")
	}
	for _, c := range []struct {
		roles []string
		d     time.Duration
		want  string // "" for allowed
	}{
		{[]string{"read@shop", "readWrite@reports"}, time.Hour, ""},
		{[]string{"dbAdmin@analytics", "clusterMonitor@admin"}, time.Hour, ""},
		{[]string{"readWrite@shop"}, time.Hour, "role readWrite@shop is not offered"},
		{[]string{"root@admin", "readWrite@orders"}, time.Hour, "roles root@admin, readWrite@orders are not offered"},
		{[]string{"read@shop"}, 9 * time.Hour, "lasts at most 8h, not 9h"},
		{[]string{"read@x@shop"}, time.Hour, ""}, // a role name may hold an @: read@x on shop is not read
	} {
		err := j.Check(c.roles, c.d)
		if c.roles[0] == "read@x@shop" {
			if err == nil {
				t.Errorf("%v allowed: the role is %q on shop, not read", c.roles, "read@x")
			}
			continue
		}
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check(%v, %s) = %v, want %q", c.roles, c.d, err, c.want)
		}
	}
	oncall := Who{User: "U2", Groups: []string{"S0ONCALL"}}
	if !j.AutoApproved(oncall, []string{"read@shop"}) || j.AutoApproved(oncall, []string{"read@shop", "readWrite@reports"}) ||
		j.AutoApproved(Who{User: "U3"}, []string{"read@shop"}) || j.AutoApproved(oncall, nil) {
		t.Fatal("auto-approval: only every role covered, for someone the rule names")
	}
	bad := Policy{Approvers: Group{Users: []string{"U1"}}, JIT: map[string]JIT{"prod": {UserTemplate: "jit-{handle}", AutoApprove: []JITAuto{{Roles: []string{"read@*"}}}}, "nope": {Roles: []string{"read@*"}}}}
	err := bad.Validate([]string{"access"}, []string{"prod"})
	for _, want := range []string{"jit.roles lists no role", "must contain {random}", "auto_approve[0] names nobody", `"nope" is not a configured connector`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want %q", err, want)
		}
	}
}

// The rule that approves without a vote is named by its place in the config.
func TestAutoRules(t *testing.T) {
	no := false
	p := Policy{Require: []string{"grant-role", "access"},
		Rules: []Rule{{Actions: []string{"drop-user"}}, {Actions: []string{"grant-role"}, Connectors: []string{"dev"}, Require: &no}},
		JIT: map[string]JIT{"prod": {Roles: []string{"read@*"}, AutoApprove: []JITAuto{
			{Roles: []string{"readWrite@*"}, Who: Group{Users: []string{"U1"}}},
			{Roles: []string{"read@*"}, Who: Group{Usergroups: []string{"S1"}}}}}}}
	for _, c := range []struct {
		action, conn, want string
	}{
		{"grant-role", "dev", "approvals.rules[1] (require: false)"},
		{"revoke-role", "prod", "approvals.require (revoke-role is not listed)"},
	} {
		if got := p.NoVoteRule(c.action, c.conn, RiskNormal).String(); got != c.want {
			t.Errorf("%s on %s: %q, want %q", c.action, c.conn, got, c.want)
		}
	}
	if got := (Policy{}).NoVoteRule("rollback", "prod", RiskNormal).String(); got != "approvals.require (by default, rollback needs no approval)" {
		t.Errorf("default: %q", got)
	}
	r, ok := p.JITRule("prod", Who{User: "U2", Groups: []string{"S1"}}, []string{"read@shop"})
	if !ok || r.String() != "connectors[prod].jit.auto_approve[1] (roles read@*, for the people it lists)" {
		t.Errorf("jit rule: %q %v", r, ok)
	}
	if _, ok := p.JITRule("prod", Who{User: "U2"}, []string{"read@shop"}); ok {
		t.Error("a rule approved someone it does not list")
	}
}
