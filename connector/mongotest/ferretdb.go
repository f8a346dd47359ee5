package mongotest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"mongobot/internal/toolbuild"
)

// FerretDB is a real FerretDB v1.24.2 process with authentication on: a real wire-protocol
// server with real SCRAM and a real user store (SQLite), started for a test.
type FerretDB struct {
	Addr     string
	password string
	cmd      *exec.Cmd
	log      *bytes.Buffer
	done     chan struct{}
}

var (
	ferretOnce sync.Once
	ferretBin  string
	ferretErr  error
)

// FerretDBBinary returns the FerretDB binary: $FERRETDB_BIN, or the one tools/ferretdb.sh
// builds from the Go module proxy (cached after the first build).
func FerretDBBinary() (string, error) {
	ferretOnce.Do(func() {
		if b := os.Getenv("FERRETDB_BIN"); b != "" {
			ferretBin = b
			return
		}
		ferretBin, ferretErr = toolbuild.Run("tools/ferretdb.sh")
	})
	return ferretBin, ferretErr
}

// StartFerretDB starts FerretDB on a free loopback port with its data in dir, and an admin
// account (admin@admin, a random password). It waits until the port answers.
func StartFerretDB(dir string) (*FerretDB, error) {
	bin, err := FerretDBBinary()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	f := &FerretDB{Addr: addr, password: randomString(12), log: &bytes.Buffer{}, done: make(chan struct{})}
	f.cmd = exec.Command(bin, "--handler=sqlite", "--sqlite-url=file:"+dir+"/",
		"--listen-addr="+addr, "--debug-addr=-", "--state-dir="+dir, "--telemetry=disable", "--log-level=warn",
		"--test-enable-new-auth", "--setup-username=admin", "--setup-password="+f.password, "--setup-database=admin")
	f.cmd.Stdout, f.cmd.Stderr = f.log, f.log
	if err := f.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { f.cmd.Wait(); close(f.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return f, nil
		}
		select {
		case <-f.done:
			return nil, fmt.Errorf("FerretDB exited: %s", strings.ReplaceAll(f.log.String(), f.password, "REDACTED"))
		case <-ctx.Done():
			f.Close()
			return nil, errors.New("FerretDB did not start listening within 30s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// URI logs in as the admin account.
func (f *FerretDB) URI() string { return f.UserURI("admin", f.password, "admin") }

// UserURI logs in as any user.
func (f *FerretDB) UserURI(user, password, authDB string) string {
	return fmt.Sprintf("mongodb://%s:%s@%s/?authSource=%s&directConnection=true", user, password, f.Addr, authDB)
}

// AdminPassword is the admin account's password.
func (f *FerretDB) AdminPassword() string { return f.password }

// Close stops the process.
func (f *FerretDB) Close() {
	if f.cmd.Process != nil {
		f.cmd.Process.Kill()
		<-f.done
	}
}
