# The ladder's everyday commands. Everything here needs only Go; tools are
# fetched through the Go module proxy at the versions pinned below.

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 1m
STAGE       ?= 03
ARGS        ?=

.PHONY: test conformance check exercises diff soak run lint fuzz cross clean bench bench-setup pictures pictures-setup

# test: everything CI runs as tests: every package with the race detector,
# the conformance suite against every stage, the TUTORIAL excerpts, the
# seed corpus of every fuzz target; and, in their own modules, the
# pictures (each SVG true to its source, each recorded scenario run again
# and showing its lesson) and the bench charts' code.
test:
	$(GO) test -race -count=1 -timeout 20m ./...
	cd tests/pictures && $(GO) test -race -count=1 -timeout 10m ./...
	cd tests/benchchart && $(GO) test -count=1 ./...

# conformance: the conformance suite alone, ending with its matrix.
conformance:
	cd tests && $(GO) test -count=1 -timeout 20m -run TestConformance

# check: the properties matching PROPERTY against a stage, from this
# repository or, with STAGES=DIR, from a copy of it (yours, a student's, or
# one with an exercise's patch applied). STAGE=03 is 03-select-server (on
# every backend, for 04 and 05); STAGE=03/busy-poll the program beside it;
# anything else, the beginning of the stage's name, as the matrix shows it
# (a regexp; its parentheses are taken literally):
#   make check STAGE=03 PROPERTY=fairness
#   make check STAGE=02/blocking-loop PROPERTY=concurrency STAGES=~/my-copy
#   make check STAGE='04-reactor-server (epoll)' PROPERTY=idle-cpu
PROPERTY ?= .
STAGES   ?=
check:
	@stage='$(STAGE)'; case "$$stage" in \
	  [0-9][0-9]) stage="^$$stage-[a-z-]+( \(|$$)";; \
	  [0-9][0-9]/*) stage="^$${stage%%/*}-[a-z-]+/$${stage#*/}$$";; \
	  *) stage="^$$(printf '%s' "$$stage" | sed 's/[()]/\\&/g')";; \
	esac; \
	cd tests && $(GO) test -count=1 -timeout 20m -run '^TestConformance$$' \
		-stage "$$stage" -property '$(PROPERTY)' $(if $(STAGES),-stages '$(abspath $(STAGES))')

# diff: what one stage changes from the one before, as a lesson:
#   make diff FROM=03 TO=04
#   make diff FROM=03-select-server/busy-poll TO=03
# A number picks the stage's directory; a path, that program.
FROM ?= 03
TO   ?= 04
diff:
	@from=$$(ls -d $(FROM) $(FROM)-* 2>/dev/null | head -1); to=$$(ls -d $(TO) $(TO)-* 2>/dev/null | head -1); \
	if [ -z "$$from" ] || [ -z "$$to" ]; then echo "make diff: no stage $(FROM) or $(TO)"; exit 2; fi; \
	diff -u "$$from/main.go" "$$to/main.go"; test $$? -le 1

# exercises: each patch in tests/exercises planted in a copy of the
# repository, and the property it names shown to catch it (RUNS times);
# EXERCISE=read-until-eagain for one.
RUNS     ?= 1
EXERCISE ?=
exercises:
	cd tests && $(GO) test -count=$(RUNS) -timeout 30m -run '^TestExercises$$$(if $(EXERCISE),/^$(EXERCISE)$$)' -v | grep -E '^(=== RUN|---|ok|FAIL|PASS)|: (pass|FAIL)$$'

# soak: the conformance suite's chaos check, long: SOAK_CLIENTS clients
# at once, well-behaved and hostile mixed at random, against every server
# stage and backend for SOAK_TIME each (make test runs it for seconds).
# Each stage's line in the figures gives the seed that replays it.
SOAK_TIME    ?= 1m
SOAK_CLIENTS ?= 500
soak:
	cd tests && $(GO) test -count=1 -timeout 3h -run TestConformance -property '^chaos$$' \
		-soak $(SOAK_TIME) -soak-clients $(SOAK_CLIENTS)

# run: make run-03 ARGS=-trace, make run-03-busy-poll (a program beside a
# stage: 03-select-server/busy-poll), make run STAGE=04. It builds the
# program into bin/, writes its PID to bin/NAME.pid (for top, ps and
# strace: top -p $$(cat bin/busy-poll.pid)), and execs it: the program is
# make's only child, and Ctrl-C ends it with its own exit status (0, as the
# contract says), where go run would report 1.
run: run-$(STAGE)

