package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"mongobot/store"
)

// journal list and show name the policy rule that approved an entry without a vote, and
// export carries it on the entry and on the approval.
func TestJournalNamesThePolicyThatApproved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rule := "connectors[prod].jit.auto_approve[0] (roles read@*, for the people it lists)"
	r, err := st.CreateRequest(store.Request{Action: "access", Connector: "prod", Requester: "U0DEV", AutoApproved: rule,
		Args: map[string]string{"user": "jit-dev-abc123", "roles": "read@shop", "for": "1h"}}, "approved", "U0DEV")
	if err != nil {
		t.Fatal(err)
	}
	e, _ := st.BeginEntry(store.Entry{RequestID: r.ID, Requester: "U0DEV", Connector: "prod", Action: "access", AutoApproved: rule,
		Args: r.Args}, "bot")
	st.Close()
	env := envOf(map[string]string{"BOT_DATA_DIR": dir})
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"journal", "list"}, env, nil, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "approved by:    policy: "+rule) {
		t.Fatalf("list: %d %s%s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"journal", "show", "1"}, env, nil, &out, &errb); code != 0 {
		t.Fatalf("show: %d %s", code, errb.String())
	}
	var got store.Entry
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.ID != e.ID || got.AutoApproved != rule {
		t.Fatalf("show: %v\n%s", err, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"journal", "export"}, env, nil, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), `"kind":"approved","at":`) || strings.Count(out.String(), rule) != 2 {
		t.Fatalf("export: %d %s", code, out.String())
	}
	// A cursor, a date or a span: anything else is a usage error that names the forms.
	if code := run(context.Background(), []string{"journal", "export", "--since", "-3"}, env, nil, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), "or a cursor") {
		t.Fatalf("export --since -3: %d %s", code, errb.String())
	}
}
