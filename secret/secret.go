package secret

import (
	"log/slog"
	"strings"
)

// Redacted is what a String shows in place of its value.
const Redacted = "REDACTED"

// String is a password or a connection string with credentials.
type String struct{ v string }

// New wraps v.
func New(v string) String { return String{v} }

// Reveal returns the value. Call it only where the value must leave the process to where it
// belongs: the MongoDB driver, or the owner's one-time reveal.
func (s String) Reveal() string { return s.v }

// Empty reports whether there is no value.
func (s String) Empty() bool { return s.v == "" }

func (s String) String() string   { return Redacted }
func (s String) GoString() string { return Redacted }

// LogValue keeps log/slog from printing the value.
func (String) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON keeps encoding/json from writing the value (journal records, exports).
func (String) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText covers encoders that use encoding.TextMarshaler.
func (String) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// Scrub replaces every occurrence of each non-empty secret in text with REDACTED. Use it on
// error texts that may quote what was sent.
func Scrub(text string, secrets ...String) string {
	for _, s := range secrets {
		if len(s.v) >= 4 { // shorter values would redact ordinary words
			text = strings.ReplaceAll(text, s.v, Redacted)
		}
	}
	return text
}