run-%:
	@n='$*'; n=$${n%%-*}; rest='$*'; rest=$${rest#$$n}; rest=$${rest#-}; \
	dir=$$(ls -d $$n-*/ 2>/dev/null | head -1); dir=$${dir%/}; \
	if [ -f '$*/main.go' ]; then prog='$*'; \
	elif [ -n "$$rest" ] && [ -f "$$dir/$$rest/main.go" ]; then prog=$$dir/$$rest; \
	elif [ -z "$$rest" ] && [ -f "$$dir/main.go" ]; then prog=$$dir; \
	else echo "make run: no program run-$* (try run-03, run-03-busy-poll, run-02-blocking-loop)"; exit 2; fi; \
	name=$$(basename $$prog); mkdir -p bin; \
	$(GO) build -o bin/$$name ./$$prog || exit 1; \
	echo $$$$ > bin/$$name.pid; \
	echo "make run: bin/$$name, pid $$$$ (also in bin/$$name.pid)" >&2; \
	exec bin/$$name $(ARGS)

# lint: formatting, vet, and staticcheck on every system the ladder builds
# for; and vet and staticcheck in the modules of the pictures and charts.
lint: bin/staticcheck
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	for os in linux darwin freebsd; do GOOS=$$os bin/staticcheck ./... || exit 1; done
	for m in tests/pictures tests/benchchart; do (cd $$m && $(GO) vet ./... && $(CURDIR)/bin/staticcheck ./...) || exit 1; done

bin/staticcheck: Makefile
	GOBIN=$(CURDIR)/bin $(GO) install $(STATICCHECK)

# fuzz: run every fuzz target for FUZZTIME each (make fuzz FUZZTIME=15m).
# A crash writes its input to the package's testdata/fuzz/, where make test
# runs it from then on; commit it with the fix. (-timeout bounds the whole
# run, and go test's default of 10 minutes would end a long one.)
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -timeout 6h $$pkg || exit 1; \
		done; \
	done

# cross: build and vet for Darwin and the BSDs, so that build tags stay honest.
cross:
	for os in darwin freebsd netbsd openbsd; do GOOS=$$os $(GO) build ./... && GOOS=$$os $(GO) vet ./... || exit 1; done

# bench: every server stage, connection count and load, as TUTORIAL.md's
# last chapter shows them: results in tests/bench/results.txt (benchstat's
# format), tables and charts beside them. BENCH_SHORT=1 for a quicker pass.
# The cells the targets compare (04, 05, 06, 07, 05 on io_uring and
# libevent at 1000 and 5000 ping-pong connections) run BENCH_REPEAT more
# times, interleaved, and the tables show medians: a shared machine's noise
# does not decide them.
BENCH_REPEAT ?= 6
TARGET_CELLS := Stages/stage=(04-reactor-server-epoll|05-bufferevent-server-epoll|05-bufferevent-server-io_uring|06-goroutine-server|07-completion-server|libevent-C)$$/conns=(1000|5000)$$/load=pingpong
bench: bench-setup
	@mkdir -p tests/bench
	@if pkg-config --exists libevent 2>/dev/null; then export TINYASYNC_LIBEVENT=1; \
	else echo "bench: libevent is not installed (apt-get install libevent-dev): its row is left out"; fi; \
	command -v strace >/dev/null || echo "bench: strace is not installed (apt-get install strace): no system call counts"; \
	$(GO) test -run '^$$' -bench Stages -benchtime 1x -timeout 3h ./tests | tee tests/bench/results.txt && \
	for i in $$(seq $(BENCH_REPEAT)); do \
		$(GO) test -run '^$$' -bench '$(TARGET_CELLS)' -benchtime 1x -timeout 1h ./tests | grep '^Benchmark' | tee -a tests/bench/results.txt; \
	done
	cd tests/benchchart && $(GO) run . -in ../bench/results.txt -out ../bench

# bench-setup installs what the benchmarks use, from Debian's packages, when
# it is missing and this is root: strace to count system calls, a C compiler
# and libevent for the C reference server.
bench-setup:
	@missing=""; command -v strace >/dev/null || missing="$$missing strace"; \
	command -v cc >/dev/null || missing="$$missing gcc"; \
	pkg-config --exists libevent 2>/dev/null || missing="$$missing pkg-config libevent-dev"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
		else echo "bench: missing$$missing (install them for the full picture)"; fi; \
	fi

# pictures: TUTORIAL.md's pictures, all of them: each scenario in
# tests/pictures recorded again from a real run of its stage (06 under
# strace), every D2 source there rendered to the SVG beside it, and the
# bench charts redrawn from tests/bench/results.txt. Commit what changed.
pictures: pictures-setup
	cd tests/pictures && $(GO) run . -record
	cd tests/benchchart && $(GO) run . -in ../bench/results.txt -out ../bench

# pictures-setup installs strace, which records 06's scenario, when it is
# missing and this is root; otherwise it says so.
pictures-setup:
	@if ! command -v strace >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "pictures: installing strace (apt-get install strace)"; \
			apt-get update -qq && apt-get install -y -qq strace >/dev/null; \
		else echo "pictures: strace is not installed, and this is not root: install it (apt-get install strace) to record 06"; exit 1; fi; \
	fi

clean:
	rm -rf bin
	$(GO) clean -testcache
