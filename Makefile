# Treaty's developer targets; CI (.ci/run) runs the same steps.
GO       ?= go
# The toolchain Treaty is built with (see .ci/run); the go command fetches it.
export GOTOOLCHAIN ?= go1.27.3
TOOL     := $(GO) tool -modfile=tools/go.mod
BENCH    ?= .
COUNT    ?= 6
SOAK     ?= 3m

.PHONY: help build generate lint test bench fuzz soak vulncheck ci

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/treaty
	$(GO) build -o bin/treaty ./cmd/treaty

generate: ## regenerate gen/ from proto/ with buf (offline, pinned plugins)
	$(TOOL) buf generate

lint: ## buf lint, gofmt and go vet
	$(TOOL) buf lint
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || (gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'); exit 1)
	$(GO) vet ./...

test: ## run every test with the race detector (the README's test command)
	$(GO) test -race ./...

bench: ## run the benchmarks COUNT times (compare runs with benchstat)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) ./...

fuzz: ## run every fuzz target briefly (FUZZTIME=2m make fuzz for longer)
	.ci/fuzz

soak: ## run checks, issuance and revocations together for SOAK (3m) on loopback; fails on any error (not in CI)
	$(GO) run ./bench/soak -duration $(SOAK)

vulncheck: ## govulncheck against a local database built from golang.org/x/vulndb
	.ci/vulncheck

ci: ## run what CI runs
	./.ci/run
