package vaultkv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"mongobot/delivery"
	"mongobot/delivery/vaultkv/vaulttest"
)

// vault is the one real Vault server the tests share; each test works on secrets, policies
// and roles of its own name. A missing binary fails the tests: a skipped Vault test would
// read as a pass in CI.
var vault *vaulttest.Server

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vaultkv-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	t0 := time.Now()
	vault, err = vaulttest.Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vaultkv tests: could not start a real Vault (this is a failure, not a skip):", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	fmt.Printf("vaultkv tests: %s, ready in %v\n", vault, time.Since(t0).Round(time.Millisecond))
	remember(vault.RootToken)
	code := m.Run()
	vault.Stop()
	os.RemoveAll(dir)
	if n, leaked := leaks.scan(); leaked != "" {
		fmt.Fprintln(os.Stderr, "vaultkv tests: a secret leaked:\n"+leaked)
		code = 1
	} else {
		fmt.Printf("vaultkv tests: %d error texts and renderings checked against %d secrets: none leaked\n", n, len(leaks.secrets))
	}
	os.Exit(code)
}

// leaks holds every secret the tests made (passwords, tokens, secret IDs, JWTs) and every
// error text and rendering of a Target they saw; TestMain checks each text against each
// secret at the end, so a secret made after an error was seen is checked against it too.
var leaks leakLog

type leakLog struct {
	sync.Mutex
	secrets []string
	texts   []string
}

// remember registers s as a secret that no error may show, and returns it.
func remember(s string) string {
	leaks.Lock()
	defer leaks.Unlock()
	leaks.secrets = append(leaks.secrets, s)
	return s
}

// saw registers err's text, fails t at once if it shows a secret known so far, and returns
// err.
func saw(t *testing.T, err error) error {
	t.Helper()
	if err == nil {
		return nil
	}
	text := err.Error()
	leaks.Lock()
	leaks.texts = append(leaks.texts, text)
	secrets := append([]string(nil), leaks.secrets...)
	leaks.Unlock()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("error shows a secret: %s", text)
		}
	}
	return err
}

func (l *leakLog) scan() (int, string) {
	l.Lock()
	defer l.Unlock()
	var out strings.Builder
	for _, text := range l.texts {
		for _, s := range l.secrets {
			if strings.Contains(text, s) {
				fmt.Fprintf(&out, "  %q\n", text)
			}
		}
	}
	return len(l.texts), out.String()
}

// random returns a fresh secret-looking string, registered with remember.
func random(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return remember(prefix + hex.EncodeToString(b))
}

// transient reports whether err is one the bot retries as passing: not a rejection, a
// conflict or a mismatch.
func transient(err error) bool {
	return err != nil && !errors.Is(err, delivery.ErrRejected) && !errors.Is(err, delivery.ErrConflict) && !errors.Is(err, delivery.ErrMismatch)
}
