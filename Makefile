# klite: `make run` starts a broker on :9092 with data in ./data; `make test`
# runs every unit, fuzz-seed and integration test.

GO        ?= go
BIN       ?= bin/klite
WAL       ?= ./data
# Records each client integration test produces and consumes.
RECORDS   ?= 1000000
# Per-target duration of `make fuzz`.
FUZZTIME  ?= 30s
TESTFLAGS ?=

.PHONY: all build run test test-unit test-integration test-race test-race-unit fuzz bench bench-quick lint clean s3-server test-deps client-suites

all: build

# klite needs no cgo: a static binary runs anywhere and does not map libc
# (about 1.5 MB less idle RSS, measured).
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/klite

run: build
	$(BIN) -wal $(WAL)

# Fuzz seed corpora (testdata/fuzz) run as ordinary tests here.
test: test-unit test-integration

# A real S3 server (versitygw) for tier/'s integration tests, built once into
# ~/.cache/klite: minutes the first time, seconds after. KLITE_S3_TESTS=0 skips them.
s3-server:
	@scripts/versitygw.sh install >/dev/null

# Debian's kcat and kafka-python, real clients the integration tests drive;
# installed with apt-get when missing. KLITE_DEBIAN_DEPS=0 skips them.
test-deps:
	@scripts/debian-deps.sh

test-unit: s3-server
	$(GO) test -count=1 -timeout 10m $(TESTFLAGS) $$($(GO) list ./... | grep -v -e /cmd/klite)

test-integration: s3-server test-deps
	KLITE_TEST_RECORDS=$(RECORDS) $(GO) test -count=1 -timeout 14m -v $(TESTFLAGS) ./cmd/klite

# The integration tests drive the real binary; under -race they run with
# fewer records so the run stays within the machine's budget.
test-race: s3-server test-deps
	$(GO) test -race -count=1 -timeout 20m $(TESTFLAGS) $$($(GO) list ./... | grep -v -e /cmd/klite)
	KLITE_TEST_RECORDS=100000 KLITE_TEST_RACE=1 $(GO) test -race -count=1 -timeout 20m $(TESTFLAGS) ./cmd/klite

# The unit packages under the race detector, for CI: all of test-race's but
# the bench scenarios, which start brokers and take minutes under -race.
test-race-unit: s3-server
	$(GO) test -race -count=1 -timeout 15m $(TESTFLAGS) $$($(GO) list ./... | grep -v -e /cmd/klite -e /bench/internal/scenario)

# Client libraries' own integration suites (franz-go kgo, segmentio/kafka-go,
# confluent-kafka-go classic and KIP-848) against bin/klite, from the module
# cache at go.mod's versions; README "Client suites". Not part of `make test`:
# about 20 minutes. SUITES='kgo confluent' picks some.
SUITES ?=

client-suites: build
	scripts/client-suites.sh $(SUITES)

# Runs every Fuzz target for FUZZTIME (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for target in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
			echo "== $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# System benchmarks against the real binary (bench/ writes BENCHMARKS.md);
# BENCHFLAGS passes more flags, e.g. BENCHFLAGS='-scenario produce-acks-all'.
# The tier-* scenarios run S3 on a local versitygw (s3-server builds it once);
# bench-quick leaves them out unless asked: BENCHFLAGS='-scenario tier'.
BENCHFLAGS ?=

bench: build s3-server
	$(GO) run ./bench -klite $(BIN) $(BENCHFLAGS)

bench-quick: build s3-server
	$(GO) run ./bench -quick -klite $(BIN) $(BENCHFLAGS)

# staticcheck is pinned in go.mod (a tool directive): `go tool` runs that
# version from the module cache, the same here and in CI.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go'; git ls-files --others --exclude-standard '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

clean:
	rm -rf bin
	$(GO) clean -testcache
