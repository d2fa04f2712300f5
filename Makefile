# Two commands do all set-up: `make demo` and `make test`. Both build the virtual environment from
# requirements.lock when it is missing or stale (the lock's sha256 is stamped inside the venv).
# VENV can point outside the clone (.ci/run keeps one per lock hash in a cache directory). graphnet itself
# is not installed into it (the venv may serve several clones): PYTHONPATH points at this checkout.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.graphnet-lock-sha256
LOCK_SHA := $(shell sha256sum requirements.lock | cut -d' ' -f1)
export DGLBACKEND := pytorch
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: venv demo test test-slow lint bench FORCE

venv: $(STAMP)

# Rebuild from nothing when the stamp is absent or names another lock: a half-built venv has no stamp.
$(STAMP): FORCE
	@if [ "$$(cat $(STAMP) 2>/dev/null)" != "$(LOCK_SHA)" ]; then \
	  echo "building $(VENV) from requirements.lock (first time: ~3 GB download, several minutes)"; \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV) && \
	  $(PY) -m pip install --quiet --no-cache-dir -r requirements.lock && \
	  echo "$(LOCK_SHA)" > $(STAMP); \
	fi

demo: venv
	$(PY) -m graphnet demo

test: venv
	$(PY) -m pytest -q -m "not slow" tests

test-slow: venv
	$(PY) -m pytest -q -m slow tests

lint: venv
	$(PY) -m ruff check graphnet tests experiments

# Every benchmark, rewriting its committed table (about 30 min; run on an idle machine, see each script's
# docstring). The evaluation and end-to-end ones read datasets: set GRAPHNET_MIRROR offline.
BENCH := experiments/benchmarks
bench: venv
	$(PY) $(BENCH)/graphconv_bench.py --out $(BENCH)/RESULTS-graphconv.md
	$(PY) $(BENCH)/layers_bench.py --out $(BENCH)/RESULTS-layers.md
	$(PY) $(BENCH)/layers_floor.py --out $(BENCH)/RESULTS-floor.md
	$(PY) $(BENCH)/eval_bench.py --out $(BENCH)/RESULTS-eval.md
	$(PY) $(BENCH)/e2e_bench.py --out $(BENCH)/RESULTS-e2e.md
	$(PY) $(BENCH)/scaling_bench.py --out $(BENCH)/RESULTS-scaling.md
