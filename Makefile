# The two commands of the README: `make run` (the pipeline) and `make test` (the tests).
# Both create .venv and install the project first. On a machine without internet set
# S2S_MIRROR to a directory holding the corpora (e.g. S2S_MIRROR=../shared/corpora).
VENV  ?= .venv
TORCH ?= torch==2.13.0
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

# The CI-sized experiment: the whole pipeline on 3,000 training pairs with a small model.
CI_OVERRIDES := -S data.max_train_pairs=3000 -S spm.vocab_size=1000 -S model.emb=64 \
                -S model.hidden=128 -S train.max_epochs=2 -S eval.batch_size=128

.PHONY: setup run test ci-experiment ci-diff
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH)
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $@

run: setup
	dvc repro

test: setup
	pytest -q

ci-experiment: setup
	dvc exp run $(CI_OVERRIDES)

ci-diff: setup
	@echo "### Metrics: this run vs main"
	@dvc metrics diff main --md
	@echo "### Params: this run vs main"
	@dvc params diff main --md
	@echo "### Translations: this run vs main (s2s compare: is the difference more than noise?)"
	@s2s compare --against main --md
