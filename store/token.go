package store

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
)

// newToken is 128 random bits in hex: what a button carries besides a record's id.
func newToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// TokenMatches compares a record's token with one a click carried, in constant time. An
// empty stored token (a record written before tokens existed) matches nothing.
func TokenMatches(stored, given string) bool {
	return stored != "" && subtle.ConstantTimeCompare([]byte(stored), []byte(given)) == 1
}
