//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

import "io"

// isTerminal is false where the bot cannot tell: a destructive command then needs its --yes.
func isTerminal(io.Reader) bool { return false }
