# syntax=docker/dockerfile:1
# Build: docker build -t mongobot --build-arg VERSION=$(git describe --tags --always) .
# Run:   docker run -d -e SLACK_APP_TOKEN -e SLACK_BOT_TOKEN -e PROD_MONGO_URI \
#          -v $PWD/bot.yaml:/etc/mongobot/bot.yaml:ro -v mongobot-data:/data mongobot

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN sh tools/build.sh /out/bot "$VERSION"
# The data folder, owned by the non-root user the bot runs as.
RUN mkdir -p /out/data && chown 65532:65532 /out/data && chmod 0700 /out/data

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /out/bot /bot
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV BOT_CONFIG=/etc/mongobot/bot.yaml BOT_DATA_DIR=/data
VOLUME ["/data"]
ENTRYPOINT ["/bot"]
CMD ["serve"]
