package commands

import (
	"strings"
	"unicode"
)

// unescape undoes Slack's escaping of the three characters it escapes in slash command text.
var unescape = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")

// quotes maps an opening quote to its closing one. Slack clients and phones turn straight
// quotes into curly ones, so both kinds are read.
var quotes = map[rune]rune{'"': '"', '\'': '\'', '“': '”', '‘': '’', '„': '“'}

// split cuts text into words: whitespace separates them, and a quoted string is one word
// (quotes removed; it may be empty).
func split(text string) ([]string, *Error) {
	text = unescape.Replace(text)
	var words []string
	var cur strings.Builder
	inWord := false
	var closing rune
	inQuote := false
	for _, r := range text {
		switch {
		case inQuote:
			if r == closing || (closing == '”' && r == '"') {
				inQuote = false
				continue
			}
			cur.WriteRune(r)
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case quotes[r] != 0 && (!inWord || r == '"' || r == '“'):
			// A quote opens a quoted part at the start of a word, and a double quote also
			// inside one (--reason="two words"); an apostrophe inside a word is a letter.
			closing, inQuote, inWord = quotes[r], true, true
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inQuote {
		return nil, errorf("", "A quote is not closed: every %c needs its %c.", openingOf(closing), closing)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func openingOf(closing rune) rune {
	for o, c := range quotes {
		if c == closing {
			return o
		}
	}
	return closing
}
