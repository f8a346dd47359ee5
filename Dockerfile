# syntax=docker/dockerfile:1
# The mongobot image: the static binary, the CA bundle and an empty /data owned by uid 65532,
# on scratch. Nothing else: no shell, no libc, no package manager.
#
# With Docker:
#   docker build -t mongobot --build-arg VERSION=$(git describe --tags --always --dirty) .
#   (.git is kept out of the build context by .dockerignore, so the version comes in as an arg.)
#
# Without Docker (what CI does, on a machine with only Go): the same files, user and config,
# built with go-containerregistry, reproducibly (same binary, CA bundle and version: same digest):
#   go run ./tools/image -tar mongobot.tar        # prints the digest
#   docker load -i mongobot.tar   |   podman load -i mongobot.tar   |   crane push mongobot.tar REGISTRY/mongobot:TAG
# (go run ./tools/image -oci DIR writes an OCI image layout instead, for skopeo or crane.)
#
# Run:
#   docker run -d -e SLACK_APP_TOKEN -e SLACK_BOT_TOKEN -e PROD_MONGO_URI -e BOT_ENCRYPTION_KEY \
#     -v $PWD/bot.yaml:/etc/mongobot/bot.yaml:ro -v mongobot-data:/data mongobot
#
# exec delivery targets: the command runs in this image, and scratch has no program besides
# /mongobot, no shell for sh -c. To deliver with a program, build your own image on top:
#   - a small base that has what you need, with the bot copied in:
#       FROM busybox:1.37-musl            (a shell and coreutils; alpine or debian:slim for curl, jq...)
#       COPY --from=mongobot:TAG /mongobot /mongobot
#       COPY --from=mongobot:TAG --chown=65532:65532 /data /data
#       USER 65532:65532
#       ENV BOT_CONFIG=/etc/mongobot/bot.yaml BOT_DATA_DIR=/data
#       ENTRYPOINT ["/mongobot"]
#       CMD ["serve"]
#   - or keep this image and add the program from a build stage: a static one (COPY --from=...
#     /usr/local/bin/tool /usr/local/bin/tool), or a dynamic one with its loader and every
#     library ldd lists, copied to the same paths.
# A command is found through PATH (set below, as Docker sets it); give it as an absolute path.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN sh tools/build.sh /out/mongobot "$VERSION"
# The data folder (owned by the non-root user the bot runs as, below), and that user's name.
RUN mkdir -p /out/data /out/etc && chmod 0700 /out/data && \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >/out/etc/passwd && \
    printf 'root:x:0:\nnonroot:x:65532:\n' >/out/etc/group

FROM scratch
ARG VERSION=dev
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/etc/passwd /out/etc/group /etc/
COPY --from=build /out/mongobot /mongobot
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin BOT_CONFIG=/etc/mongobot/bot.yaml BOT_DATA_DIR=/data
LABEL org.opencontainers.image.title=mongobot \
      org.opencontainers.image.description="Slack ChatOps bot that manages MongoDB users" \
      org.opencontainers.image.version=$VERSION \
      org.opencontainers.image.licenses=Apache-2.0
VOLUME ["/data"]
WORKDIR /
ENTRYPOINT ["/mongobot"]
CMD ["serve"]
