# opflow: the two commands (`make demo`, `make test`) set everything up from a clean clone.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo demo-time test test-all bench lint docs notebooks dist clean chromium

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch lies on this disk; install it first so nothing pulls a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,peers,docs]'
	touch $(STAMP)

# The first line `make demo` prints says how long it takes (listed first, so it runs first).
demo-time:
	@echo "make demo: the Darcy demo takes about 2 minutes on a 2-core laptop CPU (the first time, installing opflow in $(VENV) comes first: a few minutes)"

demo: demo-time $(STAMP)
	$(VENV)/bin/opflow demo --out demo_out

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP) chromium
	$(PY) -m pytest -q -m ''

# The slow docs test opens the built pages in headless Chromium (a Debian package):
# installed here when missing and we are root with apt (CI and the dev machines);
# elsewhere that one test is skipped and says so.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	        >/dev/null; \
	    else echo "chromium not found: the headless-browser docs test will be skipped"; fi; }

bench: $(STAMP)
	$(PY) benchmarks/run.py

# ruff, then mypy over all of opflow/ (settings: pyproject.toml [tool.mypy]; no module exempt)
lint: $(STAMP)
	$(VENV)/bin/ruff check opflow tests benchmarks examples notebooks
	$(PY) -m mypy

# The documentation site, warnings as errors (-E: a fresh build, so every
# docstring is validated again), then the internal link check.
docs: $(STAMP)
	rm -rf docs/_build
	$(PY) -m sphinx -W --keep-going -E -j auto -b html docs docs/_build/html
	$(PY) docs/check_links.py docs/_build/html

# Run every notebook in notebooks/ at full size and store its outputs (the docs
# gallery shows them); after changing a notebook: `make notebooks` (a few minutes each)
notebooks: $(STAMP)
	$(PY) docs/execute_notebooks.py

# An sdist and a wheel in dist/
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .

clean:
	rm -rf $(VENV) demo_out demo_output docs/_build docs/_generated docs/api dist build
