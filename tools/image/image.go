package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The user the bot runs as: the distroless "nonroot" ids, so that a cluster policy written for
// distroless images (runAsUser 65532) fits this one too.
const (
	uid = 65532
	gid = 65532
)

// Where things are in the image. The config path is only the default BOT_CONFIG points at: the
// operator mounts the file there; the image has no config of its own.
const (
	binaryPath = "/mongobot"
	caPath     = "/etc/ssl/certs/ca-certificates.crt"
	dataPath   = "/data"
	configPath = "/etc/mongobot/bot.yaml"
)

// inputs are everything the image is made of: the same inputs give the same digest.
type inputs struct {
	Binary  []byte    // the static release binary
	CA      []byte    // the CA bundle the bot trusts for TLS (Slack, Vault, Atlas, MongoDB)
	Version string    // the bot's version, in a label and the tag
	Created time.Time // every file's mtime and the config's created time
	Arch    string    // GOARCH of the binary
	Source  string    // the repository's URL, for the source label; optional
}

// entry is one file or folder of the image's only layer.
type entry struct {
	name     string // relative to /, as tar writes it
	mode     int64
	uid, gid int
	body     []byte // nil for a folder
}

// entries are the image's files, parents before children, sorted by name so that the layer's
// bytes do not depend on map or directory order.
func (in inputs) entries() []entry {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", uid, gid)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", gid)
	es := []entry{
		{name: "data/", mode: 0o700, uid: uid, gid: gid},
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: strings.TrimPrefix(caPath, "/"), mode: 0o644, body: in.CA},
		{name: strings.TrimPrefix(binaryPath, "/"), mode: 0o755, body: in.Binary},
	}
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
	return es
}

// layer is the uncompressed tar of entries: fixed owners, modes and times, no user or group
// names, so that nothing of the building machine gets in.
func (in inputs) layer() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range in.entries() {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: in.Created, Format: tar.FormatPAX}
		if e.body == nil {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// env is the image's environment: where the bot finds its config and keeps its journal, and
// the PATH a Docker build from scratch gets too, for exec targets in an image built on this one.
var env = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"BOT_CONFIG=" + configPath,
	"BOT_DATA_DIR=" + dataPath,
}

// build makes the image: one layer, OCI media types, the bot as entrypoint run as nonroot.
func build(in inputs) (v1.Image, error) {
	raw, err := in.layer()
	if err != nil {
		return nil, err
	}
	l, err := newLayer(raw)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: in.Created}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: l, MediaType: types.OCILayer, History: v1.History{
		Created: created, CreatedBy: "go run ./tools/image", Comment: "mongobot " + in.Version + ", CA bundle, /data for uid 65532",
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Created = in.Arch, "linux", created
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", uid, gid),
		Entrypoint: []string{binaryPath},
		Cmd:        []string{"serve"},
		Env:        env,
		Volumes:    map[string]struct{}{dataPath: {}},
		WorkingDir: "/",
		Labels:     in.labels(),
	}
	return mutate.ConfigFile(img, cf)
}

// layer is the image's one layer, compressed once and hashed once: the library's own layers
// compress again, or decompress, each time a digest or a blob is asked for, which is most of
// the build's time on a 50 MB binary.
type layer struct {
	gz             []byte
	raw            []byte
	digest, diffID v1.Hash
}

// newLayer compresses a tar at a fixed level with no name or time in the gzip header: the
// compressed bytes, and so the digest, follow from the tar alone (for a given Go release's
// compress/flate).
func newLayer(raw []byte) (*layer, error) {
	var z bytes.Buffer
	zw, err := gzip.NewWriterLevel(&z, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	l := &layer{gz: z.Bytes(), raw: raw}
	l.digest, _, _ = v1.SHA256(bytes.NewReader(l.gz))
	l.diffID, _, _ = v1.SHA256(bytes.NewReader(raw))
	return l, nil
}

func (l *layer) Digest() (v1.Hash, error)           { return l.digest, nil }
func (l *layer) DiffID() (v1.Hash, error)           { return l.diffID, nil }
func (l *layer) Compressed() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(l.gz)), nil }
func (l *layer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.raw)), nil
}
func (l *layer) Size() (int64, error)                { return int64(len(l.gz)), nil }
func (l *layer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }

// labels are the OCI annotations' keys, as image labels (what docker inspect shows).
func (in inputs) labels() map[string]string {
	ls := map[string]string{
		"org.opencontainers.image.title":       "mongobot",
		"org.opencontainers.image.description": "Slack ChatOps bot that manages MongoDB users",
		"org.opencontainers.image.version":     in.Version,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     in.Created.UTC().Format(time.RFC3339),
	}
	if in.Source != "" {
		ls["org.opencontainers.image.source"] = in.Source
	}
	return ls
}

// readCA reads the CA bundle, saying what to do when this machine has none where expected.
func readCA(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
		return nil, fmt.Errorf("no CA bundle at %s: install the ca-certificates package, or give a PEM bundle with -ca", path)
	case err != nil:
		return nil, fmt.Errorf("CA bundle: %v", err)
	case !bytes.Contains(b, []byte("-----BEGIN CERTIFICATE-----")):
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", path)
	}
	return b, nil
}
