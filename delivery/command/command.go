package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"mongobot/commands"
	"mongobot/delivery"
)

// DefaultTimeout is the timeout when Config.Timeout is zero. Config.Timeout must lie between
// MinTimeout, below which it is likely a unit mistake ("30" read as nanoseconds), and
// MaxTimeout, beyond which a rotation would wait too long on one delivery.
const (
	DefaultTimeout = 30 * time.Second
	MinTimeout     = 100 * time.Millisecond
	MaxTimeout     = 10 * time.Minute
)

// waitDelay is how long Deliver waits, once the program has exited or been killed, for what
// inherited its output to let go of it: a stray background process cannot hang Deliver.
const waitDelay = 2 * time.Second

// passed are the only variables of the bot's environment that the program gets: what a
// program needs to find tools, files, its locale and time zone. Everything else in the bot's
// environment (connection strings, tokens) stays with the bot.
var passed = []string{"PATH", "HOME", "LANG", "TZ", "TMPDIR"}

// Config is how the operator configures a command target.
type Config struct {
	// Argv is the program, an absolute path or a name looked up in PATH by New, and its
	// arguments. It is run directly, without a shell.
	Argv []string
	// Timeout is how long the program may run; zero means DefaultTimeout. At the deadline
	// the whole process group is killed.
	Timeout time.Duration
	// Env holds extra environment entries for the program, overriding those passed through.
	// IMPORTANT: secrets do not belong here; their values are scrubbed from nothing.
	Env map[string]string
	// Dir is the program's working directory; empty means the bot's.
	Dir string
}

// Target delivers credentials to one configured program. It is safe for concurrent use; each
// Deliver runs the program once.
type Target struct {
	path    string // argv[0], resolved
	args    []string
	env     []string
	dir     string
	timeout time.Duration
}

// New checks c and returns its Target. A program that is missing or not executable now is an
// error wrapping delivery.ErrRejected, so a typo shows at start rather than at the first rotation.
func New(c Config) (*Target, error) {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return nil, errors.New("command: argv is empty; give the program to run")
	}
	name := c.Argv[0]
	if !filepath.IsAbs(name) && filepath.Base(name) != name {
		return nil, fmt.Errorf("command: %q is a relative path; give an absolute path or a name found in PATH", name)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%w: command %s cannot be run: %w", delivery.ErrRejected, name, cause(err))
	}
	t := &Target{path: path, args: c.Argv[1:], dir: c.Dir, timeout: c.Timeout}
	switch {
	case t.timeout == 0:
		t.timeout = DefaultTimeout
	case t.timeout < MinTimeout || t.timeout > MaxTimeout:
		return nil, fmt.Errorf("command: timeout %s is outside %s to %s", commands.FormatDuration(t.timeout),
			commands.FormatDuration(MinTimeout), commands.FormatDuration(MaxTimeout))
	}
	if t.dir != "" {
		if fi, err := os.Stat(t.dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("command: working directory %s is not a directory", t.dir)
		}
	}
	env := map[string]string{}
	for _, k := range passed {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	for k, v := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("command: environment entry %q is not a valid name and value", k)
		}
		env[k] = v
	}
	// Non-nil even when empty: a nil Env would give the program the bot's whole environment.
	t.env = make([]string, 0, len(env))
	for k, v := range env {
		t.env = append(t.env, k+"="+v)
	}
	sort.Strings(t.env)
	return t, nil
}

// Describe names the target for people: the program, and how many arguments it gets rather
// than the arguments themselves, which may be long.
func (t *Target) Describe() string {
	if len(t.args) == 0 {
		return "command " + t.path
	}
	return fmt.Sprintf("command %s (%d args)", t.path, len(t.args))
}

// document is what the program reads on its standard input.
type document struct {
	Connector string `json:"connector"`
	User      string `json:"user"`
	Database  string `json:"database"`
	Username  string `json:"username"`
	Password  string `json:"password"`
	JournalID uint64 `json:"journal_id"`
}

// Deliver runs the program with the credential on its standard input. It succeeds when the
// program exits with status 0 within the timeout; version is always "", since a program has no
// versions. A program that cannot be started is an error wrapping delivery.ErrRejected.
func (t *Target) Deliver(ctx context.Context, c delivery.Credential) (version string, err error) {
	in, err := encode(document{c.Connector, c.User, c.Database, c.User, c.Password.Reveal(), c.Entry})
	if err != nil {
		return "", fmt.Errorf("command %s: encoding the credential: %w", t.path, err)
	}

	run, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	cmd := exec.CommandContext(run, t.path, t.args...)
	cmd.Env, cmd.Dir = t.env, t.dir
	// os/exec ignores EPIPE on stdin: a program may exit without reading, its status decides.
	cmd.Stdin = bytes.NewReader(in)
	out := &tail{}
	cmd.Stdout, cmd.Stderr = out, out
	ownGroup(cmd)
	cmd.Cancel = func() error { return stopGroup(cmd.Process) }
	cmd.WaitDelay = waitDelay

	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%w: command %s could not be started: %w", delivery.ErrRejected, t.path, cause(err))
	}
	err = cmd.Wait()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // exited 0; only something it left behind held its output open
	}
	if err == nil {
		return "", nil
	}
	switch {
	case ctx.Err() != nil:
		return "", fmt.Errorf("command %s was stopped before it finished: %w", t.path, ctx.Err())
	case run.Err() != nil:
		return "", fmt.Errorf("command %s did not finish within %s; it was stopped", t.path, commands.FormatDuration(t.timeout))
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return "", fmt.Errorf("command %s: %w", t.path, err)
	}
	how := fmt.Sprintf("exited with status %d", exit.ExitCode())
	if exit.ExitCode() < 0 {
		how = "did not exit normally (" + exit.String() + ")"
	}
	if lines := out.summary(c.Password); lines != "" {
		how += ": " + lines
	}
	return "", fmt.Errorf("command %s %s", t.path, how)
}

// Verify cannot read anything back from a program, and says so in words the bot shows as is.
func (t *Target) Verify(ctx context.Context, c delivery.Credential, version string) (how string, err error) {
	return "a command cannot be read back: it exited with status 0", nil
}

// Check reports whether the program still exists and is executable; if not, the error wraps
// delivery.ErrRejected.
func (t *Target) Check(ctx context.Context) error {
	if _, err := exec.LookPath(t.path); err != nil {
		return fmt.Errorf("%w: command %s cannot be run: %w", delivery.ErrRejected, t.path, cause(err))
	}
	return nil
}

// encode is JSON and a newline, with <, > and & left as they are: the password reaches the
// program as it is wherever JSON allows, and summary can find it if the program echoes it.
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return b.Bytes(), err
}

// cause drops the operation and path that os/exec errors repeat, leaving e.g. "no such file
// or directory" or "permission denied".
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}
