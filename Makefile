# check_fastcgi: `make demo` runs the plugin against a throwaway php-fpm pool,
# `make test` runs lint and the test suite. Both set up what they need.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Debian package:command pairs the suite needs.
SYSTEM_PACKAGES := 'php-fpm:php-fpm[0-9]*' fcgiwrap:fcgiwrap spawn-fcgi:spawn-fcgi php-cgi:php-cgi time:time monit:monit icinga2-bin:icinga2 nagios4-core:nagios4 zabbix-agent:zabbix_agentd

.PHONY: all demo test lint format system-packages venv clean bench fuzz zipapp

all: test

# Debian's python3 has no venv module without python3-venv.
$(BIN)/python:
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || tools/system-packages --install python3-venv
	$(PYTHON) -m venv $(VENV)

# Re-install when the metadata changes; the install is editable, so code
# changes need nothing.
$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test,lint]'
	touch $@

venv: $(VENV)/.installed

system-packages:
	tools/system-packages $(SYSTEM_PACKAGES)

demo: system-packages venv
	$(BIN)/python -m tests.demo

lint: venv
	$(BIN)/ruff check fcgi_wire plugins tests
	$(BIN)/ruff format --check fcgi_wire plugins tests
	MYPYPATH=stubs $(BIN)/mypy --strict fcgi_wire plugins/check_fastcgi

format: venv
	$(BIN)/ruff format fcgi_wire plugins tests
	$(BIN)/ruff check --fix fcgi_wire plugins tests

test: system-packages lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

# A longer property-based campaign on the codec and the status parser
# (not part of `make test`): FUZZ_EXAMPLES examples per property.
FUZZ_EXAMPLES ?= 20000
fuzz: venv
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:randomly \
		tests/test_codec_properties.py --durations=0

# One file to copy into a plugin directory: dist/check_fastcgi.pyz.
zipapp: venv
	$(BIN)/python tools/build-zipapp

# What a check costs against a throwaway pool, next to the floor and
# cgi-fcgi; the library against a raw socket (not part of `make test`).
BENCH_PACKAGES := 'php-fpm:php-fpm[0-9]*' libfcgi-bin:cgi-fcgi time:time hyperfine:hyperfine
bench: venv
	tools/system-packages $(BENCH_PACKAGES)
	$(BIN)/python tools/bench
