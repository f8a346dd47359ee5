package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"mongobot/approvals"
)

// trail is the export of s, decoded, with each line's raw text.
func trail(t *testing.T, s *Store, o ExportOptions) ([]map[string]any, string) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.ExportAudit(&buf, o); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, l)
		}
		out = append(out, m)
	}
	return out, buf.String()
}

// kinds is each line in short: kind, then its request or entry and its state or by.
func kinds(lines []map[string]any) []string {
	var out []string
	for _, l := range lines {
		s := fmt.Sprint(l["kind"])
		for _, k := range []string{"request_id", "id", "entry_id"} {
			if v, ok := l[k]; ok {
				s += fmt.Sprintf(" %s=%v", k, v)
			}
		}
		for _, k := range []string{"state", "by", "refusal", "policy"} {
			if v, ok := l[k]; ok && v != "" {
				s += fmt.Sprintf(" %v", v)
			}
		}
		out = append(out, s)
	}
	return out
}

// Every change of a request or an entry adds its events in its own transaction, once, in
// order; a refused compare-and-set adds none; refusals and reveals are appended as told;
// cursors grow; an export after a cursor holds only what follows; retention purges old
// events. On both backends.
func TestAuditTrail(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s := open(t, dir, c)
	r, err := s.CreateRequest(Request{Action: "grant-role", Connector: "prod", Requester: "U0DEV", Reason: "OPS-1",
		Args: map[string]string{"user": "app"}, ExpiresAt: c.Now().Add(time.Hour)}, approvals.Pending, "U0DEV")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(time.Minute)
	vote := func(user string, approve bool, state string) {
		t.Helper()
		if _, err := s.UpdateRequest(r.ID, func(x *Request) error {
			x.Votes = append(x.Votes, Vote{User: user, Approve: approve, At: c.Now()})
			if state != x.State {
				x.State = state
				x.History = append(x.History, Step{State: state, At: c.Now(), By: user})
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	vote("U0CAROL", true, approvals.Pending)
	// Carol's standing is found lapsed as Alice votes, reaching the quorum.
	if _, err := s.UpdateRequest(r.ID, func(x *Request) error {
		x.Votes[0].Lapsed = true
		x.Votes = append(x.Votes, Vote{User: "U0ALICE", Approve: true, At: c.Now()})
		x.State = approvals.Approved
		x.History = append(x.History, Step{State: approvals.Approved, At: c.Now(), By: "U0ALICE"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A cancellation that comes too late changes nothing, and adds nothing.
	if _, err := s.TransitionRequest(r.ID, []string{approvals.Pending}, Step{State: approvals.Cancelled, By: "U0DEV"}, nil); err == nil {
		t.Fatal("cancelled an approved request")
	}
	if _, err := s.TransitionRequest(r.ID, []string{approvals.Approved}, Step{State: approvals.Executing, By: "bot"}, nil); err != nil {
		t.Fatal(err)
	}
	e, err := s.BeginEntry(Entry{RequestID: r.ID, Requester: "U0DEV", Connector: "prod", Action: "grant-role", Args: map[string]string{"user": "app"}}, "bot")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateEntry(e.ID, func(x *Entry) error { x.Notes = []string{"no state change, no event"}; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TransitionEntry(e.ID, []string{EntryExecuting}, Step{State: EntryDone, By: "bot"}, nil); err != nil {
		t.Fatal(err)
	}
	_, before, _ := func() ([]map[string]any, string, error) { l, raw := trail(t, s, ExportOptions{}); return l, raw, nil }()
	cursor, err := s.AuditCursor()
	if err != nil {
		t.Fatal(err)
	}
	c.Add(time.Minute)
	auto, err := s.CreateRequest(Request{Action: "access", Connector: "prod", Requester: "U0DEV", AutoApproved: "connectors[prod].jit.auto_approve[0] (roles read@*)",
		Args: map[string]string{"roles": "read@shop"}}, approvals.Approved, "U0DEV")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordRefusal(Refusal{By: "U0EVE\x1b[2J", Button: "approve", RequestID: auto.ID, Code: RefusedNotApprover, Why: "Request #2: you are \u202enot an approver."}); err != nil {
		t.Fatal(err)
	}
	id, err := s.PutSecret("U0DEV", []byte("hunter2-the-password"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SupersedeSecrets("prod/app@admin", id, e.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Revealed(id, "U0DEV"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeSecret(id, "U0DEV"); err == nil {
		t.Error("a revealed secret is still there")
	}

	lines, raw := trail(t, s, ExportOptions{})
	want := []string{
		"request request_id=1 U0DEV",
		"vote request_id=1 U0CAROL",
		"vote_lapsed request_id=1 U0CAROL",
		"vote request_id=1 U0ALICE",
		"approved request_id=1 approved U0ALICE",
		"request_state request_id=1 executing bot",
		"entry request_id=1 id=1 executing",
		"entry request_id=1 id=1 done",
		"request request_id=2 U0DEV",
		"approved request_id=2 approved U0DEV connectors[prod].jit.auto_approve[0] (roles read@*)",
		`refused request_id=2 U0EVE\x1b[2J not_approver`,
		"reveal entry_id=1 U0DEV",
	}
	if got := kinds(lines); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("trail:\n%s\nwant:\n%s\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), raw)
	}
	for i, l := range lines {
		if l["schema"] != float64(AuditSchema) || l["cursor"] != float64(i+1) {
			t.Fatalf("line %d: schema %v cursor %v", i, l["schema"], l["cursor"])
		}
	}
	for _, bad := range []string{"hunter2", id, "\x1b", "\u202e", `"token"`, r.Token} {
		if strings.Contains(raw, bad) {
			t.Errorf("the trail carries %q", bad)
		}
	}
	later, _ := trail(t, s, ExportOptions{After: cursor, ByCursor: true})
	if len(later) != 4 || later[0]["kind"] != EventRequest || !strings.HasPrefix(raw, before) {
		t.Fatalf("after cursor %d: %v", cursor, kinds(later))
	}
	if since, _ := trail(t, s, ExportOptions{Since: c.Now()}); len(since) != 4 {
		t.Fatalf("since %v: %v", c.Now(), kinds(since))
	}
}

// On a shared journal, two replicas voting at once conflict and run again: each vote and
// each decision is still in the trail once.
func TestAuditTrailOnceUnderConflicts(t *testing.T) {
	if etcdClient == nil {
		t.Skip("two writers on one journal: a shared journal's test (the etcd pass)")
	}
	c := newClock()
	dir := t.TempDir()
	a := open(t, dir, c)
	b := open(t, dir, c)
	r, err := a.CreateRequest(Request{Action: "grant-role", Connector: "prod", Requester: "U0DEV", ExpiresAt: c.Now().Add(time.Hour)}, approvals.Pending, "U0DEV")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := []*Store{a, b}[i%2]
			_, _ = s.UpdateRequest(r.ID, func(x *Request) error {
				x.Votes = append(x.Votes, Vote{User: fmt.Sprintf("U%02d", i), Approve: true, At: c.Now()})
				return nil
			})
		}()
	}
	wg.Wait()
	got, _ := a.Request(r.ID)
	lines, raw := trail(t, a, ExportOptions{})
	votes := 0
	for _, l := range lines {
		if l["kind"] == EventVote {
			votes++
		}
	}
	if votes != len(got.Votes) || len(got.Votes) != 20 {
		t.Fatalf("%d votes recorded, %d in the trail:\n%s", len(got.Votes), votes, raw)
	}
}

// Retention purges the events older than it, as it purges the records.
func TestAuditTrailPurged(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s, err := openOpts(dir, Options{Now: c.Now, Retention: 24 * time.Hour})
	s = checkOnCleanup(t, s, err)
	for range 3 {
		if err := s.RecordRefusal(Refusal{By: "U0EVE", Button: "approve", Code: RefusedForged}); err != nil {
			t.Fatal(err)
		}
	}
	c.Add(48 * time.Hour)
	if err := s.RecordRefusal(Refusal{By: "U0EVE", Button: "deny", Code: RefusedForged}); err != nil {
		t.Fatal(err)
	}
	st, err := s.Purge()
	if err != nil {
		t.Fatal(err)
	}
	lines, _ := trail(t, s, ExportOptions{})
	if st.Events != 3 || len(lines) != 1 || lines[0]["button"] != "deny" || lines[0]["cursor"] != float64(4) {
		t.Fatalf("purged %d events, left %v", st.Events, kinds(lines))
	}
}

// A journal opened read-only (as the journal commands open it: a bbolt file the bot has
// let go of, or the shared journal while replicas run) exports the same trail.
func TestAuditTrailReadOnly(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s := open(t, dir, c)
	if _, err := s.CreateRequest(Request{Action: "drop-user", Connector: "prod", Requester: "U0DEV"}, approvals.Pending, "U0DEV"); err != nil {
		t.Fatal(err)
	}
	_, want := trail(t, s, ExportOptions{})
	if etcdClient == nil {
		s.Close() // the file's lock
	}
	ro, err := openOpts(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, got := trail(t, ro, ExportOptions{}); got != want || want == "" {
		t.Fatalf("read-only export:\n%s\nwant:\n%s", got, want)
	}
	if err := ro.RecordRefusal(Refusal{By: "x"}); err == nil {
		t.Fatal("a read-only store recorded a refusal")
	}
}

// A requester's text that would reorder a terminal's line (a bidirectional override) is
// written escaped on every line, and a JSON reader still reads it as typed; a cursor at the
// very end exports nothing, not everything.
func TestAuditExportEscapesBidi(t *testing.T) {
	c := newClock()
	s := open(t, t.TempDir(), c)
	reason := "OPS-1 \u202egnp.exe\u202c and \u2066isolated\u2069"
	if _, err := s.CreateRequest(Request{Action: "grant-role", Connector: "prod", Requester: "U0DEV", Reason: reason,
		Args: map[string]string{"user": "app"}, ExpiresAt: c.Now().Add(time.Hour)}, approvals.Pending, "U0DEV"); err != nil {
		t.Fatal(err)
	}
	lines, raw := trail(t, s, ExportOptions{})
	for _, r := range []rune{'\u202e', '\u202c', '\u2066', '\u2069'} {
		if strings.ContainsRune(raw, r) {
			t.Fatalf("the export holds %U raw:\n%q", r, raw)
		}
	}
	if !strings.Contains(raw, `\u202e`) || len(lines) != 1 || lines[0]["reason"] != reason {
		t.Fatalf("the reason is not escaped, or does not read back as typed:\n%s", raw)
	}
	if lines, _ := trail(t, s, ExportOptions{After: 1<<64 - 1, ByCursor: true}); len(lines) != 0 {
		t.Fatalf("after the last possible cursor, %d lines", len(lines))
	}
}
