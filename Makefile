# cancelnotify — the two commands a newcomer needs are `make demo` and `make test`.
GO            ?= go
BIN           := bin/cancelnotify
DATABASE_URL  ?= postgres://postgres@127.0.0.1:5432/postgres
TEST_DATABASE_URL ?= $(DATABASE_URL)
export DATABASE_URL TEST_DATABASE_URL

PREFIX        ?= /usr/local

.PHONY: build install test demo lint bench bench-shared chaos clean fuzz

build:
	$(GO) build -o $(BIN) ./cmd/cancelnotify

# Puts cancelnotify on the PATH: $(PREFIX)/bin/cancelnotify (sudo make install).
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/cancelnotify

# The whole suite against real Postgres (TEST_DATABASE_URL); each test makes
# and drops its own schema.
test:
	$(GO) test -race -count=1 -timeout 15m ./...

# Generated outbox rows through the real relay for FUZZ_TIME (default 1m),
# beyond the seeds `make test` runs: every row settles, none blocks another.
FUZZ_TIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzRelay$$' -fuzztime $(FUZZ_TIME) -parallel 2 ./outbox/

demo: build
	./$(BIN) demo

# Throughput, latency and Postgres cost of the daemon (README.md, "Benchmark"),
# with webhooks and then with hookInfo polling only; about 12 minutes; writes
# bench.json and bench-polling.json. Smaller: make bench BENCH_FLAGS="--burst 5000 --paced-for 20s"
bench: build
	./$(BIN) bench $(BENCH_FLAGS)
	./$(BIN) bench --no-webhooks --json bench-polling.json $(BENCH_FLAGS)

# The shared rate across instances: three daemons, one channel at 20/s, a
# kill midway, two channels (about a minute).
bench-shared: build
	./$(BIN) bench --shared-rate

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin

# The chaos run (README.md, "The chaos run"): 10,000 cancellations from
# concurrent writers through two 1MSG channels while the daemon is SIGKILLed
# 5 times, Postgres restarts once and the sandbox injects faults; prints one
# accounting table, non-zero on a failed must. It restarts the machine's Postgres: other tests running
# meanwhile see their connections drop.
# More flags: make chaos CHAOS_FLAGS="--keep --seed 42"
chaos: build
	$(GO) run ./cmd/chaos --bin $(BIN) --rows 10000 --kills 5 --pg-restarts 1 $(CHAOS_FLAGS)

# The CI version: 1,000 rows, 2 kills, 1 Postgres restart, under 3 minutes.
.PHONY: chaos-small
chaos-small: build
	$(GO) run ./cmd/chaos --bin $(BIN) --rows 1000 --kills 2 --pg-restarts 1 --write-for 20s --after 10s --timeout 2m $(CHAOS_FLAGS)
