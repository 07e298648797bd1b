# azdo-sidecar image: a static azdo-sidecar and git-credential-azdo on a
# distroless, non-root base; the vault target is azdo-vault alone. Built in
# CI with a container builder (no Docker engine runs on the development
# machines):
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse HEAD) -t azdo-sidecar .
#   docker build --target vault ... -t azdo-vault .
#
# The sidecar runs beside the environment (a second container in the same
# pod: same loopback, a shared volume for the socket and ca.pem); it never
# runs git, so the image has no git and no shell.

FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits reuse the module cache layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=devel
ARG COMMIT=unknown
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
      -ldflags "-s -w \
        -X github.com/azdo-sidecar/azdo-sidecar/internal/version.Version=${VERSION} \
        -X github.com/azdo-sidecar/azdo-sidecar/internal/version.Commit=${COMMIT}" \
      -o /out/ ./cmd/azdo-sidecar ./cmd/git-credential-azdo ./cmd/azdo-vault

# The runner's vault: mount its config, key and TLS files read-only and its
# store on a volume (README: "On a runner"). SIGHUP reloads the config.
FROM gcr.io/distroless/static-debian12:nonroot AS vault
COPY --from=build /out/azdo-vault /usr/local/bin/
USER nonroot:nonroot
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/azdo-vault", "serve"]

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/azdo-sidecar /out/git-credential-azdo /usr/local/bin/
USER nonroot:nonroot
# 3128: proxy; 9464: metrics. Both listen on loopback, which the containers
# of a pod share; set AZDO_SOCKET and AZDO_STATE_DIR to a volume shared with
# the environment container so it can reach the socket and trust ca.pem.
EXPOSE 3128 9464
ENTRYPOINT ["/usr/local/bin/azdo-sidecar", "serve"]
