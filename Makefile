# The two commands of the README. Both create .venv and install on first use.
VENV     ?= .venv
PY       := $(VENV)/bin/python
PLUGINS  := $(wildcard plugins/mm-*)
STAMP    := $(VENV)/.installed

.PHONY: demo test install clean

demo: $(STAMP)
	$(VENV)/bin/mm train image-mae-demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n 2 --durations=15 -q

install: $(STAMP)

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]" $(addprefix -e ,$(PLUGINS))
	touch $@

clean:
	rm -rf $(VENV) runs
