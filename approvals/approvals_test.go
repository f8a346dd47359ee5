package approvals

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

var policy = Policy{
	Approvers:   Group{Users: []string{"UALICE", "UBOB", "UCAROL"}, Usergroups: []string{"SDBAS"}},
	Quorum:      1,
	ExpireAfter: time.Hour,
	Rules: []Rule{
		{Actions: []string{"drop-user"}, Connectors: []string{"prod"}, Quorum: 2},
		{Actions: []string{"create-readonly-user"}, Require: no()},
		{Connectors: []string{"staging"}, AllowSelfApproval: yes(), ExpireAfter: 10 * time.Minute},
		{Actions: []string{"lock-user"}, Approvers: &Group{Users: []string{"USEC"}}},
	},
}

func TestFor(t *testing.T) {
	tests := []struct {
		action, connector string
		want              Effective
	}{
		{"rotate-password", "prod", Effective{Required: true, Approvers: policy.Approvers, Quorum: 1, ExpireAfter: time.Hour}},
		{"drop-user", "prod", Effective{Required: true, Approvers: policy.Approvers, Quorum: 2, ExpireAfter: time.Hour}},
		{"drop-user", "staging", Effective{Required: true, Approvers: policy.Approvers, Quorum: 1, ExpireAfter: 10 * time.Minute, AllowSelfApproval: true}},
		{"create-readonly-user", "prod", Effective{Required: false, Approvers: policy.Approvers, Quorum: 1, ExpireAfter: time.Hour}},
		{"lock-user", "prod", Effective{Required: true, Approvers: Group{Users: []string{"USEC"}}, Quorum: 1, ExpireAfter: time.Hour}},
		{"rollback", "prod", Effective{Required: false, Approvers: policy.Approvers, Quorum: 1, ExpireAfter: time.Hour}},
	}
	for _, tt := range tests {
		got := policy.For(tt.action, tt.connector)
		if got.Required != tt.want.Required || got.Quorum != tt.want.Quorum || got.ExpireAfter != tt.want.ExpireAfter ||
			got.AllowSelfApproval != tt.want.AllowSelfApproval || strings.Join(got.Approvers.Users, ",") != strings.Join(tt.want.Approvers.Users, ",") {
			t.Errorf("For(%s, %s) = %+v, want %+v", tt.action, tt.connector, got, tt.want)
		}
	}
	if e := (Policy{}).For("drop-user", "x"); e.Quorum != DefaultQuorum || e.ExpireAfter != DefaultExpiry || !e.Required {
		t.Errorf("defaults: %+v", e)
	}
	if e := (Policy{Require: []string{"drop-user"}}).For("grant-role", "x"); e.Required {
		t.Error("an explicit require list leaves other actions out")
	}
}

func TestMayRequest(t *testing.T) {
	open := Policy{}
	if err := open.MayRequest(Who{User: "UANY"}); err != nil {
		t.Errorf("empty access list: %v", err)
	}
	closed := Policy{Access: Group{Users: []string{"UALICE"}, Usergroups: []string{"SDEVS"}}}
	if err := closed.MayRequest(Who{User: "UALICE"}); err != nil {
		t.Error(err)
	}
	if err := closed.MayRequest(Who{User: "UDEV", Groups: []string{"SOTHER", "SDEVS"}}); err != nil {
		t.Error(err)
	}
	if err := closed.MayRequest(Who{User: "UEVE", Groups: []string{"SOTHER"}}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("outsider: %v", err)
	}
}

