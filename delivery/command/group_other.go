//go:build !unix

package command

import (
	"os"
	"os/exec"
)

// ownGroup does nothing where there are no Unix process groups.
func ownGroup(*exec.Cmd) {}

// stopGroup kills only the program itself: the simplest correct thing without process groups.
// Background children it started may survive, but Deliver still returns, because WaitDelay
// closes the pipes they hold.
func stopGroup(p *os.Process) error { return p.Kill() }
