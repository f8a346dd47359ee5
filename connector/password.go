package connector

import (
	"crypto/rand"
	"fmt"
	"math/big"

	"mongobot/secret"
)

// DefaultAlphabet is RFC 3986's unreserved characters: a password made of them goes into a
// connection string without percent-encoding.
const DefaultAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

// DefaultPasswordLength gives about 195 bits with DefaultAlphabet.
const DefaultPasswordLength = 32

// PasswordPolicy says how new passwords are made.
type PasswordPolicy struct {
	Length   int    // default DefaultPasswordLength; at least 16
	Alphabet string // default DefaultAlphabet; at least 16 distinct ASCII characters
}

func (p PasswordPolicy) withDefaults() PasswordPolicy {
	if p.Length == 0 {
		p.Length = DefaultPasswordLength
	}
	if p.Alphabet == "" {
		p.Alphabet = DefaultAlphabet
	}
	return p
}

// Validate reports a policy that would make weak or unusable passwords.
func (p PasswordPolicy) Validate() error {
	p = p.withDefaults()
	if p.Length < 16 {
		return fmt.Errorf("password length %d is below the minimum of 16", p.Length)
	}
	seen := map[rune]bool{}
	for _, r := range p.Alphabet {
		if r > 126 || r < 33 {
			return fmt.Errorf("password alphabet holds %q: only printable ASCII without space is allowed", r)
		}
		if seen[r] {
			return fmt.Errorf("password alphabet repeats %q", r)
		}
		seen[r] = true
	}
	if len(seen) < 16 {
		return fmt.Errorf("password alphabet has %d characters; at least 16 are needed", len(seen))
	}
	return nil
}

// NewPassword draws a password from crypto/rand, each character uniformly from the alphabet.
func (p PasswordPolicy) NewPassword() (secret.String, error) {
	p = p.withDefaults()
	if err := p.Validate(); err != nil {
		return secret.String{}, err
	}
	out := make([]byte, p.Length)
	n := big.NewInt(int64(len(p.Alphabet)))
	for i := range out {
		k, err := rand.Int(rand.Reader, n)
		if err != nil {
			return secret.String{}, err
		}
		out[i] = p.Alphabet[k.Int64()]
	}
	return secret.New(string(out)), nil
}
