//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

import (
	"io"
	"os"
)

// isTerminal is false where the bot cannot tell: a destructive command then needs its --yes.
func isTerminal(io.Reader) bool { return false }

// termSize is zeros where the bot cannot tell: no redrawing.
func termSize(*os.File) (cols, rows int) { return 0, 0 }
