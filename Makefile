# cancelnotify — the two commands a newcomer needs are `make demo` and `make test`.
GO            ?= go
BIN           := bin/cancelnotify
DATABASE_URL  ?= postgres://postgres@127.0.0.1:5432/postgres
TEST_DATABASE_URL ?= $(DATABASE_URL)
export DATABASE_URL TEST_DATABASE_URL

.PHONY: build test demo lint bench chaos clean

build:
	$(GO) build -o $(BIN) ./cmd/cancelnotify

# The whole suite against real Postgres (TEST_DATABASE_URL); each test makes
# and drops its own schema.
test:
	$(GO) test -race -count=1 -timeout 15m ./...

demo: build
	./$(BIN) demo

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin
