# RedFlag: the README's two commands are `make run` and `make test`.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

GO          ?= go
PKG         := github.com/redflaghq/redflag
BASE_VER    := $(shell cat VERSION)
GIT_TAG     := $(shell git describe --tags --exact-match --match 'v*' 2>/dev/null)
COMMIT      ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
VERSION     ?= $(if $(GIT_TAG),$(patsubst v%,%,$(GIT_TAG)),$(BASE_VER)+g$(COMMIT))
BUILD_DATE  ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS     := -s -w -X $(PKG)/internal/version.Version=$(VERSION) \
               -X $(PKG)/internal/version.Commit=$(COMMIT) \
               -X $(PKG)/internal/version.BuildDate=$(BUILD_DATE)
GOBUILD     := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
STATICCHECK := $(GO) tool -modfile=tools/go.mod staticcheck
# Agent binaries the server hands out: {os}-{arch}/redflag-agent[.exe] and
# VERSION in one directory (REDFLAG_AGENT_BINARIES_DIR, docs/CONFIGURATION.md).
HOST_OS     := $(shell $(GO) env GOOS)
HOST_ARCH   := $(shell $(GO) env GOARCH)
AGENTS_DIR  := bin/agents
RELEASE_DIR := bin/release
RELEASE_PLATFORMS := linux/amd64 linux/arm64 linux/arm windows/amd64 windows/arm64 darwin/amd64 darwin/arm64
SHA256SUM   := $(shell command -v sha256sum >/dev/null 2>&1 && echo sha256sum || echo 'shasum -a 256')
FUZZTIME    ?= 5000x
BENCHTIME   ?= 3s

.PHONY: help build run test lint cross version-check test-go test-web test-browser web fuzz bench bench-browser clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

# The dashboard (web/, React + Vite) is built into web/dist and embedded in
# redflag-server. It needs Node.js >= 20.19 and npm; without them, outside
# CI, the server is built without it and says so at /.
NPM         ?= npm
NPX         ?= npx
CHROMIUM    ?= /usr/bin/chromium
WEB_SRC     := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json
HAVE_NPM    := $(shell command -v $(NPM) >/dev/null 2>&1 && echo yes)

# npm ci whenever node_modules is missing or the lock file changed.
web/node_modules/.redflag-installed: web/package.json web/package-lock.json
	cd web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(NPM) ci --no-audit --no-fund
	@touch $@

web/dist/index.html: web/node_modules/.redflag-installed $(WEB_SRC)
	cd web && $(NPM) run build

ifeq ($(HAVE_NPM),yes)
web: web/dist/index.html ## build the dashboard into web/dist (npm ci first when needed)
else
web:
	@if [ -n "$$CI" ]; then echo "web: npm is missing; CI must build the dashboard (install Node.js >= 20.19)"; exit 1; fi
	@echo "web: npm not found: building the server WITHOUT the dashboard (install Node.js >= 20.19 and npm to include it)"
endif

build: web ## build the dashboard, then the three binaries into bin/ with version, commit and date
	$(GOBUILD) -o bin/redflag-server ./cmd/redflag-server
	$(GOBUILD) -o bin/redflag-agent ./cmd/redflag-agent
	$(GOBUILD) -o bin/redflag ./cmd/redflag
	@d=$(AGENTS_DIR)/$(HOST_OS)-$(HOST_ARCH); ext=$(if $(filter windows,$(HOST_OS)),.exe,); mkdir -p $$d && \
	  cp bin/redflag-agent $$d/redflag-agent$$ext && echo '$(VERSION)' > $$d/VERSION && \
	  echo "the agent for $(HOST_OS)/$(HOST_ARCH) is in $$d: the server hands it out (make release builds every platform)"

run: build ## build and start the server on the embedded SQLite store in ./data
	./bin/redflag-server

test: lint lint-scripts cross version-check test-go test-web test-browser fuzz ## everything CI checks: format, vet, staticcheck, shellcheck, cross builds, Go, dashboard and browser tests, short fuzzing

lint: ## gofmt (must print nothing), go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

.PHONY: lint-scripts release
lint-scripts: ## shellcheck the rendered install scripts (under CI, installs shellcheck and sudo's visudo when missing)
	@if [ -n "$$CI" ] && ! { command -v shellcheck && command -v visudo; } >/dev/null 2>&1; then \
	  echo "lint-scripts: installing shellcheck and sudo (visudo) from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck sudo >/dev/null || exit 1; \
	fi
	@if command -v shellcheck >/dev/null 2>&1; then $(GO) test -count=1 -run '^TestShellcheck$$' ./internal/installscript; \
	else echo "lint-scripts: SKIPPED: shellcheck is not installed (apt-get install -y shellcheck; under CI=1 this target installs it)"; fi

