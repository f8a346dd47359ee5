//go:build !linux

package kubetest

import (
	"errors"
	"os"
	"os/exec"
)

func setProcAttr(*exec.Cmd) {}

// Elsewhere than Linux (where the tests run), the servers are killed rather than stopped, and
// cannot be paused.
func terminate(p *os.Process) error { return p.Kill() }
func pause(*os.Process) error       { return errors.ErrUnsupported }
func resume(*os.Process) error      { return errors.ErrUnsupported }
