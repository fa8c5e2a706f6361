# The two commands a newcomer needs (README, "Start here"):
#   make study   set up .venv, run the whole study at the CI scale (smoke profile) and build its site
#   make test    set up .venv when needed and run the test suite (what .ci/run calls)
# Everything else is `python -m snnlib.study ...` (README, "Run the study").

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
# written after a successful install; redone when a requirements file changes
STAMP   := $(VENV)/.snnlib-installed
PROFILE ?= smoke

.PHONY: study test setup book clean-runs

setup: $(STAMP)

$(STAMP): requirements.txt requirements-cluster.txt requirements-compare.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt -e .
	$(PY) -m pip install -q -r requirements-cluster.txt -r requirements-compare.txt
	touch $(STAMP)

# The smoke profile end to end (a few minutes), then its site; writes only under runs/$(PROFILE)/.
study: $(STAMP)
	$(PY) -m snnlib.study run --profile $(PROFILE) --resume
	$(PY) -m snnlib.study book --profile $(PROFILE)
	@echo "open runs/$(PROFILE)/book/_build/html/index.html"

# The site of the published run (book/, committed executed notebooks; nothing re-executed).
book: $(STAMP)
	$(VENV)/bin/jupyter-book build -W -n --keep-going book
	@echo "open book/_build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest

clean-runs:
	rm -rf runs