release: ## cross-compile the agent for every platform it ships on into bin/release/agents, with SHA256SUMS
	@rm -rf $(RELEASE_DIR)/agents
	@set -e; for p in $(RELEASE_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; ext=; if [ $$os = windows ]; then ext=.exe; fi; \
	  d=$(RELEASE_DIR)/agents/$$os-$$arch; mkdir -p $$d; echo "agent $$os/$$arch $(VERSION)"; \
	  GOOS=$$os GOARCH=$$arch GOARM=7 $(GOBUILD) -o $$d/redflag-agent$$ext ./cmd/redflag-agent; \
	  echo '$(VERSION)' > $$d/VERSION; \
	done
	cd $(RELEASE_DIR)/agents && $(SHA256SUM) */redflag-agent* > SHA256SUMS
	@echo "serve them with REDFLAG_AGENT_BINARIES_DIR=$(RELEASE_DIR)/agents, or copy $(RELEASE_DIR)/agents/* to <data dir>/agents"

cross: ## the agent must build for every platform it ships on
	GOOS=windows GOARCH=amd64 $(GOBUILD) -o /dev/null ./cmd/redflag-agent
	GOOS=darwin  GOARCH=arm64 $(GOBUILD) -o /dev/null ./cmd/redflag-agent
	GOOS=linux   GOARCH=arm64 $(GOBUILD) -o /dev/null ./cmd/redflag-agent

version-check: build ## a built binary must carry a real version, commit and date
	@for b in redflag-server redflag-agent redflag; do \
	  out=$$(./bin/$$b --version); echo "$$out"; \
	  case "$$out" in *" dev "*|*unknown*) echo "$$b reports a placeholder version"; exit 1;; esac; \
	done

test-go: ## unit and end-to-end tests (PostgreSQL too when REDFLAG_TEST_POSTGRES_URL is set)
	$(GO) test -race -count=1 -timeout 15m ./...

test-web: web/node_modules/.redflag-installed ## the dashboard's type check (TypeScript strict) and unit tests (Vitest)
	cd web && $(NPM) run typecheck && $(NPM) test

test-browser: build ## browser tests: Chromium (playwright-core) against bin/redflag-server on a loopback port
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ -n "$$CI" ]; then \
	    echo "test-browser: installing Debian's chromium"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || exit 1; \
	  else \
	    echo "test-browser: SKIPPED: $(CHROMIUM) is missing (apt-get install -y chromium; under CI=1 this target installs it)"; exit 0; \
	  fi; \
	fi; \
	if [ ! -f web/dist/index.html ]; then echo "test-browser: SKIPPED: the dashboard is not built (needs npm)"; exit 0; fi; \
	cd web && CHROMIUM_PATH=$(CHROMIUM) $(NPM) run e2e

fuzz: ## run every fuzz target briefly
	@set -e; for f in $$(grep -l '^func Fuzz' $$(git ls-files --cached --others --exclude-standard '*_test.go' 2>/dev/null || find . -name '*_test.go')); do \
	  dir=./$$(dirname $$f); \
	  for name in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | sed 's/^func //'); do \
	    echo "fuzz $$dir $$name"; \
	    out=$$($(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$dir 2>&1) || \
	      { echo "$$out"; exit 1; }; \
	  done; \
	done

bench: ## benchmarks against the real server (PostgreSQL too when REDFLAG_TEST_POSTGRES_URL is set), then bench-browser
	$(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) -timeout 30m ./...
	$(MAKE) bench-browser

bench-browser: build ## the Agents page with 10,000 agents in Chromium: first page, sort and search, each from the action to the rows (target <= 1 s)
	@if [ ! -x "$(CHROMIUM)" ]; then echo "bench-browser: SKIPPED: $(CHROMIUM) is missing (apt-get install -y chromium)"; exit 0; fi; \
	if [ ! -f web/dist/index.html ]; then echo "bench-browser: SKIPPED: the dashboard is not built (needs npm)"; exit 0; fi; \
	cd web && CHROMIUM_PATH=$(CHROMIUM) $(NPX) vitest run --config vitest.perf.config.ts

clean: ## remove build output (keeps web/node_modules)
	rm -rf bin web/test-results
	find web/dist -mindepth 1 ! -name .keep -delete 2>/dev/null || true

.PHONY: docker
docker: ## build the server image (Dockerfile) carrying this version, commit and date
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg BUILD_DATE=$(BUILD_DATE) \
	  -t redflag-server:$(subst +,-,$(VERSION)) -t redflag-server:latest .
