# The two commands of the README: `make run` (the pipeline) and `make test` (the tests).
# Both create .venv and install the project first. On a machine without internet set
# S2S_MIRROR to a directory holding the corpora (e.g. S2S_MIRROR=../shared/corpora).
VENV  ?= .venv
TORCH ?= torch==2.13.0
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup run test
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q "$(TORCH)"
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $@

run: setup
	dvc repro

test: setup
	pytest -q
