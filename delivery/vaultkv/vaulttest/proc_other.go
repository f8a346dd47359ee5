//go:build !linux

package vaulttest

import "os/exec"

// dieWithParent does nothing here: only Linux has Pdeathsig. Stop the server yourself.
func dieWithParent(*exec.Cmd) {}
