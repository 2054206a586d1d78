# check_fastcgi: `make demo` runs the plugin against a throwaway php-fpm pool,
# `make test` runs lint and the test suite. Both set up what they need.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# tools/system-packages holds, per target, the Debian packages it needs and
# why, says so before installing, and leaves their own services disabled.

.PHONY: all demo bench-serve test test-on-fpm-host test-icinga2-agent zabbix-proof deb deb-proof dist test-debian-python lint format system-packages venv clean bench fuzz zipapp

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
	tools/system-packages test

# The demo shows php-fpm and the plugin: it installs php-fpm and nothing else.
demo: venv
	tools/system-packages demo
	$(BIN)/python -m tests.demo

# The scripts in tools/ have no .py suffix: they are named one by one.
TOOLS := tools/bench tools/bench-client tools/bench-serve tools/build-deb tools/build-dist tools/build-zipapp tools/deb-proof \
	tools/system-packages tools/test-on-debian-python tools/with-stock-fpm tools/zabbix-proof \
	debian/make-manpage debian/bin/check_fastcgi

lint: venv
	$(BIN)/ruff check fcgi_wire plugins tests $(TOOLS)
	$(BIN)/ruff format --check fcgi_wire plugins tests $(TOOLS)
	MYPYPATH=stubs $(BIN)/mypy --strict fcgi_wire plugins/check_fastcgi

format: venv
	$(BIN)/ruff format fcgi_wire plugins tests $(TOOLS)
	$(BIN)/ruff check --fix fcgi_wire plugins tests $(TOOLS)

test: system-packages lint
	$(BIN)/python -m pytest

# The suite once more while Debian's own php-fpm master runs (its stock www
# pool), as on a web host: each test must read only what its fixture made.
test-on-fpm-host: system-packages venv
	tools/with-stock-fpm $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .venv-bench build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

# A longer property-based campaign on the codec and the status parser
# (not part of `make test`): FUZZ_EXAMPLES examples per property.
FUZZ_EXAMPLES ?= 20000
fuzz: venv
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:randomly \
		tests/test_codec_properties.py --durations=0

# Two icinga2 daemons on loopback, a master and an agent with certificates
# from `icinga2 pki`: the agent runs its host's checks (command_endpoint).
# Not part of `make test` (about 25 s on two cores); .ci/run runs it.
test-icinga2-agent: system-packages venv
	CHECK_FASTCGI_ICINGA2_AGENT=1 $(BIN)/python -m pytest tests/test_icinga2_agent.py

# contrib/zabbix in a real Zabbix 6.0 (server, frontend, PostgreSQL, agent
# from Debian's packages, on loopback): import through the API, LLD, values
# per pool, the down trigger. As root, a few minutes; .ci/run runs it.
zabbix-proof: venv
	tools/system-packages zabbix-proof
	$(BIN)/python tools/zabbix-proof

# dist/check-fastcgi_*_all.deb: dpkg-buildpackage -us -uc -b in a copy of the
# tree (missing build dependencies come from Debian), then lintian (errors fail).
deb:
	tools/build-deb

# The .deb on a fresh Debian 12 chroot (as root; debootstrap's root is cached
# in /var/cache/check-fastcgi-debootstrap): every mode, serve, the unit, and
# the CheckCommand through Icinga 2's stock ITL include.
deb-proof: venv
	$(BIN)/python tools/deb-proof

# sdist and wheel into dist/: twine check --strict, the sdist built offline,
# the wheel with [serve] in a fresh venv.
dist:
	tools/build-dist

# Every mode, serve and discover on Debian's python3 with Debian's own
# python3-nagiosplugin (1.3.2) and python3-prometheus-client.
test-debian-python:
	tools/test-on-debian-python

# One file to copy into a plugin directory: dist/check_fastcgi.pyz.
zipapp: venv
	$(BIN)/python tools/build-zipapp

# What a check costs against a throwaway pool, next to the floor and
# cgi-fcgi; the library against the other Python clients; serve on a
# shared host (not part of `make test`).
bench: venv
	tools/system-packages bench
	$(BIN)/python tools/bench
	$(BIN)/python tools/bench-client
	$(BIN)/python tools/bench-serve

# /metrics of 200 ondemand pools (10 hung) next to 16 parallel cgi-fcgi,
# serve's RSS, and /ping under wrk (not part of `make test`).
bench-serve: venv
	tools/system-packages bench
	$(BIN)/python tools/bench-serve
