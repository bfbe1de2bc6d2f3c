# The README's two commands: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: setup dirac test demo demo-down lint

setup:
	scripts/setup.sh

# DIRAC client (probe agents, fidelity tests): scripts/install-dirac.sh, stamped, instant on reruns.
dirac: setup
	scripts/install-dirac.sh

test: setup dirac
	$(PY) -m ruff check bes_exporter probe_pushgateway bes_simulator bes_demo bes_report dirac_db dirac_server tests alerts grafana bench
	# Bounded: a hang (in a test or at interpreter exit) fails in 40 min with pytest's traceback (SIGINT).
	timeout -s INT -k 60 2400 $(PY) -m pytest -q tests

demo: setup dirac
	$(PY) -m bes_demo up

demo-down:
	@if [ -x $(PY) ]; then $(PY) -m bes_demo down; else echo "demo: nothing to stop"; fi

lint: setup
	$(PY) -m ruff check bes_exporter probe_pushgateway bes_simulator bes_demo bes_report dirac_db dirac_server tests alerts grafana bench
