# The ladder's everyday commands. Everything here needs only Go; tools are
# fetched through the Go module proxy at the versions pinned below.

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 10s
STAGE       ?= 03
ARGS        ?=

.PHONY: test conformance run lint fuzz cross clean

# test: everything CI runs as tests: every package with the race detector,
# the conformance suite against every stage, the TUTORIAL excerpts, and the
# seed corpus of every fuzz target.
test:
	$(GO) test -race -count=1 -timeout 20m ./...

# conformance: the conformance suite alone, ending with its matrix.
conformance:
	cd tests && $(GO) test -count=1 -timeout 20m -run TestConformance

# run: make run STAGE=02 ARGS=-trace, or make run-02.
run:
	$(GO) run ./$(firstword $(wildcard $(STAGE)-*)) $(ARGS)

run-%:
	$(GO) run ./$(firstword $(wildcard $*-*)) $(ARGS)

# lint: formatting, vet, and staticcheck on every system the ladder builds for.
lint: bin/staticcheck
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	for os in linux darwin freebsd; do GOOS=$$os bin/staticcheck ./... || exit 1; done

bin/staticcheck: Makefile
	GOBIN=$(CURDIR)/bin $(GO) install $(STATICCHECK)

# fuzz: run every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# cross: build and vet for Darwin and the BSDs, so that build tags stay honest.
cross:
	for os in darwin freebsd netbsd openbsd; do GOOS=$$os $(GO) build ./... && GOOS=$$os $(GO) vet ./... || exit 1; done

clean:
	rm -rf bin
	$(GO) clean -testcache
