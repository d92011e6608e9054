# Two entry points: `make demo` and `make test`. Both create the virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: venv test lint demo leaderboards clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip >/dev/null
	$(PIP) install -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# The offline quickstart: synthesises a SLURP-format mini corpus, builds a small FastConformer,
# trains + evaluates SLU, prints the result table and appends one record to runs/results.jsonl.
demo: venv
	$(VENV)/bin/nestbench run experiments/quickstart/slurp.gin

test: venv
	$(PY) -m ruff check nestbench tasks tests tools benchmarks
	$(PY) -m pytest -q

# Re-render the committed boards from the committed results only (what the CI check compares).
leaderboards: venv
	$(VENV)/bin/nestbench leaderboard --results leaderboards/results

lint: venv
	$(PY) -m ruff check nestbench tasks tests tools benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
