// Command image builds the mongobot container image without a container engine, with
// github.com/google/go-containerregistry (this is the only package that imports it: the bot
// itself never does).
//
//	go run ./tools/image -tar mongobot.tar     # docker load -i / podman load -i / crane push
//	go run ./tools/image -oci DIR              # an OCI image layout (skopeo, crane, oras)
//
// It prints the image's digest on stdout, and on stderr its tag (mongobot:<version>), platform
// and compressed size. Flags: -binary FILE (a static binary from tools/build.sh; without it,
// tools/build.sh is run here with -version), -version V (default git describe --tags --always
// --dirty, as tools/build.sh), -ca FILE (the PEM CA bundle, default
// /etc/ssl/certs/ca-certificates.crt), -source URL (the org.opencontainers.image.source label).
//
// The image is the Dockerfile's, on scratch: /mongobot, the CA bundle, /etc/passwd and
// /etc/group naming uid and gid 65532 nonroot, and an empty /data (0700, 65532:65532), in one
// layer. Its config runs /mongobot serve as 65532:65532 in /, with BOT_CONFIG=
// /etc/mongobot/bot.yaml (mounted by the operator) and BOT_DATA_DIR=/data (a volume). There
// is no shell: exec delivery targets need an image built on this one (the Dockerfile says how).
//
// The same binary, CA bundle, version and SOURCE_DATE_EPOCH give the same digest: every file
// has a fixed owner, mode and time, the entries are sorted, the layer is compressed once with
// no name or time in its gzip header, and the config's created time is fixed. That time is
// SOURCE_DATE_EPOCH when set, else the Unix epoch, not the commit's time, so that the digest
// follows from the bytes that go in alone (the same -binary and -version built elsewhere, or
// later, give the same one; a binary built from a tree without .git differs, since Go stamps
// the commit into it); a release sets SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) to show a real date. The CA
// bundle is this machine's, so two machines agree on the digest only with the same -ca file.
//
// Its test (go test ./tools/image) proves the image runs as a runtime would run it: it builds
// the release binary and the image twice (the same digest), checks that the image holds those
// files and no others, unpacks the OCI layout's layers into an empty root and runs the
// entrypoint with the config's environment, working folder and user 65532:65532, in a chroot
// as root or in a user namespace mapping 65532 to the caller otherwise (it fails, with the
// reason, where neither is allowed; MONGOBOT_IMAGE_USERNS=1 takes that way as root too). There,
// --version answers, check reads the config at the image's BOT_CONFIG and reaches a MongoDB
// emulator (connector/mongotest), and the default command serves a Slack stand-in
// (bot/slack/slacktest), answering a slash command, as 65532 (from /proc), writing its journal
// in /data and nowhere else. That the binary runs in a root with no libc proves it static.
package main
