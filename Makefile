# The two commands of the README. Both create .venv and install on first use.
VENV     ?= .venv
PY       := $(VENV)/bin/python
PLUGINS  := $(wildcard plugins/mm-*)
STAMP    := $(VENV)/.installed

# Small venvs for tests/test_hub.py: olah (a Hub mirror; pins psutil<6, so not in .venv) and
# huggingface_hub 0.36 / 1.x without torch, to run the Hub-protocol round trip with each.
HUB_VENVS := .venv-olah/.installed .venv-hub036/.installed .venv-hub1/.installed

.PHONY: demo test install clean hub-venvs docs

demo: $(STAMP)
	$(VENV)/bin/mm train image-mae-demo --overwrite

test: $(STAMP) $(HUB_VENVS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n 2 --durations=15 -q

install: $(STAMP)

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]" $(addprefix -e ,$(PLUGINS))
	touch $@

# The documentation site (mkdocs.yml) into site/; --strict: any warning (a broken link, a docstring
# mkdocstrings cannot render) fails the build. Needs no network: no web fonts, no remote inventories.
DOCS_STAMP := $(VENV)/.docs-installed

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e ".[docs]"
	touch $@

hub-venvs: $(HUB_VENVS)

.venv-olah/.installed:
	python3 -m venv .venv-olah && .venv-olah/bin/python -m pip install -q olah==0.5.4 && touch $@
.venv-hub036/.installed:
	python3 -m venv .venv-hub036 && .venv-hub036/bin/python -m pip install -q huggingface_hub==0.36.2 && touch $@
.venv-hub1/.installed:
	python3 -m venv .venv-hub1 && .venv-hub1/bin/python -m pip install -q huggingface_hub==1.33.0 && touch $@

clean:
	rm -rf $(VENV) .venv-olah .venv-hub036 .venv-hub1 runs
