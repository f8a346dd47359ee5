package kubetest

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcAttr has the kernel kill the server if the test binary dies without calling Stop (a
// panic, a timeout, ^C), so no etcd or kube-apiserver outlives the test that started it.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
func pause(p *os.Process) error     { return p.Signal(syscall.SIGSTOP) }
func resume(p *os.Process) error    { return p.Signal(syscall.SIGCONT) }
