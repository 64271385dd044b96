# The two commands: `make run` (demo on SQLite) and `make test` (everything, SQLite and PostgreSQL).
# Both set up what they need on a fresh machine.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PG_VERSION := $(shell ls /etc/postgresql 2>/dev/null | head -n1)
APT_PACKAGES := postgresql chromium

.PHONY: run test test-sqlite test-postgres lint bench venv system-deps postgres clean

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch for the local-embeddings extra (else pip picks a CUDA build).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# axe-core (accessibility rules) for the browser tests, from the npm registry.
AXE_VERSION := 4.14.1
AXE := $(VENV)/axe/axe.min.js
$(AXE): | $(STAMP)
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	mkdir -p $(VENV)/axe
	cd $(VENV)/axe && npm pack --silent axe-core@$(AXE_VERSION) >/dev/null \
		&& tar xzf axe-core-$(AXE_VERSION).tgz package/axe.min.js \
		&& mv package/axe.min.js axe.min.js && rm -rf package axe-core-$(AXE_VERSION).tgz

run: venv
	$(BIN)/demandly serve --demo

# Debian packages the tests need (Chromium for browser tests; PostgreSQL if absent).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

postgres: system-deps
	@pg_isready -h 127.0.0.1 -p 5432 -q || { \
		v=$$(ls /etc/postgresql | head -n1); \
		pg_ctlcluster --skip-systemctl-redirect $$v main start; \
		for i in $$(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done; }
	@pg_isready -h 127.0.0.1 -p 5432

test: venv postgres $(AXE)
	$(BIN)/ruff check src tests migrations bench
	$(BIN)/pytest -q -p no:cacheprovider

test-sqlite: venv system-deps $(AXE)
	DEMANDLY_TEST_BACKENDS=sqlite $(BIN)/pytest -q

test-postgres: venv postgres $(AXE)
	DEMANDLY_TEST_BACKENDS=postgres $(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check src tests migrations bench
	$(BIN)/ruff format --check src tests migrations bench

clean:
	rm -rf $(VENV) .demandly .pytest_cache

bench: venv
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(MAKE) postgres
	$(BIN)/python bench/api.py
