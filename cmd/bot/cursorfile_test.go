package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mongobot/store"
)

// export --cursor-file writes everything the first time, then only what is new, and keeps
// the last cursor; a file it did not write is refused, with nothing exported.
func TestExportCursorFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cursor := filepath.Join(t.TempDir(), "audit.cursor")
	entry := func() {
		t.Helper()
		st, err := store.Open(dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		e, err := st.BeginEntry(store.Entry{Action: "grant-role", Connector: "prod", Requester: "U0DEV", Args: map[string]string{"user": "app"}}, "bot")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.TransitionEntry(e.ID, []string{store.EntryExecuting}, store.Step{State: store.EntryDone}, nil); err != nil {
			t.Fatal(err)
		}
	}
	env := envOf(map[string]string{"BOT_DATA_DIR": dir})
	export := func(wantLines int, wantCursor string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"journal", "export", "--cursor-file", cursor}, env, nil, &out, &errb); code != 0 {
			t.Fatalf("export: exit %d %s", code, errb.String())
		}
		if n := strings.Count(out.String(), "\n"); n != wantLines {
			t.Fatalf("export wrote %d lines, want %d:\n%s", n, wantLines, out.String())
		}
		if raw, _ := os.ReadFile(cursor); string(raw) != wantCursor+"\n" {
			t.Fatalf("the cursor file holds %q, want %q", raw, wantCursor)
		}
		return out.String()
	}
	entry() // events 1 and 2: the entry executing, then done
	if out := export(2, "2"); !strings.Contains(out, `"cursor":1,`) || !strings.Contains(out, `"cursor":2,`) {
		t.Fatalf("the first export:\n%s", out)
	}
	export(0, "2") // nothing new: nothing written, the cursor kept
	entry()
	if out := export(2, "4"); strings.Contains(out, `"cursor":2,`) || !strings.Contains(out, `"cursor":3,`) || !strings.Contains(out, `"cursor":4,`) {
		t.Fatalf("the export after the cursor repeats or misses events:\n%s", out)
	}

	os.WriteFile(cursor, []byte("yesterday\n"), 0o600)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"journal", "export", "--cursor-file", cursor}, env, nil, &out, &errb)
	if code == 0 || out.Len() != 0 || !strings.Contains(errb.String(), "does not hold a cursor") || !strings.Contains(errb.String(), "delete it") {
		t.Fatalf("a cursor file holding a word: exit %d, out %q, err %q", code, out.String(), errb.String())
	}
	if raw, _ := os.ReadFile(cursor); string(raw) != "yesterday\n" {
		t.Fatalf("the refused cursor file was changed: %q", raw)
	}
	errb.Reset()
	if code := run(context.Background(), []string{"journal", "list", "--cursor-file", cursor}, env, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "-cursor-file") {
		t.Fatalf("list --cursor-file: exit %d %q", code, errb.String())
	}
}
