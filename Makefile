# chatd — see README.md.
GO ?= go
# Packages whose tests take longest run with a larger timeout.
TEST_TIMEOUT ?= 30m

.PHONY: run test vet build bench bench-load fmt

# Start chatd with no set-up: SQLite in ./data, a self-signed certificate
# generated on first start, a first application created and printed.
run:
	$(GO) run ./cmd/chatd

# Everything CI runs: formatting, vet, and every test with the race detector.
test: vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

vet:
	$(GO) vet ./...

build:
	$(GO) build -o bin/ ./cmd/...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Micro-benchmarks of the hot paths (see BENCHMARKS.md for the load tool).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The load figures (BENCHMARKS.md): a fresh chatd built with go build, its
# data in a temporary directory and its ports on loopback, driven by
# cmd/chatbench in each mode. Sizes: BENCH_* variables (see the script).
bench-load:
	GO=$(GO) cmd/chatbench/bench-load.sh
