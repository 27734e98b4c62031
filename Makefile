# Two commands do all set-up: `make reproduce` (run every notebook for the default profile) and
# `make test`. Both create .venv and install the locked dependencies on first use.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= default

.PHONY: env env-vllm browser reproduce smoke test test-fast lab lock lock-vllm clean-cache

env: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name tokenshift --display-name "Python (tokenshift)" >/dev/null
	touch $(STAMP)

# Every notebook for $(PROFILE) through papermill: figures/<profile>/, papermill_runs/<profile>/
reproduce: env
	$(PY) -m tokenshift.suite.runner --profile $(PROFILE)

smoke: env
	$(PY) -m tokenshift.suite.runner --profile smoke

# The token viewer's test opens its page in headless chromium: Debian's package, installed here if missing
# (needs root and apt; elsewhere install chromium yourself).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || \
	  { DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  echo "warning: could not install chromium; the viewer's browser test will fail until it is installed"

# Unit tests, then the smoke profile through papermill, then nbval over the executed notebooks
# (re-run in a warm cache; cells marked NBVAL_CHECK_OUTPUT must print the same again). The smoke run's
# notebooks and figures go to a temporary folder: testing writes nothing into the repository.
test: env browser
	$(PY) -m pytest -q tests
	@out=$$(mktemp -d); export TOKENSHIFT_FIGURES=$$out/figures TOKENSHIFT_RUNS=$$out/runs; \
	  $(PY) -m tokenshift.suite.runner --profile smoke && $(PY) -m pytest -q -p no:cacheprovider --nbval-lax $$out/runs/smoke; \
	  status=$$?; rm -rf $$out; exit $$status

# The developers' loop: every unit test but those marked slow (notebooks, launchers), in well under a minute.
test-fast: env
	$(PY) -m pytest -q -m "not slow" tests

lab: env
	$(VENV)/bin/jupyter lab notebooks

# Re-resolve requirements.lock from pyproject.toml in a scratch environment.
lock:
	rm -rf /tmp/tokenshift-lock && $(PYTHON) -m venv /tmp/tokenshift-lock
	/tmp/tokenshift-lock/bin/pip install --quiet ".[dev]"
	{ sed -n '1,2p' requirements.lock; /tmp/tokenshift-lock/bin/pip freeze --exclude tokenshift | sed 's/^torch==2.13.0+cpu/torch==2.13.0/'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

# The vLLM engine's own environment, for `tokenshift sample --engine vllm` on a machine with a GPU: vLLM pins its
# own torch and transformers, which conflict with requirements.lock, so it gets .venv-vllm and its own lock; the
# suite goes in without its dependencies. Score and analyse in .venv as usual. Nothing else uses it.
VLLM_VENV := .venv-vllm
VLLM_PACKAGES := vllm==0.33.0 polars pyarrow math-verify pyyaml tqdm safetensors accelerate scipy

env-vllm: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: requirements-vllm.lock pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-vllm.lock
	$(VLLM_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# Re-resolve requirements-vllm.lock (pip's resolver on package metadata only: nothing is installed).
lock-vllm:
	rm -rf /tmp/tokenshift-vllm-lock && $(PYTHON) -m venv /tmp/tokenshift-vllm-lock
	/tmp/tokenshift-vllm-lock/bin/pip install --quiet --dry-run --ignore-installed \
	  --report /tmp/tokenshift-vllm-lock/report.json $(VLLM_PACKAGES)
	{ sed -n '1,3p' requirements-vllm.lock; $(PYTHON) -c 'import json; r = json.load(open("/tmp/tokenshift-vllm-lock/report.json")); \
	  print(*sorted((i["metadata"]["name"] + "==" + i["metadata"]["version"] for i in r["install"]), key=str.lower), sep="\n")'; } \
	  > requirements-vllm.lock.new
	mv requirements-vllm.lock.new requirements-vllm.lock

clean-cache:
	rm -rf .cache
