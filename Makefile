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
FUZZTIME    ?= 5000x
BENCHTIME   ?= 3s

.PHONY: help build run test lint cross version-check test-go fuzz bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build the three binaries into bin/ with version, commit and date
	$(GOBUILD) -o bin/redflag-server ./cmd/redflag-server
	$(GOBUILD) -o bin/redflag-agent ./cmd/redflag-agent
	$(GOBUILD) -o bin/redflag ./cmd/redflag

run: build ## build and start the server on the embedded SQLite store in ./data
	./bin/redflag-server

test: lint cross version-check test-go fuzz ## everything CI checks: format, vet, staticcheck, cross builds, tests, short fuzzing

lint: ## gofmt (must print nothing), go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

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

fuzz: ## run every fuzz target briefly
	@set -e; for f in $$(grep -l '^func Fuzz' $$(git ls-files --cached --others --exclude-standard '*_test.go' 2>/dev/null || find . -name '*_test.go')); do \
	  dir=./$$(dirname $$f); \
	  for name in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | sed 's/^func //'); do \
	    echo "fuzz $$dir $$name"; \
	    out=$$($(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$dir 2>&1) || \
	      { echo "$$out"; exit 1; }; \
	  done; \
	done

bench: ## benchmarks against the real server (PostgreSQL too when REDFLAG_TEST_POSTGRES_URL is set)
	$(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) -timeout 30m ./...

clean: ## remove build output
	rm -rf bin
