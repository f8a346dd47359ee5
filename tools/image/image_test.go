package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"mongobot/bot/slack/slacktest"
	"mongobot/connector/mongotest"
	"mongobot/internal/syncbuf"
)

// The image's files, with their modes and owners: nothing else may be in it (no data folder's
// content, no key, no config, no source).
var wantFiles = map[string]string{
	"data":                              "drwx------ 65532:65532",
	"etc":                               "drwxr-xr-x 0:0",
	"etc/group":                         "-rw-r--r-- 0:0",
	"etc/passwd":                        "-rw-r--r-- 0:0",
	"etc/ssl":                           "drwxr-xr-x 0:0",
	"etc/ssl/certs":                     "drwxr-xr-x 0:0",
	"etc/ssl/certs/ca-certificates.crt": "-rw-r--r-- 0:0",
	"mongobot":                          "-rwxr-xr-x 0:0",
}

// TestImage builds the image from the release binary, twice, and runs what it holds the way a
// container runtime would: its layers unpacked into an empty root, its entrypoint, environment
// and user from its config. The binary running in a root with no libc proves it static.
func TestImage(t *testing.T) {
	start := time.Now()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	// The release binary, and this program as people run it: built without the race detector,
	// which makes compressing 50 MB take a minute instead of seconds.
	bin, tool := filepath.Join(tmp, "mongobot"), filepath.Join(tmp, "image")
	for _, argv := range [][]string{{"bash", "tools/build.sh", bin, "test-version"}, {"go", "build", "-o", tool, "./tools/image"}} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	t.Logf("release binary and image tool built in %s", time.Since(start).Round(time.Millisecond))

	// Twice from the same inputs: the same digest, whatever the outputs written.
	digest := func(out ...string) string {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(tool, append([]string{"-binary", bin, "-version", "test-version"}, out...)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("image: %v\n%s", err, stderr.String())
		}
		return strings.TrimSpace(stdout.String())
	}
	tarPath, ociDir := filepath.Join(tmp, "mongobot.tar"), filepath.Join(tmp, "oci")
	first := digest("-tar", tarPath, "-oci", ociDir)
	if second := digest(); second != first || !strings.HasPrefix(first, "sha256:") {
		t.Fatalf("the same inputs gave %s, then %s", first, second)
	}
	t.Logf("image built twice, %s both times, at %s", first, time.Since(start).Round(time.Millisecond))

	// What runs is what was written: the layout's image, whose config and layers the tarball
	// holds too.
	img := fromLayout(t, ociDir, first)
	fromTar, err := tarball.ImageFromPath(tarPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := same(t, img, fromTar); a != b {
		t.Fatalf("the tarball holds another image than the layout:\n%s\n%s", a, b)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(tarPath) })
	if err != nil || len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{"mongobot:test-version"}) {
		t.Fatalf("the tarball's manifest.json: %+v, %v; want the one tag mongobot:test-version", m, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture == "" || cf.Config.User != "65532:65532" || !slices.Equal(cf.Config.Cmd, []string{"serve"}) ||
		cf.Config.Labels["org.opencontainers.image.version"] != "test-version" || cf.Config.Labels["org.opencontainers.image.licenses"] != "Apache-2.0" {
		t.Fatalf("config: %+v", cf)
	}

	runner := newRunner(t)
	rootfs := filepath.Join(tmp, "rootfs")
	unpack(t, img, rootfs, runner.chown)

	// The config the operator mounts at the image's BOT_CONFIG; the connection string comes from
	// the environment, as with docker run -e.
	if err := os.MkdirAll(filepath.Join(rootfs, "etc/mongobot"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := "connectors: [{name: prod, connection_string: '${MONGO_URI}'}]\n" +
		"approvals: {channel: C0APPROVALS, approvers: {users: [U0ALICE, U0BOB]}}\n"
	if err := os.WriteFile(filepath.Join(rootfs, "etc/mongobot/bot.yaml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	redact := strings.NewReplacer(emu.AdminPassword(), "<password>")
	c := container{t: t, rootfs: rootfs, config: cf.Config, runner: runner}

	if out, code := c.run([]string{"--version"}, nil); code != 0 || out != "mongobot test-version\n" {
		t.Fatalf("--version: exit %d, %q", code, out)
	}
	// check asks Slack (the stand-in) and MongoDB (the emulator), as serve will.
	sl := slacktest.New()
	defer sl.Close()
	slackEnv := []string{"SLACK_APP_TOKEN=" + sl.AppToken, "SLACK_BOT_TOKEN=" + sl.BotToken, "SLACK_API_URL=" + sl.URL()}
	out, code := c.run([]string{"check"}, append([]string{"MONGO_URI=" + emu.URI()}, slackEnv...))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || !strings.Contains(out, "config: /etc/mongobot/bot.yaml read: 1 connector(s)") ||
		!strings.Contains(out, "data: no journal in /data yet") || !strings.Contains(out, "prod: 7.0.14") ||
		!strings.Contains(out, "slack: app-level token: Socket Mode may connect") || lines[len(lines)-1] != "check: ok" {
		t.Fatalf("check in the image: exit %d\n%s", code, redact.Replace(out))
	}

	// The default command: serve, against stand-ins for Slack and MongoDB. It creates its
	// journal in /data as the image's user, and answers a slash command.
	serve := c.start(cf.Config.Cmd, append([]string{"MONGO_URI=" + emu.URI(), "BOT_ENCRYPTION_KEY=" + strings.Repeat("ab", 32)}, slackEnv...))
	if err := sl.Wait(60*time.Second, "the bot in the image to connect", func(s *slacktest.Server) bool { return s.Connected() || serve.exited() }); err != nil || serve.exited() {
		serve.stop()
		t.Fatalf("serve in the image: %v\n%s", err, redact.Replace(serve.output()))
	}
	runner.checkIDs(t, serve.cmd.Process.Pid)
	id, err := sl.SlashCommand("U0DEV", "C0OPS", "/mongo", "help")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sl.WaitAck(id, 30*time.Second); err != nil {
		t.Fatalf("serve in the image did not answer /mongo help: %v\n%s", err, redact.Replace(serve.output()))
	}
	if code := serve.stop(); code != 0 {
		t.Fatalf("serve in the image ended with exit %d on SIGTERM\n%s", code, redact.Replace(serve.output()))
	}
	fi, err := os.Stat(filepath.Join(rootfs, "data/journal.db"))
	if err != nil {
		t.Fatalf("serve in the image made no journal: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != runner.hostUID || int(st.Gid) != runner.hostGID {
		t.Errorf("the journal is owned by %d:%d, not the image's user (%d:%d here)", st.Uid, st.Gid, runner.hostUID, runner.hostGID)
	}
	// It wrote nowhere else: the rest of the root is the image's and the test's.
	err = filepath.Walk(rootfs, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == rootfs {
			return err
		}
		rel, _ := filepath.Rel(rootfs, p)
		if _, ok := wantFiles[rel]; !ok && rel != "etc/mongobot" && rel != "etc/mongobot/bot.yaml" && rel != "data/journal.db" {
			t.Errorf("%s appeared in the container's root", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s ran --version, check and serve as uid 65532 (%s); test took %s", first, runner.how, time.Since(start).Round(time.Millisecond))
}

// fromLayout is the image of the digest in an OCI layout.
func fromLayout(t *testing.T, dir, digest string) v1.Image {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(h)
	if err != nil {
		t.Fatalf("the layout has no image %s: %v", digest, err)
	}
	return img
}

// same describes an image by its config's and layers' digests: a docker save tarball has no
// OCI manifest of its own, so these are what it shares with the layout.
func same(t *testing.T, imgs ...v1.Image) (string, string) {
	t.Helper()
	var out []string
	for _, img := range imgs {
		cfg, err := img.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		s := cfg.String()
		for _, l := range ls {
			d, err := l.Digest()
			if err != nil {
				t.Fatal(err)
			}
			s += " " + d.String()
		}
		out = append(out, s)
	}
	return out[0], out[1]
}

// unpack writes the image's files into dir, as a runtime does, checking that they are the
// expected ones and no others. chown gives a file its owner (as root) or leaves it to the
// user namespace's mapping.
func unpack(t *testing.T, img v1.Image, dir string, chown bool) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = fmt.Sprintf("%s %d:%d", h.FileInfo().Mode(), h.Uid, h.Gid)
		if !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: mtime %s, not the epoch (SOURCE_DATE_EPOCH unset)", h.Name, h.ModTime)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
				_, err = io.Copy(f, tr)
				err = errors.Join(err, f.Close())
			}
		default:
			t.Fatalf("%s: unexpected entry type %c", h.Name, h.Typeflag)
		}
		if err == nil {
			err = os.Chmod(p, h.FileInfo().Mode().Perm())
		}
		if err == nil && chown {
			err = os.Lchown(p, h.Uid, h.Gid)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(wantFiles) {
		t.Fatalf("the image holds\n%v\nwant\n%v", got, wantFiles)
	}
}

// runner is how the test becomes the image's user: as root, a chroot and setuid; otherwise a
// user namespace mapping 65532 to the test's own user (MONGOBOT_IMAGE_USERNS=1 forces that
// way as root, to try it).
type runner struct {
	how              string
	chown            bool
	hostUID, hostGID int // the image's user as this machine sees it
}

func newRunner(t *testing.T) runner {
	if os.Geteuid() == 0 && os.Getenv("MONGOBOT_IMAGE_USERNS") == "" {
		return runner{how: "chroot as root, then setuid", chown: true, hostUID: uid, hostGID: gid}
	}
	return runner{how: "user namespace mapping 65532 to " + fmt.Sprint(os.Geteuid()), hostUID: os.Geteuid(), hostGID: os.Getegid()}
}

// attr runs a process in the root dir as the image's user.
func (r runner) attr(dir string) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Chroot: dir, Credential: &syscall.Credential{Uid: uid, Gid: gid}, Setpgid: true}
	if !r.chown {
		a.Cloneflags = syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: r.hostUID, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: r.hostGID, Size: 1}}
		a.Credential.NoSetGroups = true // an unprivileged namespace may not set groups
	}
	return a
}

// checkIDs reads a running process's ids from /proc: the image's user, with no other group.
func (r runner) checkIDs(t *testing.T, pid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			ids[k] = strings.Fields(v)
		}
	}
	u, g := fmt.Sprint(r.hostUID), fmt.Sprint(r.hostGID)
	if !slices.Equal(ids["Uid"], []string{u, u, u, u}) || !slices.Equal(ids["Gid"], []string{g, g, g, g}) || (r.chown && len(ids["Groups"]) != 0) {
		t.Errorf("the process runs as Uid %v Gid %v Groups %v; want %s and %s alone", ids["Uid"], ids["Gid"], ids["Groups"], u, g)
	}
	if !r.chown {
		m, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
		if err != nil || !slices.Equal(strings.Fields(string(m)), []string{fmt.Sprint(uid), u, "1"}) {
			t.Errorf("the process's uid_map is %q (%v); want 65532 mapped to %s", m, err, u)
		}
	}
}

// container runs the image's entrypoint in rootfs with the image's environment, user and
// working folder, as a runtime does.
type container struct {
	t      *testing.T
	rootfs string
	config v1.Config
	runner runner
}

type process struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
	err  error
}

func (c container) start(args, env []string) *process {
	c.t.Helper()
	argv := append(slices.Clone(c.config.Entrypoint), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(slices.Clone(c.config.Env), env...)
	cmd.Dir = c.config.WorkingDir
	cmd.SysProcAttr = c.runner.attr(c.rootfs)
	p := &process{t: c.t, cmd: cmd, out: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		if !c.runner.chown {
			c.t.Fatalf("cannot run the image as uid 65532: not root, and this machine refuses a user namespace (%v): run the test as root, "+
				"or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, kernel.apparmor_restrict_unprivileged_userns=0)", err)
		}
		c.t.Fatalf("cannot run the image's entrypoint %v in a chroot: %v", argv, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p
}

// run runs the entrypoint to its end: its output (stdout and stderr) and exit code.
func (c container) run(args, env []string) (string, int) {
	c.t.Helper()
	p := c.start(args, env)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		p.stop()
		c.t.Fatalf("%v did not end in a minute\n%s", args, p.output())
	}
	return p.output(), p.cmd.ProcessState.ExitCode()
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, as a runtime does, and waits; its exit code.
func (p *process) stop() int {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		p.t.Errorf("the process did not end in 30s after SIGTERM")
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *process) output() string { return p.out.String() }