func TestCast(t *testing.T) {
	prod := policy.For("drop-user", "prod") // quorum 2
	one := policy.For("rotate-password", "prod")
	self := policy.For("rotate-password", "staging")
	pending := Ballot{Requester: "UALICE", State: Pending, ExpiresAt: t0.Add(time.Hour)}
	type step struct {
		voter   Who
		approve bool
		state   string
		err     error
	}
	tests := []struct {
		name  string
		e     Effective
		b     Ballot
		steps []step
	}{
		{"quorum 1", one, pending, []step{{Who{User: "UBOB"}, true, Approved, nil}}},
		{"quorum 2 needs two distinct approvers", prod, pending, []step{
			{Who{User: "UBOB"}, true, Pending, nil},
			{Who{User: "UBOB"}, true, "", ErrAlreadyVoted},
			{Who{User: "UCAROL"}, true, Approved, nil},
		}},
		{"approver through a user group", one, pending, []step{{Who{User: "UDAVE", Groups: []string{"SDBAS"}}, true, Approved, nil}}},
		{"self-approval refused", one, pending, []step{{Who{User: "UALICE"}, true, "", ErrSelfApproval}}},
		{"self-approval allowed by rule", self, pending, []step{{Who{User: "UALICE"}, true, Approved, nil}}},
		{"non-approver refused", one, pending, []step{{Who{User: "UEVE", Groups: []string{"SOTHER"}}, true, "", ErrNotApprover}}},
		{"one deny denies", prod, pending, []step{
			{Who{User: "UBOB"}, true, Pending, nil},
			{Who{User: "UCAROL"}, false, Denied, nil},
		}},
		{"expired", one, Ballot{Requester: "UALICE", State: Pending, ExpiresAt: t0}, []step{{Who{User: "UBOB"}, true, "", ErrExpired}}},
		{"decided never changes", one, Ballot{Requester: "UALICE", State: Denied, ExpiresAt: t0.Add(time.Hour)}, []step{{Who{User: "UBOB"}, true, "", &DecidedError{}}}},
	}
	for _, tt := range tests {
		b := tt.b
		for i, s := range tt.steps {
			r, err := Cast(tt.e, b, s.voter, s.approve, t0)
			if s.err != nil {
				var de *DecidedError
				if !errors.Is(err, s.err) && !(errors.As(s.err, &de) && errors.As(err, &de)) {
					t.Errorf("%s step %d: err %v, want %v", tt.name, i, err, s.err)
				}
				continue
			}
			if err != nil || r.State != s.state {
				t.Errorf("%s step %d: state %q err %v, want %q", tt.name, i, r.State, err, s.state)
				continue
			}
			b.Votes, b.State = r.Votes, r.State
		}
	}
}

// A ballot carrying one person's approval twice (a record altered in storage) counts that
// person once: a quorum is of people, not of votes.
func TestCastCountsDistinctApprovers(t *testing.T) {
	e := Effective{Required: true, Approvers: Group{Users: []string{"UBOB", "UCAROL", "UDAVE"}}, Quorum: 3}
	twice := []Vote{{User: "UBOB", Approve: true, At: t0}, {User: "UBOB", Approve: true, At: t0}}
	b := Ballot{Requester: "UALICE", State: Pending, ExpiresAt: t0.Add(time.Hour), Votes: twice}
	r, err := Cast(e, b, Who{User: "UCAROL"}, true, t0)
	if err != nil || r.State != Pending || r.Approvals != 2 {
		t.Fatalf("bob twice and carol: state %q, %d approvals, err %v; want pending with 2", r.State, r.Approvals, err)
	}
	b.Votes = r.Votes
	if r, err = Cast(e, b, Who{User: "UDAVE"}, true, t0); err != nil || r.State != Approved || r.Approvals != 3 {
		t.Fatalf("three distinct people: state %q, %d approvals, err %v; want approved with 3", r.State, r.Approvals, err)
	}
	if got := Approvers(twice); len(got) != 1 || got[0] != "UBOB" {
		t.Fatalf("Approvers of bob's two votes = %v, want [UBOB]", got)
	}
}

func TestCastDoesNotShareVotes(t *testing.T) {
	votes := make([]Vote, 1, 10)
	votes[0] = Vote{User: "UBOB", Approve: true}
	b := Ballot{Requester: "UALICE", State: Pending, ExpiresAt: t0.Add(time.Hour), Votes: votes}
	e := policy.For("drop-user", "prod")
	r1, _ := Cast(e, b, Who{User: "UCAROL"}, true, t0)
	r2, _ := Cast(e, b, Who{User: "UDAVE", Groups: []string{"SDBAS"}}, true, t0)
	if r1.Votes[1].User != "UCAROL" || r2.Votes[1].User != "UDAVE" {
		t.Fatal("two casts on one ballot wrote into the same array")
	}
}

func TestStates(t *testing.T) {
	for _, final := range []string{Denied, Expired, Cancelled, Failed, RolledBack} {
		for _, to := range []string{Pending, Approved, Executing, Done, Failed, Denied, Expired, Cancelled, RolledBack} {
			if CanMove(final, to) {
				t.Errorf("%s -> %s allowed", final, to)
			}
		}
	}
	if !CanMove(Pending, Approved) || !CanMove(Approved, Executing) || !CanMove(Executing, Done) || !CanMove(Done, RolledBack) {
		t.Error("the happy path is not allowed")
	}
	if CanMove(Approved, Pending) || CanMove(Done, Executing) {
		t.Error("a request went back")
	}
	if s := Sources(Expired); len(s) != 1 || s[0] != Pending {
		t.Errorf("Sources(expired) = %v", s)
	}
	if !Due(Pending, t0, t0) || Due(Pending, t0.Add(time.Second), t0) || Due(Approved, t0, t0.Add(time.Hour)) {
		t.Error("Due")
	}
}

