# The two commands: `make run` and `make test` (plus `make bench`, `make lint`).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= config/collector.yaml

.PHONY: run test bench lint peers clean

# Reinstall when the project's dependencies change.
$(VENV)/.installed: pyproject.toml setup.py otlp/_wire.c otlp/_encode.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/airis --config $(CONFIG)

# Real peers the tests start (built once, cached under ~/.cache/airis keyed by version).
peers: $(VENV)/.installed
	bash tests/peers/install.sh

test: $(VENV)/.installed peers
	$(VENV)/bin/ruff check .
	@# pytest's exit code 5 (no tests collected) is a failure, not a pass
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# Side by side with the OTel Collector; one markdown table, also in benchmarks/results/.
# BENCH_ARGS: --quick, --scenarios a,c, --profile (py-spy), --workers N; see --help.
bench: $(VENV)/.installed peers
	$(PY) -m benchmarks.run $(BENCH_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) data build *.egg-info
