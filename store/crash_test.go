package store

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "STORE_CRASH_CHILD_DIR"

// canary marks every secret the crash child writes, so the parent can scan the file for any
// of them in clear.
const canary = "canary-pw-"

// TestMain turns the test binary into the crash child when TestCrashSafety starts it.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
	}
	os.Exit(runOnBackends(m))
}

// crashChild writes requests, transitions, entries and secrets as fast as it can and prints
// one line per write after its commit returned. The parent kills it with SIGKILL at a random
// moment; it never returns.
func crashChild(dir string) {
	s, err := Open(dir, Options{LockTimeout: 10 * time.Second})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
		mu.Unlock()
	}
	// Recovery, as start-up would do it: approve what is still pending. A request whose
	// approval committed before the last kill must refuse a second one.
	pending, _, _ := s.Requests(0, 1<<30, "pending")
	for _, r := range pending {
		if _, err := s.TransitionRequest(r.ID, []string{"pending"}, Step{State: "approved"}, nil); err == nil {
			say("A %d", r.ID)
		}
	}
	run := os.Getenv("STORE_CRASH_RUN")
	var n atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				r, err := s.CreateRequest(Request{Action: "rotate-password", Args: map[string]string{"user": "app"}}, "pending", "U1")
				if err != nil {
					say("ERR %v", err)
					return
				}
				say("R %d", r.ID)
				if _, err := s.TransitionRequest(r.ID, []string{"pending"}, Step{State: "approved"}, nil); err != nil {
					say("ERR %v", err)
					return
				}
				say("A %d", r.ID)
				e, err := s.BeginEntry(Entry{RequestID: r.ID, Action: "rotate-password"}, "U1")
				if err != nil {
					say("ERR %v", err)
					return
				}
				say("E %d", e.ID)
				if _, err := s.TransitionEntry(e.ID, []string{EntryExecuting}, Step{State: EntryDone}, nil); err != nil {
					say("ERR %v", err)
					return
				}
				say("D %d", e.ID)
				pw := fmt.Sprintf("%s%s-%d", canary, run, n.Add(1))
				id, err := s.PutSecret("U1", []byte(pw), time.Hour)
				if err != nil {
					say("ERR %v", err)
					return
				}
				say("S %s %s", id, pw[len(canary):])
			}
		}()
	}
	wg.Wait()
	os.Exit(4)
}

// TestCrashSafety kills a writing child process with SIGKILL at random moments, at least 200
// times, and after each kill checks that every write whose commit had returned is there, that
// no record is half-written, that no transition was applied twice, and that the file's bytes
// hold no secret in clear. SIGKILL tests process death: the kernel still flushes what the
// process wrote, so this does not simulate power loss.
func TestCrashSafety(t *testing.T) {
	bboltOnly(t)
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	kills := 200
	if v, _ := strconv.Atoi(os.Getenv("STORE_CRASH_KILLS")); v > 0 {
		kills = v
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	requests := map[uint64]bool{} // id -> approved reported
	entries := map[uint64]bool{}  // id -> done reported
	secrets := map[string]string{}
	var commits int
	for run := 0; run < kills; run++ {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "STORE_CRASH_RUN="+strconv.Itoa(run))
		stdout, _ := cmd.StdoutPipe()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Kill after a random number of committed writes, or a random time after the first
		// commit, whichever first. The timer starts at the first commit so that a slow start
		// (the race detector) does not turn most runs into kills before the file exists.
		killAfter := rng.IntN(60)
		var deadline <-chan time.Time
		wait := time.Duration(rng.IntN(40)) * time.Millisecond
		stuck := time.After(time.Minute)
		var got []string
		killed := false
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				got = append(got, l)
				if deadline == nil {
					deadline = time.After(wait)
				}
				if !killed && len(got) >= killAfter {
					cmd.Process.Signal(syscall.SIGKILL)
					killed = true
				}
			case <-deadline:
				if !killed {
					cmd.Process.Signal(syscall.SIGKILL)
					killed = true
				}
			case <-stuck:
				cmd.Process.Signal(syscall.SIGKILL)
				t.Fatalf("run %d: the child committed nothing in a minute; stderr: %s", run, stderr.String())
			}
		}
		cmd.Wait()
		for _, l := range got {
			f := strings.Fields(l)
			switch f[0] {
			case "R":
				requests[mustU64(t, f[1])] = requests[mustU64(t, f[1])]
			case "A":
				requests[mustU64(t, f[1])] = true
			case "E":
				entries[mustU64(t, f[1])] = entries[mustU64(t, f[1])]
			case "D":
				entries[mustU64(t, f[1])] = true
			case "S":
				secrets[f[1]] = canary + f[2]
			default:
				t.Fatalf("run %d: child said %q; stderr: %s", run, l, stderr.String())
			}
		}
		commits += len(got)
		verifyAfterCrash(t, dir, run, requests, entries, secrets)
		if t.Failed() {
			return
		}
	}
	t.Logf("crash test: %d SIGKILLs, %d reported commits, all present; %d requests, %d entries checked; no secret in clear",
		kills, commits, len(requests), len(entries))
}

func mustU64(t *testing.T, s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func verifyAfterCrash(t *testing.T, dir string, run int, requests, entries map[uint64]bool, secrets map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(canary)) {
		t.Fatalf("run %d: the file holds a secret in clear", run)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("run %d: open after kill: %v", run, err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatalf("run %d: %v", run, err)
	}
	for id, approved := range requests {
		r, err := s.Request(id)
		if err != nil {
			t.Fatalf("run %d: reported request %d: %v", run, id, err)
		}
		if approved && r.State != "approved" {
			t.Fatalf("run %d: request %d reported approved, stored %q", run, id, r.State)
		}
	}
	all, _, _ := s.Requests(0, 1<<30)
	for _, r := range all {
		if h := states(r.History); h != "pending" && h != "pending approved" {
			t.Fatalf("run %d: request %d went through %q", run, r.ID, h)
		}
	}
	for id, done := range entries {
		e, err := s.Entry(id)
		if err != nil {
			t.Fatalf("run %d: reported entry %d: %v", run, id, err)
		}
		if done && e.State != EntryDone {
			t.Fatalf("run %d: entry %d reported done, stored %q", run, id, e.State)
		}
	}
	hist, _, _ := s.History(0, 1<<30)
	executing := 0
	for _, e := range hist {
		if h := states(e.History); h != "executing" && h != "executing done" {
			t.Fatalf("run %d: entry %d went through %q", run, e.ID, h)
		}
		if e.State == EntryExecuting {
			executing++
		}
	}
	if ex, _ := s.Executing(); len(ex) != executing {
		t.Fatalf("run %d: executing index has %d entries, the journal %d", run, len(ex), executing)
	}
	for id, pw := range secrets {
		got, err := s.TakeSecret(id, "U1")
		if err != nil || string(got) != pw {
			t.Fatalf("run %d: reported secret %s: %v", run, id, err)
		}
		delete(secrets, id)
	}
}

func states(h []Step) string {
	var s []string
	for _, st := range h {
		s = append(s, st.State)
	}
	return strings.Join(s, " ")
}
