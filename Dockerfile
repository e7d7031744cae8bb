# syntax=docker/dockerfile:1
#
# The RedFlag server image: redflag-server with the dashboard built in, and
# the agent binaries it hands out at /api/v1/downloads/agent/{os}/{arch}.
#
#   docker build -t redflag-server \
#     --build-arg COMMIT=$(git rev-parse --short=12 HEAD) .      (or: make docker)
#   docker run -d -p 8080:8080 -v redflag-data:/var/lib/redflag redflag-server
#
# See "Deploying the server" in README.md; docker-compose.yml runs it with
# PostgreSQL.

ARG GO_VERSION=1.26
ARG NODE_VERSION=20

# 1. The dashboard: web/ built by Vite into web/dist. Its output does not
#    depend on the target platform, so it runs on the build machine's.
FROM --platform=$BUILDPLATFORM node:${NODE_VERSION}-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# 2. The Go binaries, cross-compiled on the build machine (CGO off: the
#    SQLite driver is pure Go). The server embeds web/dist from stage 1.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
COPY --from=web /src/web/dist ./web/dist
ARG TARGETOS
ARG TARGETARCH
# VERSION defaults to the VERSION file plus +g<COMMIT>, as `make build` does
# outside a release tag; pass COMMIT (and VERSION for a release).
ARG VERSION
ARG COMMIT=unknown
ARG BUILD_DATE
# The server for the image's platform; then `make release`: the agent for
# every platform the server hands out, as {os}-{arch}/redflag-agent[.exe]
# with VERSION, and SHA256SUMS.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    version="${VERSION:-$(cat VERSION)+g${COMMIT}}"; \
    built="${BUILD_DATE:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}"; \
    pkg=github.com/redflaghq/redflag/internal/version; \
    CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" go build -trimpath \
      -ldflags "-s -w -X $pkg.Version=$version -X $pkg.Commit=$COMMIT -X $pkg.BuildDate=$built" \
      -o /out/usr/local/bin/redflag-server ./cmd/redflag-server; \
    make release VERSION="$version" COMMIT="$COMMIT" BUILD_DATE="$built" RELEASE_DIR=/tmp/release; \
    install -d /out/usr/share/redflag; \
    mv /tmp/release/agents /out/usr/share/redflag/agents; \
    install -d -m 0700 /out/var/lib/redflag

# 3. The runtime: no shell, no package manager; CA certificates and time
#    zones only. The server runs as uid 10001, never root.
FROM gcr.io/distroless/static-debian12
COPY --from=build /out/usr/ /usr/
COPY --from=build --chown=10001:10001 /out/var/lib/redflag /var/lib/redflag
ENV REDFLAG_DATA_DIR=/var/lib/redflag \
    REDFLAG_AGENT_BINARIES_DIR=/usr/share/redflag/agents \
    REDFLAG_LISTEN=:8080
# The SQLite store, the signing key and the JWT secret: keep this volume.
VOLUME ["/var/lib/redflag"]
EXPOSE 8080
USER 10001:10001
# redflag-server healthcheck reads REDFLAG_LISTEN (and REDFLAG_TLS_CERT) and
# GETs /health on it: the image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/redflag-server", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/redflag-server"]
