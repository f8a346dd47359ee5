package secret

import (
	"log/slog"
	"strings"
)

// Redacted is what a String shows in place of its value.
const Redacted = "REDACTED"

// String is a password or a connection string with credentials.
//
// The value sits behind a pointer: fmt cannot call String on an unexported struct field, so a
// struct that holds a String in one (a client's token, say) printed with %v would otherwise
// show the value itself; behind a pointer it shows an address.
type String struct{ p *string }

// New wraps v.
func New(v string) String {
	if v == "" {
		return String{}
	}
	return String{&v}
}

// Reveal returns the value. Call it only where the value must leave the process to where it
// belongs: the MongoDB driver, or the owner's one-time reveal.
func (s String) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// Empty reports whether there is no value.
func (s String) Empty() bool { return s.p == nil || *s.p == "" }

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
		if v := s.Reveal(); len(v) >= 4 { // shorter values would redact ordinary words
			text = strings.ReplaceAll(text, v, Redacted)
		}
	}
	return text
}
