# The two commands: `make demo` (the main job) and `make test` (the suite).
# Both install what they need into .venv first; the install is skipped when up to date.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export FIFTYONE_DO_NOT_TRACK ?= true
export FIFTYONE_DATABASE_VALIDATION ?= false

DEMO_ARGS ?=
TEST_ARGS ?=

.PHONY: install demo test benchmark clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt tools/install.sh tools/fix_torchvision_cpu.py
	bash tools/install.sh
	touch $(STAMP)

demo: install
	$(PY) -m fiftyone_condense.apps.demo $(DEMO_ARGS)

test: install
	$(PY) -m pytest -q $(TEST_ARGS)

benchmark: install
	$(PY) benchmarks/baselines.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
