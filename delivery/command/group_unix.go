//go:build unix

package command

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// ownGroup starts the program as the leader of a new process group, so that stopGroup reaches
// whatever the program started in the background too.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// stopGroup kills the program's process group. ESRCH means everyone has already exited,
// which os/exec must hear as os.ErrProcessDone so it does not report a failure to cancel.
func stopGroup(p *os.Process) error {
	err := syscall.Kill(-p.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}
