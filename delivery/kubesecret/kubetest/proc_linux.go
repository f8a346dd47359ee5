package kubetest

import (
	"os"
	"os/exec"
	"path/filepath"
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

// lockBuild holds an exclusive lock, beside the cache tools/kube-apiserver.sh builds into, until
// the returned function is called.
func lockBuild() (unlock func(), err error) {
	cache, err := os.UserCacheDir() // $XDG_CACHE_HOME or ~/.cache, as the script uses
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, "mongobot")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "kube-apiserver.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing the file releases the lock
}
