# kbtools: `make demo` runs the main job on loopback; `make test` runs the test suite.
# Both create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all venv test demo demo-tls bench conda clean test-deps mutation fuzz

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(STAMP)

# Test-only tools that the suite uses as oracles (not skipped when missing: installed here).
$(VENV)/.test-deps: $(STAMP) tests/requirements.txt
	$(PY) -m pip install -q -r tests/requirements.txt
	touch $@

test-deps: $(VENV)/.test-deps
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	@command -v nginx >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light)
	@command -v systemd-analyze >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd)

test: test-deps
	$(PY) -m pytest -n 2 -q

demo: venv
	$(PY) -m kbtools.demo

# The TLS deployment on loopback (docs/deploy/README.md): a throwaway CA, kb-hub serving HTTPS and
# WSS, kb-host by wss://, kb-get verified over https://, another CA refused (exit 3).
demo-tls: $(VENV)/.test-deps
	$(PY) -m tests.deploy.demo_tls

# Each benchmark prints its ratio against a reference measured in the same run; all of them run,
# and the target exits 1 when any benchmark failed or missed its target.
bench: venv
	@failed=""; for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "missed or failed:$$failed"; exit 1; fi

# Mutation testing of the core modules, each against its own tests (tests/mutation/run.py): prints
# the score per module; equivalent mutants are argued in tests/mutation/equivalent.md. Slow, so
# not part of `make test` or CI. One module: make mutation MODULES=kbtools/formats/mda.py
mutation: $(VENV)/.test-deps tests/mutation/requirements.txt
	$(PY) -m pip install -q -r tests/mutation/requirements.txt
	$(PY) tests/mutation/run.py $(MODULES)

# Long fuzzing of the protocol core and the hub (Hypothesis, tests/protocol/test_fuzz_*.py and the live
# hostile corpus): the default suite runs a few seconds of it; this runs FUZZ_EXAMPLES examples per
# property (random, not derandomized). Not part of `make test` or CI.
FUZZ_EXAMPLES ?= 5000
fuzz: $(VENV)/.test-deps
	KBTOOLS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider --timeout 3600 \
		tests/protocol/test_fuzz_conn.py tests/protocol/test_fuzz_nodedata.py tests/hub/test_hostile_corpus.py

# The conda package, built and tried offline (docs/packaging.md): a channel in dist/conda/.
conda: $(VENV)/.test-deps
	$(PY) conda-recipe/build.py build

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
