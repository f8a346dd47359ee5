package main

import (
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

// run is main with its output passed in, for the test.
func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binary := fs.String("binary", "", "the static binary tools/build.sh made; built here (with -version) when not given")
	version := fs.String("version", "", "the bot's version, in the image's label and tag (default: git describe --tags --always --dirty)")
	ca := fs.String("ca", "/etc/ssl/certs/ca-certificates.crt", "the PEM CA bundle the image trusts")
	ociDir := fs.String("oci", "", "write an OCI image layout in this folder (its index then names this image only)")
	tarFile := fs.String("tar", "", "write a tarball docker load, podman load and crane push accept, tagged mongobot:<version>")
	source := fs.String("source", "", "the repository's URL, for the org.opencontainers.image.source label")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./tools/image [-binary FILE] [-version V] [-ca FILE] [-oci DIR] [-tar FILE]")
		fmt.Fprintln(stderr, "Builds the mongobot image without a container engine and prints its digest.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if *version == "" {
		*version = describe(root)
	}
	created, err := sourceDate()
	if err != nil {
		return err
	}
	in := inputs{Version: *version, Created: created, Source: *source}
	// No registry in the name: docker load then files it as docker.io/library/mongobot,
	// podman as localhost/mongobot.
	tag, err := name.NewTag("mongobot:" + tagOf(in.Version))
	if err != nil {
		return err
	}
	if in.CA, err = readCA(*ca); err != nil {
		return err
	}
	if *binary == "" {
		tmp, err := os.MkdirTemp("", "mongobot-image")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*binary = filepath.Join(tmp, "mongobot")
		if err := buildBinary(root, *binary, *version, stderr); err != nil {
			return err
		}
	}
	if in.Arch, err = staticArch(*binary); err != nil {
		return err
	}
	if in.Binary, err = os.ReadFile(*binary); err != nil {
		return err
	}
	img, err := build(in)
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	if *tarFile != "" {
		if err := writeTar(*tarFile, tag, img); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s: docker load -i %s (or podman load -i, or crane push %s REF)\n", *tarFile, *tarFile, *tarFile)
	}
	if *ociDir != "" {
		if err := writeLayout(*ociDir, tag, img); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote the OCI layout %s\n", *ociDir)
	}
	size, err := layerSize(img)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s: linux/%s, %d bytes compressed, created %s\n", tag, in.Arch, size, created.UTC().Format(time.RFC3339))
	fmt.Fprintln(stdout, digest)
	return nil
}

// moduleRoot is the folder of the go.mod of the module this runs in: tools/build.sh and git
// are run there, whatever the current folder.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run this inside the mongobot module (go run ./tools/image from its root)")
	}
	return filepath.Dir(mod), nil
}

// describe is the version git gives the checkout, "dev" without git or history, as
// tools/build.sh does.
func describe(root string) string {
	cmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v
	}
	return "dev"
}

// sourceDate is the time stamped on every file and on the image: SOURCE_DATE_EPOCH when set
// (the reproducible-builds convention, e.g. the commit's time from git log -1 --format=%ct),
// else the Unix epoch. Not the commit time by default: the digest then depends only on the
// bytes that go in, so a build from an exported tree without .git gives the same digest.
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a count of seconds since 1970", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// buildBinary runs the release build, the one the Dockerfile's build stage runs.
func buildBinary(root, out, version string, stderr io.Writer) error {
	cmd := exec.Command("sh", "tools/build.sh", out, version)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tools/build.sh: %v", err)
	}
	return nil
}

// staticArch is the binary's GOARCH, after checking that it needs no loader or shared library:
// the image has neither.
func staticArch(path string) (string, error) {
	f, err := elf.Open(path)
	if os.IsNotExist(err) {
		return "", fmt.Errorf("no binary at %s: build it with tools/build.sh, or leave -binary out to build it here", path)
	}
	if err != nil {
		return "", fmt.Errorf("%s: not a Linux executable: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return "", fmt.Errorf("%s is dynamically linked: the image has no libc; build it with tools/build.sh (CGO_ENABLED=0)", path)
		}
	}
	arch, ok := map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386",
		elf.EM_ARM: "arm", elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x", elf.EM_RISCV: "riscv64"}[f.Machine]
	if !ok {
		return "", fmt.Errorf("%s: unknown machine %v", path, f.Machine)
	}
	return arch, nil
}

// tagOf makes a version a valid tag: git describe's output already is, a hand-written
// version may hold a "+" or "/" a tag cannot.
func tagOf(version string) string {
	t := regexp.MustCompile(`[^A-Za-z0-9_.-]`).ReplaceAllString(version, "-")
	if t == "" || t[0] == '.' || t[0] == '-' {
		t = "v" + t
	}
	if len(t) > 128 {
		t = t[:128]
	}
	return t
}

// writeTar writes the docker save format (manifest.json naming the tag, then the blobs) via
// a temporary file, so that a failed write leaves no half tarball under the name asked for.
func writeTar(path string, tag name.Tag, img v1.Image) error {
	tmp := path + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// writeLayout writes an OCI image layout whose index names this image only, the tag in its
// org.opencontainers.image.ref.name annotation (what skopeo, crane and podman read).
func writeLayout(dir string, tag name.Tag, img v1.Image) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag.TagStr()}))
}

// layerSize is what a pull downloads: the compressed layers.
func layerSize(img v1.Image) (int64, error) {
	ls, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range ls {
		s, err := l.Size()
		if err != nil {
			return 0, err
		}
		n += s
	}
	return n, nil
}
