package vaulttest

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the server when the test binary dies, even by a panic or
// go test's timeout, which run no Stop: an orphaned dev server holds 220 MB and its ports.
// (Pdeathsig follows the thread that started the process; the Go runtime ends a thread only
// when a goroutine exits while locked to it, which nothing here does.)
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
