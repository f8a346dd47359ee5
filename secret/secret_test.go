package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestStringNeverPrintsItsValue(t *testing.T) {
	s := New("hunter2-very-secret")
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "pw", s)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "pw", s)
	js, _ := json.Marshal(struct{ P String }{s})
	for name, out := range map[string]string{
		"%v": fmt.Sprintf("%v", s), "%s": fmt.Sprintf("%s", s), //lint:ignore S1025 the point is printing through fmt's verbs "%+v": fmt.Sprintf("%+v", struct{ P String }{s}),
		"%#v": fmt.Sprintf("%#v", s), "slog": logged.String(), "json": string(js),
	} {
		if strings.Contains(out, "hunter2") || !strings.Contains(out, Redacted) {
			t.Errorf("%s printed %q", name, out)
		}
	}
	if s.Reveal() != "hunter2-very-secret" {
		t.Error("Reveal lost the value")
	}
}

func TestScrub(t *testing.T) {
	got := Scrub("auth failed for pw=abcd1234 and abcd1234 again; x", New("abcd1234"), New(""), New("x"))
	if got != "auth failed for pw=REDACTED and REDACTED again; x" {
		t.Errorf("Scrub: %q", got)
	}
}

// A String in an unexported field is printed by reflection, without its String method: it
// must still not show the value.
func TestUnexportedFieldDoesNotPrint(t *testing.T) {
	type holder struct {
		name  string
		token String
	}
	h := holder{"vault", New("s.hunter2-token")}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(f, h); strings.Contains(out, "hunter2") {
			t.Errorf("%s prints the value: %s", f, out)
		}
		if out := fmt.Sprintf(f, &h); strings.Contains(out, "hunter2") {
			t.Errorf("%s of a pointer prints the value: %s", f, out)
		}
	}
	if New("x").Reveal() != "x" || !New("").Empty() || !(String{}).Empty() || (String{}).Reveal() != "" {
		t.Fatal("New, Reveal, Empty")
	}
}