func TestValidate(t *testing.T) {
	actions := append(append([]string{}, DefaultRequire...), "rollback")
	connectors := []string{"prod", "staging"}
	if err := policy.Validate(actions, connectors); err != nil {
		t.Fatalf("a good policy: %v", err)
	}
	tests := []struct {
		p    Policy
		says string
	}{
		{Policy{}, "approvals: approvers lists nobody"},
		{Policy{Approvers: Group{Users: []string{"U1"}}, Quorum: 2}, "approvals: quorum is 2 but only 1 approver(s)"},
		{Policy{Approvers: Group{Users: []string{"U1", "U2"}}, Rules: []Rule{{Actions: []string{"drop-user"}, Quorum: 3}}}, "approvals.rules[0]: quorum is 3"},
		{Policy{Approvers: Group{Users: []string{"U1"}}, Require: []string{"drop-table"}}, `approvals.require: "drop-table" is not an action`},
		{Policy{Approvers: Group{Users: []string{"U1"}}, Rules: []Rule{{Connectors: []string{"qa"}}}}, `approvals.rules[0].connectors: "qa" is not a configured connector`},
		{Policy{Approvers: Group{Users: []string{"U1"}}, Rules: []Rule{{Actions: []string{"drop"}}}}, `approvals.rules[0].actions: "drop" is not an action`},
	}
	for _, tt := range tests {
		err := tt.p.Validate(actions, connectors)
		if err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.p, err, tt.says)
		}
	}
	// Nothing requires approval: no approvers needed.
	if err := (Policy{Require: []string{}}).Validate(actions, connectors); err != nil {
		t.Errorf("no approval required: %v", err)
	}
}

// TestValidateSaysEachMistakeOnce: a policy that strands every action on every connector is
// one mistake, reported once with what it strands, not once per action and connector.
func TestValidateSaysEachMistakeOnce(t *testing.T) {
	actions := []string{"rotate-password", "drop-user", "lock-user"}
	tests := []struct {
		name       string
		p          Policy
		connectors []string
		want       string
	}{
		{"no approvers", Policy{}, []string{"prod"},
			"approvals: approvers lists nobody, so rotate-password, drop-user, lock-user on prod could never be approved"},
		{"no approvers, two connectors", Policy{}, []string{"prod", "staging"},
			"approvals: approvers lists nobody, so rotate-password, drop-user, lock-user on prod, staging could never be approved"},
		{"some actions on some connectors", Policy{Approvers: Group{Users: []string{"U1"}}, Rules: []Rule{
			{Actions: []string{"drop-user", "lock-user"}, Approvers: &Group{}},
			{Actions: []string{"lock-user"}, Connectors: []string{"staging"}, Approvers: &Group{Users: []string{"U2"}}},
		}}, []string{"prod", "staging"},
			"approvals.rules[0]: approvers lists nobody, so drop-user on prod, staging and lock-user on prod could never be approved"},
		{"quorum", Policy{Approvers: Group{Users: []string{"U1"}}, Quorum: 2, Require: []string{"drop-user", "lock-user"}}, []string{"prod"},
			"approvals: quorum is 2 but only 1 approver(s) are listed, so drop-user, lock-user on prod could never be approved"},
		{"two mistakes", Policy{Approvers: Group{Users: []string{"U1"}}, Rules: []Rule{
			{Actions: []string{"drop-user"}, Quorum: 3},
			{Actions: []string{"lock-user"}, Approvers: &Group{}},
		}}, []string{"prod"},
			"approvals.rules[0]: quorum is 3 but only 1 approver(s) are listed, so drop-user on prod could never be approved; approvals.rules[1]: approvers lists nobody, so lock-user on prod could never be approved"},
	}
	for _, tt := range tests {
		err := tt.p.Validate(actions, tt.connectors)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s:\n got %v\nwant %s", tt.name, err, tt.want)
		}
		if u, ok := err.(interface{ Unwrap() []error }); !ok || len(u.Unwrap()) != strings.Count(tt.want, "; ")+1 {
			t.Errorf("%s: the mistakes do not unwrap one by one", tt.name)
		}
	}
}

