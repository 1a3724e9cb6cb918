# Fairbid: two commands. `make run` installs everything and serves the demo on
# http://127.0.0.1:5000; `make test` installs the same and runs lint and the whole suite.
# Both are idempotent: stamps skip what has not changed.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
STAMPS := $(VENV)/.stamps
export FLASK_APP := app:create_app

# Debian packages: CJK fonts and Pango for PDF records, Chromium for browser tests,
# poppler-utils (pdfsig) and NSS tools for signature checks.
APT_PACKAGES := chromium fonts-noto-cjk fontconfig libpango-1.0-0 libpangoft2-1.0-0 \
	libharfbuzz-subset0 poppler-utils libnss3-tools

# The browser sealing script (frontend/seal.js + @hpke/core), one IIFE exposing
# window.FairbidSeal, served with Subresource Integrity (app/bids/sealing_script.py).
# Build output, not committed; esbuild's output is deterministic for the pinned versions.
SEAL_BUNDLE := app/static/build/seal.js
SEAL_SOURCES := $(wildcard frontend/*.js)

PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2

.PHONY: run test drills lint format install system-deps python-deps node-deps translations \
	extract-messages bench clean guide

run: install
	$(VENV)/bin/flask db upgrade
	$(VENV)/bin/flask seed-demo
	FAIRBID_CLOCK_IN_PROCESS=1 $(VENV)/bin/flask run --host 127.0.0.1 --port 5000

test: install lint
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# Fault drills alone (tests/drills, marker `drills`; `make test` includes them): on the real
# PostgreSQL (DATABASE_URL; they skip on anything else) with real gunicorn and Redis
# processes they start and kill themselves (tests/drills/conftest.py). About 45 s here.
drills: install
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile -m drills tests/drills $(PYTEST_ARGS)

lint: python-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: python-deps
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

install: system-deps python-deps node-deps translations

system-deps: $(STAMPS)/apt

python-deps: $(STAMPS)/python

node-deps: node_modules/.installed $(SEAL_BUNDLE)

$(STAMPS)/apt: Makefile | $(STAMPS)
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages: $$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMPS):
	@mkdir -p $@

$(STAMPS)/python: pyproject.toml | $(VENV)/bin/python $(STAMPS)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Sealing script bundle (see SEAL_BUNDLE above).
$(SEAL_BUNDLE): $(SEAL_SOURCES) node_modules/.installed Makefile
	node_modules/.bin/esbuild frontend/seal.js --bundle --format=iife --global-name=FairbidSeal \
		--platform=browser --target=es2020 --external:crypto --charset=ascii \
		--legal-comments=inline --log-level=warning --outfile=$@

# Compiled catalogues are build output (.mo is not committed).
translations: $(STAMPS)/python
	@for po in app/translations/*/LC_MESSAGES/messages.po; do \
		mo=$${po%.po}.mo; \
		if [ ! -f "$$mo" ] || [ "$$po" -nt "$$mo" ]; then \
			$(VENV)/bin/pybabel -q compile -f -i "$$po" -o "$$mo" || exit 1; \
		fi; \
	done

extract-messages: python-deps
	$(VENV)/bin/pybabel -q extract -F babel.cfg -k _l -k lazy_gettext --ignore-dirs=".* _* .venv node_modules instance tests bench" -o app/translations/messages.pot .
	$(VENV)/bin/pybabel -q update -i app/translations/messages.pot -d app/translations

# The user guide's screenshots (docs/guide/img/): the demo seed in a real browser, in
# English, Korean and Chinese (tests/browser/test_guide_screenshots.py, skipped by `make test`).
guide: install
	FAIRBID_GUIDE=1 $(VENV)/bin/pytest -p no:cacheprovider -q -m guide tests/browser/test_guide_screenshots.py

# Every benchmark of bench/, short settings; e.g. BENCH_ARGS="--only envelope,opening".
BENCH_ARGS ?=
bench: install
	$(PY) bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules instance .pytest_cache .ruff_cache app/static/build