// TestForRisk: a rule with a risk applies only to requests of that risk; a rule without one
// applies to every request, as before risks existed; For is a request that is not high-risk.
func TestForRisk(t *testing.T) {
	p := Policy{
		Approvers: Group{Users: []string{"UALICE", "UBOB", "UCAROL"}},
		Quorum:    1, ExpireAfter: time.Hour,
		Rules: []Rule{
			{Connectors: []string{"prod"}, ExpireAfter: 30 * time.Minute},
			{Risk: RiskHigh, Quorum: 2},
			{Actions: []string{"drop-user"}, Connectors: []string{"prod"}, Risk: RiskHigh, Approvers: &Group{Users: []string{"USEC1", "USEC2", "USEC3"}}, Quorum: 3},
			{Actions: []string{"create-readonly-user"}, Risk: RiskHigh, Require: yes()},
			{Actions: []string{"create-readonly-user"}, Require: no()},
		},
	}
	tests := []struct {
		action, connector string
		risk              Risk
		quorum            int
		expire            time.Duration
		approvers         string
		required          bool
	}{
		{"rotate-password", "staging", RiskNormal, 1, time.Hour, "UALICE,UBOB,UCAROL", true},
		{"rotate-password", "staging", RiskHigh, 2, time.Hour, "UALICE,UBOB,UCAROL", true},
		{"rotate-password", "prod", RiskNormal, 1, 30 * time.Minute, "UALICE,UBOB,UCAROL", true},
		{"rotate-password", "prod", RiskHigh, 2, 30 * time.Minute, "UALICE,UBOB,UCAROL", true},
		{"drop-user", "prod", RiskNormal, 1, 30 * time.Minute, "UALICE,UBOB,UCAROL", true},
		{"drop-user", "prod", RiskHigh, 3, 30 * time.Minute, "USEC1,USEC2,USEC3", true},
		{"drop-user", "staging", RiskHigh, 2, time.Hour, "UALICE,UBOB,UCAROL", true},
		// Rules apply in order: the later rule without a risk overrides the high-risk one.
		{"create-readonly-user", "prod", RiskHigh, 2, 30 * time.Minute, "UALICE,UBOB,UCAROL", false},
	}
	for _, tt := range tests {
		e := p.ForRisk(tt.action, tt.connector, tt.risk)
		if e.Quorum != tt.quorum || e.ExpireAfter != tt.expire || strings.Join(e.Approvers.Users, ",") != tt.approvers || e.Required != tt.required {
			t.Errorf("ForRisk(%s, %s, %q) = %+v", tt.action, tt.connector, tt.risk, e)
		}
		if tt.risk == RiskNormal {
			if f := p.For(tt.action, tt.connector); strings.Join(f.Approvers.Users, ",") != strings.Join(e.Approvers.Users, ",") || f.Quorum != e.Quorum || f.ExpireAfter != e.ExpireAfter || f.Required != e.Required {
				t.Errorf("For(%s, %s) = %+v, ForRisk with no risk = %+v", tt.action, tt.connector, f, e)
			}
		}
	}
	// A policy with no risk rules gives every risk the same answer.
	for _, a := range []string{"drop-user", "rotate-password", "create-readonly-user", "lock-user"} {
		if n, h := policy.For(a, "prod"), policy.ForRisk(a, "prod", RiskHigh); n.Quorum != h.Quorum || n.Required != h.Required || n.ExpireAfter != h.ExpireAfter {
			t.Errorf("%s: %+v and %+v", a, n, h)
		}
	}
}

func TestValidateRisk(t *testing.T) {
	actions := []string{"rotate-password", "drop-user"}
	connectors := []string{"prod"}
	base := Group{Users: []string{"U1", "U2"}}
	tests := []struct {
		name string
		p    Policy
		want string // "" for a good policy
	}{
		{"high", Policy{Approvers: base, Rules: []Rule{{Risk: RiskHigh, Quorum: 2}}}, ""},
		{"unknown risk", Policy{Approvers: base, Rules: []Rule{{Risk: "medium"}}},
			`approvals.rules[0].risk: "medium" is not a risk a rule may name: the risks are high`},
		{"a high-risk rule that strands high-risk requests", Policy{Approvers: base, Rules: []Rule{{Actions: []string{"drop-user"}, Risk: RiskHigh, Quorum: 3}}},
			"approvals.rules[0]: quorum is 3 but only 2 approver(s) are listed, so high-risk drop-user on prod could never be approved"},
		{"a mistake for every request is said once", Policy{Rules: []Rule{{Risk: RiskHigh, Quorum: 2}}},
			"approvals: approvers lists nobody, so rotate-password, drop-user on prod could never be approved"},
	}
	for _, tt := range tests {
		err := tt.p.Validate(actions, connectors)
		if (tt.want == "" && err != nil) || (tt.want != "" && (err == nil || err.Error() != tt.want)) {
			t.Errorf("%s:\n got %v\nwant %s", tt.name, err, tt.want)
		}
	}
}
